"""API speed: create and retrieve throughput and latency of a real `reelgen serve` on SQLite, next to a bare
FastAPI app that does one SQLite insert (or select) per request, measured in the same run on the same machine.

    .venv/bin/python benchmarks/api.py                 # full run (about a minute)
    .venv/bin/python benchmarks/api.py --seconds 3     # quicker, noisier

What runs:
- `reelgen serve --no-worker` (the real app and store: SQLite in WAL mode with synchronous=FULL, so every
  acknowledged create is on disk; no worker, so the queue only grows) on a free port, REELGEN_HOME in a
  temporary folder;
- the baseline: a FastAPI app with one route that inserts a row (same pragmas, one transaction per request)
  and one that selects it by id, served by the same uvicorn configuration;
- the load generator: this process, an asyncio HTTP/1.1 client on keep-alive connections (closed loop for
  throughput; open loop at a fixed rate for latency, so a slow response delays no later request). Creates
  send exactly what the openai SDK sends: a multipart/form-data body.

Targets (issue 3): create >= 1000 req/s, retrieve >= 3000 req/s, retrieve p99 < 20 ms at 200 req/s.
Everything shares the machine's cores with the load generator; numbers are for this machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable

BOUNDARY = "reelgenbench0123456789"


def multipart(fields: dict[str, str]) -> bytes:
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    return ("".join(parts) + f"--{BOUNDARY}--\r\n").encode()


CREATE_BODY = multipart(
    {"prompt": "a red fox running through snow", "model": "tiny-random-wan", "size": "64x64", "seconds": "1"}
)
CREATE_TYPE = f"multipart/form-data; boundary={BOUNDARY}"

BASELINE_APP = textwrap.dedent(
    '''
    """The baseline: FastAPI doing one durable SQLite insert (or one select) per request, nothing else."""
    import json, os, secrets, sqlite3, threading, time
    from fastapi import FastAPI, Request
    from fastapi.responses import Response

    DB = os.environ["BASELINE_DB"]
    local = threading.local()

    def conn():
        c = getattr(local, "c", None)
        if c is None:
            c = sqlite3.connect(DB, isolation_level=None, check_same_thread=False, timeout=30)
            c.execute("PRAGMA journal_mode=WAL")
            c.execute("PRAGMA synchronous=FULL")
            c.execute("PRAGMA busy_timeout=30000")
            local.c = c
        return c

    conn().execute("CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, body TEXT, created_at REAL)")
    app = FastAPI()

    @app.post("/items")
    def create(body: dict) -> Response:
        item_id = secrets.token_hex(12)
        c = conn()
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO items VALUES (?, ?, ?)", (item_id, json.dumps(body), time.time()))
        c.execute("COMMIT")
        return Response(json.dumps({"id": item_id}), media_type="application/json")

    @app.get("/items/{item_id}")
    def get(item_id: str) -> Response:
        row = conn().execute("SELECT id, body, created_at FROM items WHERE id = ?", (item_id,)).fetchone()
        return Response(json.dumps({"id": row[0], "body": json.loads(row[1]), "created_at": row[2]}),
                        media_type="application/json")
    '''
)


# --- load generator ----------------------------------------------------------------------------------------


@dataclass
class Result:
    ok: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000


class Conn:
    """One keep-alive HTTP/1.1 connection; one request in flight at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await self.reader.readexactly(length) if length else b""
        return status, body

    def close(self) -> None:
        self.writer.close()


def raw_request(method: str, path: str, body: bytes = b"", content_type: str | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Authorization: Bearer bench"]
    if body or method == "POST":
        lines += [f"Content-Type: {content_type or 'application/json'}", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def closed_loop(port: int, make: callable, seconds: float, connections: int) -> tuple[Result, list[bytes]]:
    """`connections` clients, each sending its next request as soon as the previous answer arrived."""
    conns = [await Conn.open(port) for _ in range(connections)]
    bodies: list[bytes] = []
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def run(conn: Conn) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t = time.perf_counter()
            status, body = await conn.request(make())
            if 200 <= status < 300:
                latencies.append(time.perf_counter() - t)
                if len(bodies) < 100_000:
                    bodies.append(body)
            else:
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(run(c) for c in conns))
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return Result(len(latencies), errors, elapsed, latencies), bodies


async def open_loop(port: int, make: callable, rate: float, seconds: float, connections: int = 32) -> Result:
    """Requests sent on a fixed schedule regardless of answers (no coordinated omission); latency is measured
    from the scheduled send time."""
    pool: asyncio.Queue[Conn] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await Conn.open(port))
    latencies: list[float] = []
    errors = 0
    tasks = []

    async def one(scheduled: float) -> None:
        nonlocal errors
        conn = await pool.get()
        try:
            status, _ = await conn.request(make())
        finally:
            pool.put_nowait(conn)
        if 200 <= status < 300:
            latencies.append(time.perf_counter() - scheduled)
        else:
            errors += 1

    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    return Result(len(latencies), errors, elapsed, latencies)


# --- servers -----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on port {port} did not start")


def start_reelgen(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "REELGEN_HOME": str(home)}
    for var in ("REELGEN_DATABASE_URL", "REELGEN_STORAGE_URL"):
        env.pop(var, None)
    proc = subprocess.Popen(
        [PYTHON, "-m", "reelgen.cli", "serve", "--no-worker", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    wait_ready(port, "/healthz", proc)
    return proc


def start_baseline(folder: Path, port: int) -> subprocess.Popen:
    app_file = folder / "baseline_app.py"
    app_file.write_text(BASELINE_APP)
    env = {**os.environ, "BASELINE_DB": str(folder / "baseline.db"), "PYTHONPATH": str(folder)}
    proc = subprocess.Popen(
        [PYTHON, "-m", "uvicorn", "baseline_app:app", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=folder,
    )
    wait_ready(port, "/docs", proc)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- the run -----------------------------------------------------------------------------------------------


async def measure(args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="reelgen-bench-") as tmp:
        folder = Path(tmp)
        rport, bport = free_port(), free_port()
        reelgen = start_reelgen(folder / "home", rport)
        baseline = start_baseline(folder, bport)
        try:
            create = raw_request("POST", "/v1/videos", CREATE_BODY, CREATE_TYPE)
            # Warm-up: first-request imports, connections, SQLite page cache.
            await closed_loop(rport, lambda: create, 1.0, args.connections)
            res, bodies = await closed_loop(rport, lambda: create, args.seconds, args.connections)
            out["create_rps"], out["create_p50_ms"], out["create_p99_ms"] = res.rps, res.pct(0.5), res.pct(0.99)
            report("reelgen create (multipart, as the SDK sends)", res)
            ids = [json.loads(b)["id"] for b in bodies[-5000:]]

            retrieve = [raw_request("GET", f"/v1/videos/{i}") for i in ids]
            await closed_loop(rport, lambda: random.choice(retrieve), 1.0, args.connections)
            res, _ = await closed_loop(rport, lambda: random.choice(retrieve), args.seconds, args.connections)
            out["retrieve_rps"] = res.rps
            report("reelgen retrieve (queued videos, so queue position and ETA are computed)", res)

            res = await open_loop(rport, lambda: random.choice(retrieve), args.rate, args.latency_seconds)
            out["retrieve_fixed_p50_ms"], out["retrieve_fixed_p99_ms"] = res.pct(0.5), res.pct(0.99)
            report(f"reelgen retrieve at a fixed {args.rate:g} req/s", res)

            item = raw_request("POST", "/items", json.dumps({"prompt": "a red fox running through snow"}).encode())
            await closed_loop(bport, lambda: item, 1.0, args.connections)
            res, bodies = await closed_loop(bport, lambda: item, args.seconds, args.connections)
            out["baseline_create_rps"] = res.rps
            report("baseline FastAPI: one SQLite insert per request", res)
            items = [raw_request("GET", f"/items/{json.loads(b)['id']}") for b in bodies[-5000:]]
            res, _ = await closed_loop(bport, lambda: random.choice(items), args.seconds, args.connections)
            out["baseline_retrieve_rps"] = res.rps
            report("baseline FastAPI: one SQLite select per request", res)
        finally:
            stop(reelgen)
            stop(baseline)
    return out


def report(name: str, res: Result) -> None:
    print(
        f"{name:<74} {res.rps:8.0f} req/s   p50 {res.pct(0.5):6.2f} ms   p99 {res.pct(0.99):6.2f} ms"
        f"   ({res.ok} ok, {res.errors} errors)",
        flush=True,
    )


def cpu_busy(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over `seconds` (Linux /proc/stat; 0 elsewhere): other load skews the numbers."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values) - idle, sum(values)

    try:
        busy0, total0 = sample()
        time.sleep(seconds)
        busy1, total1 = sample()
    except OSError:
        return 0.0
    return (busy1 - busy0) / max(total1 - total0, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each throughput run")
    parser.add_argument("--connections", type=int, default=32, help="concurrent keep-alive connections")
    parser.add_argument("--rate", type=float, default=200.0, help="request rate of the latency run")
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="length of the latency run")
    args = parser.parse_args()
    busy = cpu_busy()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; CPUs {busy:.0%} busy before the run", flush=True)
    if busy > 0.1:
        print("warning: something else is using the CPUs; numbers will be low and noisy", flush=True)
    print(flush=True)
    out = asyncio.run(measure(args))
    print()
    print(
        f"create:   {out['create_rps']:7.0f} req/s (target >= 1000)   "
        f"{out['create_rps'] / out['baseline_create_rps']:.2f}x the bare FastAPI+SQLite insert"
    )
    print(
        f"retrieve: {out['retrieve_rps']:7.0f} req/s (target >= 3000)   "
        f"{out['retrieve_rps'] / out['baseline_retrieve_rps']:.2f}x the bare FastAPI+SQLite select"
    )
    print(
        f"retrieve at {args.rate:g} req/s: p50 {out['retrieve_fixed_p50_ms']:.2f} ms, "
        f"p99 {out['retrieve_fixed_p99_ms']:.2f} ms (target p99 < 20 ms)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
