"""`reelgen users add | list | disable | enable | role | keys | new-key | revoke | revoke-all | passwd`.

Runs against REELGEN_DATABASE_URL like the server, so it works while the server runs (a revoke or disable
reaches a running server within REELGEN_AUTH_CACHE_SECONDS). New API keys are printed once, as the last line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import sys
from collections.abc import Sequence
from typing import Any

from reelgen.domain.accounts import Role
from reelgen.domain.errors import InvalidParams
from reelgen.settings import Settings

ACTOR = "cli"


def add_users_parser(sub: Any) -> None:
    """Register `reelgen users …` on the main parser's subparsers."""
    users = sub.add_parser("users", help="manage users, roles and API keys (authentication)")
    cmds = users.add_subparsers(dest="users_command", required=True)

    p = cmds.add_parser("add", help="add a user; prints their first API key as the last line")
    p.add_argument("name")
    p.add_argument("--role", default="user", choices=[r.value for r in Role])
    pw = p.add_mutually_exclusive_group()
    pw.add_argument("--password", help="studio password (visible in the process list: prefer --password-stdin)")
    pw.add_argument("--password-stdin", action="store_true", help="read the studio password from stdin")
    p.add_argument("--gpu-seconds", type=float, help="GPU-second budget per period (see the quota settings)")

    cmds.add_parser("list", help="list users")
    p = cmds.add_parser("disable", help="disable a user: their keys and sessions stop working at once")
    p.add_argument("name")
    p = cmds.add_parser("enable", help="enable a disabled user again")
    p.add_argument("name")
    p = cmds.add_parser("role", help="change a user's role")
    p.add_argument("name")
    p.add_argument("role", choices=[r.value for r in Role])
    p = cmds.add_parser("keys", help="list a user's API keys (ids, created, last used, revoked)")
    p.add_argument("name")
    p = cmds.add_parser("new-key", help="make another API key for a user; printed as the last line")
    p.add_argument("name")
    p = cmds.add_parser("revoke", help="revoke one API key by its id (see `keys`)")
    p.add_argument("key_id")
    p = cmds.add_parser("revoke-all", help="revoke every API key of a user")
    p.add_argument("name")
    from reelgen.cli_ops import add_limits_parser

    add_limits_parser(cmds)  # `reelgen users limits NAME …`: quotas (reelgen.cli_ops)
    p = cmds.add_parser("passwd", help="set a user's studio password (prompted, or --password-stdin)")
    p.add_argument("name")
    pw = p.add_mutually_exclusive_group()
    pw.add_argument("--password")
    pw.add_argument("--password-stdin", action="store_true")
    pw.add_argument("--clear", action="store_true", help="remove the password (the user signs in with a key)")


def cmd_users(args: argparse.Namespace) -> int:
    from reelgen.runtime import open_job_store_from

    store = open_job_store_from(Settings())
    try:
        accounts = store.accounts
        command = args.users_command
        if command == "add":
            password = _password(args, required=False)
            user, key = accounts.add_user(args.name, args.role, password, actor=ACTOR)
            print(f"added {user.role.value} {user.name} (id {user.id})")
            if args.gpu_seconds is not None:
                set_limits = getattr(store, "set_user_limits", None)
                if set_limits is None:
                    print("warning: this build has no quotas; --gpu-seconds ignored", file=sys.stderr)
                else:
                    set_limits(user.id, gpu_seconds=args.gpu_seconds, actor=ACTOR)
                    print(f"budget: {args.gpu_seconds:g} GPU-seconds")
            print("API key (shown only now; use it as the OpenAI SDK api_key or 'Authorization: Bearer …'):")
            print(key)
        elif command == "list":
            rows: list[tuple[str, ...]] = [("NAME", "ROLE", "STATUS", "ID", "CREATED")]
            for u in accounts.list_users():
                rows.append((u.name, u.role.value, "disabled" if u.disabled else "active", u.id, _when(u.created_at)))
            _table(rows)
        elif command == "disable":
            user = accounts.disable_user(args.name, actor=ACTOR)
            print(f"disabled {user.name}: their keys and sessions no longer work")
        elif command == "enable":
            user = accounts.enable_user(args.name, actor=ACTOR)
            print(f"enabled {user.name}")
        elif command == "role":
            user = accounts.set_role(args.name, args.role, actor=ACTOR)
            print(f"{user.name} is now {user.role.value}")
        elif command == "keys":
            user = accounts.require_user(args.name)
            key_rows: list[tuple[str, ...]] = [("KEY_ID", "CREATED", "LAST_USED", "STATUS")]
            for k in accounts.list_keys(user.id):
                status = f"revoked {_when(k.revoked_at)}" if k.revoked_at is not None else "active"
                key_rows.append((k.id, _when(k.created_at), _when(k.last_used_at), status))
            _table(key_rows)
        elif command == "new-key":
            user = accounts.require_user(args.name)
            key = accounts.create_key(user.id, actor=ACTOR)
            print(f"new API key for {user.name} (shown only now):")
            print(key)
        elif command == "revoke":
            api_key = accounts.revoke_key(args.key_id, actor=ACTOR)
            print(f"revoked key {api_key.id}")
        elif command == "revoke-all":
            user = accounts.require_user(args.name)
            count = accounts.revoke_all_keys(user.id, actor=ACTOR)
            print(f"revoked {count} key(s) of {user.name}")
        elif command == "limits":
            from reelgen.cli_ops import run_limits

            return run_limits(store, args)
        elif command == "passwd":
            password = None if args.clear else _password(args, required=True)
            user = accounts.set_password(args.name, password, actor=ACTOR)
            print(f"password {'removed' if password is None else 'set'} for {user.name}")
        else:  # pragma: no cover - argparse restricts the choices
            raise AssertionError(command)
    finally:
        store.close()
    return 0


def _password(args: argparse.Namespace, *, required: bool) -> str | None:
    if args.password is not None:
        return str(args.password)
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not required:
        return None
    if not sys.stdin.isatty():
        raise InvalidParams("no password given: use --password-stdin or --password", param="password")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        raise InvalidParams("the two passwords differ", param="password")
    return first


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
