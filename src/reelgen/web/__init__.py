"""The studio: a web page for making, watching and sharing videos, served by `reelgen serve` at `/`.

Server-rendered page shells (Jinja2 templates) plus plain JS modules and one CSS file, no build step and
nothing fetched from other sites. Everything the pages show or do goes through the public /v1 API from the
browser, exactly as any other client would: this package adds the pages and their static files, no data routes.
"""

from reelgen.web.pages import mount_studio

__all__ = ["mount_studio"]
