"""Every event kind the code writes or looks for is one that kvision.runs defines."""

from __future__ import annotations

import ast
from pathlib import Path

from kvision.runs.events import EVENT_KINDS, TERMINAL

ROOT = Path(__file__).resolve().parents[1]


def _event_literals() -> dict[str, list[str]]:
    """Kind -> places, for ``x.event("kind", ...)`` and ``x.of("kind", ...)`` in kvision/ and tui/."""
    found: dict[str, list[str]] = {}
    for path in sorted([*ROOT.glob("kvision/**/*.py"), *ROOT.glob("tui/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("event", "of")
            ):
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        found.setdefault(arg.value, []).append(
                            f"{path.relative_to(ROOT)}:{node.lineno}"
                        )
    return found


def test_every_written_or_read_event_kind_is_defined() -> None:
    found = _event_literals()
    assert {"run_started", "epoch_end", "evaluation"} <= set(found)  # the scan sees the code
    unknown = {k: v for k, v in found.items() if k not in EVENT_KINDS}
    assert not unknown, f"event kinds not in kvision.runs.events.EVENT_KINDS: {unknown}"


def test_terminal_kinds_are_event_kinds() -> None:
    assert set(TERMINAL) <= set(EVENT_KINDS) and len(set(EVENT_KINDS)) == len(EVENT_KINDS)
