"""One ``--set`` option and one KEY=VALUE parser for every command."""

from __future__ import annotations

import argparse

import pytest

from kvision.cli import build_parser
from kvision.errors import KvisionError
from kvision.keyvalue import parse_value, split_key_value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("64", 64),
        ("1e-3", 1e-3),
        ("true", True),
        ("[32, 32]", [32, 32]),
        ("[32,32]", [32, 32]),
        ('"x y"', "x y"),
        ("builtin:fashion7k", "builtin:fashion7k"),
        (" adam ", "adam"),
    ],
)
def test_values_are_toml_and_bare_words_are_strings(text, value):
    assert parse_value(text) == value


def test_a_pair_without_equals_names_the_form():
    assert split_key_value("a.b = [1,2]", "x=1") == ("a.b", [1, 2])
    with pytest.raises(
        KvisionError, match=r"'downscale' is not of the form key=value \(e.g. --set x=1\)"
    ):
        split_key_value("downscale", "x=1")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_set_option_lands_in_args_overrides():
    parser = build_parser()
    with_set = [
        name
        for name, sub in _subparsers(parser).items()
        if any("--set" in a.option_strings for a in sub._actions)
    ]
    assert {"run", "validate", "sweep", "models", "data"} <= set(with_set)
    for name in with_set:
        target = {"models": ["lenet"], "sweep": ["r.toml"]}.get(name, ["r.toml"])
        args = parser.parse_args([name, *target, "--set", "k=1"])
        assert args.overrides == ["k=1"], name
