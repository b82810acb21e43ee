"""`reelgen serve`: the HTTP API in this process plus N embedded worker threads sharing the same queue.

The app is built before any worker, and never imports torch itself; workers import it lazily when they
build their first engine. With `--no-worker` this process stays torch-free and `reelgen worker` processes
(this machine or others, on the same database and storage) do the generating.
"""

from __future__ import annotations

import ipaddress
import logging
import threading

from reelgen.settings import Settings

log = logging.getLogger("reelgen.server")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def trusted_hosts_for(host: str) -> list[str] | None:
    """Host header names to accept. On loopback: the loopback names only, which defeats DNS rebinding (a
    foreign name resolving to 127.0.0.1). Bound elsewhere the server cannot know its public names: None."""
    if not is_loopback(host):
        return None
    names = {"127.0.0.1", "localhost", "[::1]", host.lower()}
    if ":" in host and not host.startswith("["):
        names.add(f"[{host.lower()}]")
    return sorted(names)


class UnauthenticatedBind(Exception):
    """Refusing to serve a non-loopback address while authentication is off."""


def check_bind(settings: Settings, host: str, *, allow_unauthenticated: bool) -> Settings:
    """The settings to serve `host` with. On a non-loopback address with authentication off (no users yet,
    or REELGEN_AUTH=off) raises UnauthenticatedBind unless `allow_unauthenticated`. With `auto` and users, the
    process is pinned to `on`, so disabling the last user can never open the server to everyone."""
    if is_loopback(host):
        return settings
    from reelgen.runtime import open_job_store_from

    if settings.auth == "on":
        return settings
    enabled = False
    if settings.auth == "auto":
        store = open_job_store_from(settings)
        try:
            enabled = store.accounts.has_users()
        finally:
            store.close()
    if enabled:
        return settings.model_copy(update={"auth": "on"})
    if not allow_unauthenticated:
        raise UnauthenticatedBind(
            f"refusing to serve on {host} without authentication: anyone who can reach it could create and "
            "delete videos. Add a user first (`reelgen users add NAME --role admin`, which turns authentication "
            "on), or bind 127.0.0.1, or pass --allow-unauthenticated if a trusted proxy or network protects it."
        )
    # Single-owner mode has no keys: whoever reaches the port can use (and delete) everything.
    log.warning(
        "serving on %s WITHOUT authentication (--allow-unauthenticated): anyone who can reach it can create "
        "and delete videos",
        host,
    )
    return settings


def serve(settings: Settings, *, host: str, port: int, workers: int, allow_unauthenticated: bool = False) -> int:
    import sys

    import uvicorn

    from reelgen.api.app import create_app
    from reelgen.runtime import build_worker, open_artifacts_from, open_job_store_from

    try:
        settings = check_bind(settings, host, allow_unauthenticated=allow_unauthenticated)
    except UnauthenticatedBind as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    app = create_app(settings, trusted_hosts=trusted_hosts_for(host))

    stop = threading.Event()
    threads: list[threading.Thread] = []
    worker_stores = []
    artifacts = open_artifacts_from(settings) if workers else None
    for i in range(workers):
        assert artifacts is not None
        # Workers import torch lazily, only here, never in the HTTP request path.
        store = open_job_store_from(settings)
        worker_stores.append(store)
        worker = build_worker(settings, store, artifacts, worker_id=f"embedded-{i}")
        t = threading.Thread(target=worker.run_forever, args=(stop,), name=f"embedded-worker-{i}", daemon=True)
        t.start()
        threads.append(t)
    log.info("reelgen on http://%s:%d with %d embedded worker(s)", host, port, workers)
    try:
        # No line per request: at thousands of polls a second that is most of the log and a real share of the
        # CPU; errors are still logged.
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        for s in worker_stores:
            s.close()
    return 0
