"""Operator commands: `reelgen queue pause|resume|status`, `reelgen workers list|drain ID`,
`reelgen maintenance on|off`, and `reelgen users limits NAME …` (quotas). They act on the database named by
REELGEN_DATABASE_URL, so they work from any machine that reaches it; every change goes to the audit log."""

from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Sequence
from typing import Any

from reelgen.domain.accounts import LOCAL
from reelgen.domain.errors import NotFound
from reelgen.domain.quotas import UserUsage
from reelgen.jobs.store import JobStore
from reelgen.settings import Settings

ACTOR = "cli"


def add_ops_parsers(sub: Any) -> None:
    p = sub.add_parser("queue", help="pause, resume or inspect the job queue")
    cmds = p.add_subparsers(dest="queue_command", required=True)
    cmds.add_parser("pause", help="workers claim nothing until resumed; running jobs finish, creates still queue")
    cmds.add_parser("resume", help="let workers claim again")
    cmds.add_parser("status", help="paused?, maintenance?, queued and running jobs per user")

    p = sub.add_parser("workers", help="list workers or drain one")
    cmds = p.add_subparsers(dest="workers_command", required=True)
    cmds.add_parser("list", help="workers seen claiming, with state, loaded model and current job")
    d = cmds.add_parser("drain", help="the worker finishes its current job, claims nothing more and exits")
    d.add_argument("worker_id")

    p = sub.add_parser("maintenance", help="maintenance mode: the API refuses writes with 503 (reads go on)")
    p.add_argument("state", choices=["on", "off"])


def add_limits_parser(cmds: Any) -> None:
    """`reelgen users limits NAME [...]` (added to the `users` command group)."""
    p = cmds.add_parser("limits", help="show or set a user's quota, caps and priority tier")
    p.add_argument("name", help="user name (or id; `local` when authentication is off)")
    # SUPPRESS: an option left out is absent from args (keep the limit), `none` removes the limit.
    keep = argparse.SUPPRESS
    p.add_argument(
        "--gpu-seconds", type=_optional_float, default=keep, help="GPU-second budget per period (`none`: unlimited)"
    )
    p.add_argument("--period", choices=["day", "month"], default=keep, help="budget period (UTC calendar day/month)")
    p.add_argument(
        "--max-concurrent", type=_optional_int, default=keep, help="most jobs running at once (`none`: no cap)"
    )
    p.add_argument(
        "--max-queued", type=_optional_int, default=keep, help="most jobs waiting in the queue (`none`: no cap)"
    )
    p.add_argument("--priority", type=int, default=keep, help="scheduling tier: higher tiers are served first")


def _optional_float(text: str) -> float | None:
    return None if text.lower() in ("none", "unlimited") else float(text)


def _optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "unlimited") else int(text)


def _open() -> JobStore:
    from reelgen.runtime import open_job_store_from

    return open_job_store_from(Settings())


def cmd_queue(args: argparse.Namespace) -> int:
    store = _open()
    try:
        if args.queue_command == "pause":
            store.pause_queue(actor=ACTOR)
            print("queue paused: workers claim nothing until `reelgen queue resume`; running jobs finish")
        elif args.queue_command == "resume":
            store.resume_queue(actor=ACTOR)
            print("queue resumed")
        status = store.queue_status()
        print(
            f"paused: {'yes' if status.paused else 'no'}  maintenance: {'on' if status.maintenance else 'off'}  "
            f"queued: {status.queued}  running: {status.running}"
        )
        if args.queue_command == "status" and status.owners:
            _table([("USER", "QUEUED", "RUNNING")] + [(o.owner, str(o.queued), str(o.running)) for o in status.owners])
    finally:
        store.close()
    return 0


def cmd_workers(args: argparse.Namespace) -> int:
    store = _open()
    try:
        if args.workers_command == "drain":
            w = store.drain_worker(args.worker_id, actor=ACTOR)
            print(f"worker {w.id}: {w.state} (it finishes its current job, then exits)")
            return 0
        rows = [("WORKER", "STATE", "MODEL", "JOB", "LAST SEEN")]
        for w in store.workers():
            rows.append((w.id, w.state, w.model or "-", w.current_job or "-", _when(w.last_seen_at)))
        _table(rows)
    finally:
        store.close()
    return 0


def cmd_maintenance(args: argparse.Namespace) -> int:
    store = _open()
    try:
        store.set_maintenance(args.state == "on", actor=ACTOR)
    finally:
        store.close()
    if args.state == "on":
        print("maintenance mode on: the API answers writes with 503; reads and running jobs go on")
    else:
        print("maintenance mode off")
    return 0


def run_limits(store: JobStore, args: argparse.Namespace) -> int:
    """`reelgen users limits NAME …`: change the given limits (if any), then show them with the usage."""
    user_id = args.name
    if user_id != LOCAL.user_id:
        user = store.accounts.get_user_by_name(args.name) or store.accounts.get_user(args.name)
        if user is None:
            raise NotFound(f"no user named {args.name!r}")
        user_id = user.id
    changes = {
        name: getattr(args, name)
        for name in ("gpu_seconds", "period", "max_concurrent", "max_queued", "priority")
        if hasattr(args, name)
    }
    if changes:
        store.set_user_limits(user_id, actor=ACTOR, **changes)
    _print_usage(args.name, store.user_usage(user_id))
    return 0


def _print_usage(name: str, u: UserUsage) -> None:
    lim = u.limits
    budget = "unlimited" if lim.gpu_seconds is None else f"{lim.gpu_seconds:g} GPU-seconds per {lim.period} (UTC)"
    print(f"user {name} ({u.user_id})")
    print(f"budget: {budget}")
    if lim.gpu_seconds is not None:
        remaining = u.remaining_seconds or 0.0
        print(
            f"used this {lim.period}: {u.charged_seconds:.1f} (of which {u.reserved_seconds:.1f} reserved for "
            f"unfinished jobs); left: {remaining:.1f}; resets {_when(u.period_end)}"
        )
    print(f"max concurrent: {_cap(lim.max_concurrent)}  max queued: {_cap(lim.max_queued)}  priority: {lim.priority}")
    print(f"now: {u.queued} queued, {u.running} running; fair-share usage {u.fair_share_usage:.1f} GPU-seconds")


def _cap(value: int | None) -> str:
    return "none" if value is None else str(value)


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
