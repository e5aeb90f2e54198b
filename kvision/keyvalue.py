"""``--set KEY=VALUE``: the one declaration of the option and the one parser of its values.

Values are TOML (``64``, ``1e-3``, ``true``, ``[32, 32]``, ``"text"``); a bare word that is
not TOML, such as ``builtin:fashion7k``, is meant as a string. Light (argparse and tomllib
only): the CLI's command modules import it when ``kvision --help`` builds the parser.
"""

from __future__ import annotations

import argparse
import tomllib
from typing import Any

from kvision.errors import KvisionError


def add_set_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--set KEY=VALUE`` (repeatable), collected in ``args.overrides``."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help
    )


def parse_value(text: str) -> Any:
    """A value in TOML syntax; a bare word that is not TOML stays a string."""
    text = text.strip()
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def split_key_value(item: str, example: str) -> tuple[str, Any]:
    """``"a.b=[1, 2]"`` -> ``("a.b", [1, 2])``; ``example`` shows the form in the error."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise KvisionError(
            f"override '{item}' is not of the form key=value (e.g. --set {example})."
        )
    return key, parse_value(text)
