"""Map recipe key paths (``arms[1].stages[0].condition``) to line numbers in the TOML text.

``tomllib`` keeps no positions, so this scanner walks the text once and records the line of
every key, table header and array element. It only has to be right for valid TOML (invalid
TOML is reported by tomllib with its own line); anything it cannot follow is simply not
located, and the error is shown without a line.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s, self.i, self.line = text, 0, 1
        self.lines: dict[str, int] = {}
        self.array_tables: dict[str, int] = {}

    # -- low level -------------------------------------------------------------------
    def peek(self) -> str:
        return self.s[self.i] if self.i < len(self.s) else ""

    def advance(self, n: int = 1) -> None:
        self.line += self.s.count("\n", self.i, self.i + n)
        self.i += n

    def skip_space(self, newlines: bool) -> None:
        while self.i < len(self.s):
            c = self.peek()
            if c == "#":
                end = self.s.find("\n", self.i)
                self.advance((end if end >= 0 else len(self.s)) - self.i)
            elif c in " \t\r" or (newlines and c == "\n"):
                self.advance()
            else:
                return

    def skip_string(self) -> str:
        quote = self.peek()
        triple = self.s.startswith(quote * 3, self.i)
        delim = quote * 3 if triple else quote
        start = self.i + len(delim)
        j = start
        while j < len(self.s):
            if quote == '"' and self.s[j] == "\\":
                j += 2
                continue
            if self.s.startswith(delim, j):
                break
            j += 1
        value = self.s[start:j]
        self.advance(j + len(delim) - self.i)
        return value

    def key(self) -> list[str]:
        parts = []
        while True:
            self.skip_space(False)
            if self.peek() in "\"'":
                parts.append(self.skip_string())
            else:
                j = self.i
                while j < len(self.s) and self.s[j] in _BARE:
                    j += 1
                parts.append(self.s[self.i : j])
                self.advance(j - self.i)
            self.skip_space(False)
            if self.peek() != ".":
                return parts
            self.advance()

    # -- structure -------------------------------------------------------------------
    def document(self) -> None:
        prefix = ""
        while self.i < len(self.s):
            self.skip_space(True)
            c = self.peek()
            if not c:
                return
            if c == "[":
                prefix = self.header()
            elif c in _BARE or c in "\"'":
                self.assignment(prefix)
            else:
                self.advance()  # tolerate anything unexpected

    def header(self) -> str:
        line = self.line
        double = self.s.startswith("[[", self.i)
        self.advance(2 if double else 1)
        path = ".".join(self.key())
        self.advance(2 if double else 1)
        if double:
            index = self.array_tables.get(path, -1) + 1
            self.array_tables[path] = index
            path = f"{path}[{index}]"
        self.lines.setdefault(path, line)
        return path

    def assignment(self, prefix: str) -> None:
        line = self.line
        path = _join(prefix, ".".join(self.key()))
        self.lines.setdefault(path, line)
        if self.peek() == "=":
            self.advance()
        self.skip_space(False)
        self.value(path)

    def value(self, path: str) -> None:
        c = self.peek()
        if c == "{":
            self.inline_table(path)
        elif c == "[":
            self.array(path)
        elif c in "\"'":
            self.skip_string()
        else:
            while self.i < len(self.s) and self.peek() not in ",]}\n#":
                self.advance()

    def inline_table(self, path: str) -> None:
        self.advance()
        while True:
            self.skip_space(True)
            if self.peek() in ("}", ""):
                self.advance()
                return
            if self.peek() == ",":
                self.advance()
                continue
            self.assignment(path)

    def array(self, path: str) -> None:
        """An array's elements are located as ``path[0]``, ``path[1]``, ..."""
        self.advance()
        index = 0
        while True:
            self.skip_space(True)
            c = self.peek()
            if c in ("]", ""):
                self.advance()
                return
            if c == ",":
                self.advance()
                index += 1
                continue
            self.lines.setdefault(f"{path}[{index}]", self.line)
            self.value(f"{path}[{index}]")


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def key_lines(text: str) -> dict[str, int]:
    """Every key path in ``text`` with the line it starts on (1-based)."""
    scanner = _Scanner(text)
    with contextlib.suppress(IndexError):  # defensive: a locator must never fail a load
        scanner.document()
    return scanner.lines


def line_locator(text: str) -> Callable[[str], int | None]:
    """A function from key path to line; falls back to the nearest located parent."""
    lines = key_lines(text) if text else {}

    def locate(key: str) -> int | None:
        while key:
            if key in lines:
                return lines[key]
            cut = max(key.rfind("."), key.rfind("["))
            key = key[:cut] if cut > 0 else ""
        return None

    return locate
