"""What a run prints: warnings carry text read from files (file names, Keras messages)."""

from __future__ import annotations

import io

from kvision.train.console import Console
from kvision.train.output import RunOutput


class _Writer:
    def __init__(self) -> None:
        self.warnings: list[tuple] = []

    def warning(self, kind: str, message: str, **fields: object) -> None:
        self.warnings.append((kind, message))


def test_a_warning_prints_control_characters_escaped_and_records_them_unchanged() -> None:
    stream, writer = io.StringIO(), _Writer()
    out = RunOutput(writer, Console(stream, tty=False))
    out.warn("python_warning", "stream: 'cat/\x1b]0;owned\x07.png' could not be decoded")
    assert stream.getvalue() == (
        "warning: stream: 'cat/\\x1b]0;owned\\x07.png' could not be decoded\n"
    )
    # the event keeps the exact text: readers (kvision show, the TUI) escape it themselves
    assert writer.warnings == [
        ("python_warning", "stream: 'cat/\x1b]0;owned\x07.png' could not be decoded")
    ]
