"""Errors that are the user's to fix: the CLI prints them as one paragraph and exits 2."""

from __future__ import annotations

import difflib
import errno
import re
from collections.abc import Iterable


class KvisionError(Exception):
    """A problem with the user's input (recipe, path, argument). Never shown with a traceback."""

    exit_code = 2


class RecipeError(KvisionError):
    """A recipe problem, located by file, key path (``arms[1].stages[0].condition``) and line."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        key: str | None = None,
        line: int | None = None,
    ) -> None:
        self.file, self.key, self.line, self.detail = file, key, line, message
        super().__init__(self._format())

    def _format(self) -> str:
        where = []
        if self.file:
            where.append(f"{self.file}" + (f":{self.line}" if self.line else ""))
        if self.key:
            where.append(f"key '{self.key}'")
        prefix = ", ".join(where)
        return f"{prefix}: {self.detail}" if prefix else self.detail


class RecipeErrors(KvisionError):
    """Several recipe problems found in one validation pass, reported together."""

    def __init__(self, errors: list[RecipeError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' Did you mean: 'x'?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean: '{close[0]}'?" if close else ""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> KvisionError:
    """A KvisionError for an unknown registry name, with a suggestion and the allowed names."""
    choices = sorted(choices)
    return KvisionError(
        f"Unknown {kind} '{name}'.{did_you_mean(name, choices)} Known: {', '.join(choices)}."
    )


#: C0 and C1 control characters and DEL, but not tab and newline.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))}
_CONTROL_ONE_LINE = {**_CONTROL, 0x09: "\\t", 0x0A: "\\n"}
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")


def printable(text: object, *, one_line: bool = True) -> str:
    """``text`` read from a file (a run name, a sidecar's class name, a recipe string), safe
    to print on a terminal: control characters (escape sequences that set the title or clear
    the screen, carriage returns that overwrite a line) shown escaped, e.g. ``\\x1b``.

    ``one_line``: tab and newline escaped too (names, table cells); else kept (paragraphs).
    Bidirectional overrides (U+202A..U+202E, U+2066..U+2069) are escaped as well.
    """
    table = _CONTROL_ONE_LINE if one_line else _CONTROL
    out = str(text).translate(table)
    return _BIDI.sub(lambda m: f"\\u{ord(m.group()):04x}", out)


# scheme://user:PASSWORD@host and ?password=... / &sslpassword=... in text meant for a file.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.-]*://[^:/@\s]*:)\S*@")
_QUERY_PASSWORD = re.compile(r"([?&](?:ssl)?password=)[^&\s]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` (a command line, a message) with every URL's password replaced by ``***``."""
    return _QUERY_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


#: errno values of an OSError that are the user's to fix (a path that is wrong, a folder
#: that is read-only, a name too long); others (EIO, ENOMEM...) are real failures.
USER_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ENOENT",
        "EACCES",
        "EPERM",
        "EROFS",
        "ENOTDIR",
        "EISDIR",
        "ENAMETOOLONG",
        "EEXIST",
        "ELOOP",
        "ENOTEMPTY",
        "EXDEV",
        "EINVAL",
    )
)

NESTED_TOO_DEEP = (
    "The input is nested too deeply to read: thousands of nested arrays or tables in a "
    "recipe, a --set value or a JSON file. Nothing was written."
)


def os_error_message(exc: OSError) -> str | None:
    """One paragraph for an OSError caused by a path the user gave (naming the path and the
    cause), or None for a failure that is not the user's."""
    if exc.errno not in USER_ERRNOS or not exc.filename:
        return None
    path = printable(exc.filename)
    other = f" -> '{printable(exc.filename2)}'" if exc.filename2 else ""
    hint = {
        errno.ENAMETOOLONG: " Use a shorter file name (most filesystems allow 255 bytes).",
        errno.EROFS: " Choose a folder on a writable filesystem.",
        errno.EACCES: " Choose a folder you may write to, or fix its permissions.",
        errno.EISDIR: " Give a file name, not a folder.",
        errno.ENOTDIR: " A part of the path is a file, not a folder.",
    }.get(exc.errno, "")
    return f"Cannot use '{path}'{other}: {exc.strerror or exc}.{hint}"
