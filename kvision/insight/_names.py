"""File names of insight artifacts, apart from the plotting helpers.

``report.md``, ``kvision viz`` and the hooks name files without drawing anything, so they
import this module rather than ``_plot`` (which loads Matplotlib and OpenCV: 40 MiB of
resident memory that a run without figures never needs).
"""

from __future__ import annotations

import re


def slug(text: str) -> str:
    """A file-name-safe version of ``text`` (letters, digits, '.', '_' and '-' kept)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-")
    return cleaned or "unnamed"
