"""``kvision cache ls|prune``: what the decoded-image cache holds, and making room.

Only argparse is imported at registration; the handlers import kvision.data.cache (numpy).
"""

from __future__ import annotations

import argparse

CACHE_HELP = """\
The cache keeps decoded, resized images as memory-mapped arrays, one entry per source and
settings ($KVISION_CACHE, default ~/.cache/kvision). Least recently used entries are removed
when it grows past $KVISION_CACHE_BUDGET (default 64G).

  kvision cache ls
  kvision cache prune --budget 10G     # remove least recently used entries down to 10 GiB
  kvision cache prune --all
"""


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``cache`` command to the CLI's subparsers."""
    p = subparsers.add_parser(
        "cache",
        help="list or prune the cache of decoded images",
        description=CACHE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="cache_command", required=True)
    sub.add_parser("ls", help="list entries, most recently used first").set_defaults(handler=ls)
    prune = sub.add_parser("prune", help="remove least recently used entries")
    group = prune.add_mutually_exclusive_group()
    group.add_argument("--budget", help="keep at most this much, e.g. 10G (default: the budget)")
    group.add_argument("--all", action="store_true", help="remove every entry")
    prune.set_defaults(handler=prune_cmd)
    return p


def ls(args: argparse.Namespace) -> int:
    """Handler of ``kvision cache ls``."""
    from kvision.data import cache

    rows = [cache.describe(e) for e in cache.entries()]
    print(f"cache: {cache.cache_dir()} (budget {_size(cache.budget_bytes())})")
    if not rows:
        print("no entries")
        return 0
    for r in rows:
        shape = "x".join(str(v) for v in r["shape"] or [])
        source = r["source"].encode("unicode_escape").decode()  # file text: no control chars
        print(
            f"{r['last_used']}  {_size(r['bytes']):>9}  {r['images']:>9,} x {shape:<11} "
            f"{source}  ({r['entry']})"
        )
    total = _size(sum(r["bytes"] for r in rows))
    print(f"total {total} in {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}")
    return 0


def prune_cmd(args: argparse.Namespace) -> int:
    """Handler of ``kvision cache prune``."""
    from kvision.data import cache
    from kvision.errors import KvisionError

    try:
        budget = 0 if args.all else cache.parse_size(args.budget or str(cache.budget_bytes()))
    except ValueError as exc:
        raise KvisionError(f"--budget: {exc}.") from None
    removed = cache.prune(budget)
    freed = sum(e.meta.get("bytes", 0) for e in removed)
    print(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} ({_size(freed)})")
    return 0


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
