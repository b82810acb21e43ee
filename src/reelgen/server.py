"""`reelgen serve`: the HTTP API in this process plus N embedded worker threads sharing the same queue."""

from __future__ import annotations

import logging
import threading

from reelgen.settings import Settings

log = logging.getLogger("reelgen.server")


def serve(settings: Settings, *, host: str, port: int, workers: int) -> int:
    import uvicorn

    from reelgen.api.app import create_app
    from reelgen.runtime import build_worker, open_artifacts_from, open_job_store_from

    stop = threading.Event()
    threads: list[threading.Thread] = []
    worker_stores = []
    artifacts = open_artifacts_from(settings)
    for i in range(workers):
        # Workers import torch lazily, only here, never in the HTTP request path.
        store = open_job_store_from(settings)
        worker_stores.append(store)
        worker = build_worker(settings, store, artifacts, worker_id=f"embedded-{i}")
        t = threading.Thread(target=worker.run_forever, args=(stop,), name=f"embedded-worker-{i}", daemon=True)
        t.start()
        threads.append(t)
    log.info("reelgen on http://%s:%d with %d embedded worker(s)", host, port, workers)
    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        for s in worker_stores:
            s.close()
    return 0
