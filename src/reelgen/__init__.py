"""reelgen: self-hosted text-to-video with an OpenAI-compatible Videos API."""

__version__ = "0.1.0"
