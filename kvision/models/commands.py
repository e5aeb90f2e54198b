"""``kvision models [NAME]``: registered by kvision/cli.py; imports only argparse until run."""

from __future__ import annotations

import argparse

from kvision.keyvalue import add_set_option


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``models`` subcommand to the CLI's subparsers."""
    parser = subparsers.add_parser(
        "models",
        help="list the model architectures, or print one's layer table",
        description="Without NAME: every architecture in the catalogue (name, family, usual "
        "input, classes), at once, without building any. With NAME: that "
        "model's layer table (layer, stage, type, output, params) and its "
        "trainable parameter count.",
    )
    parser.add_argument("name", nargs="?", help="architecture name, e.g. alexnet_seed")
    parser.add_argument(
        "--input",
        metavar="HxWxC",
        help="input shape for the layer table, "
        "e.g. 64x64x3 (default: the architecture's usual input)",
    )
    parser.add_argument("--classes", type=int, help="number of outputs (default: usual)")
    add_set_option(parser, "an architecture option (repeatable), e.g. downscale=2")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the list or the table; user mistakes raise KvisionError (exit 2 in the CLI)."""
    from kvision.models.catalog import get_entry

    if args.name is None:
        from kvision.models.listing import format_model_list

        print(format_model_list())
        return 0
    get_entry(args.name)  # unknown names fail before keras is imported
    from kvision.models.listing import format_layer_table

    print(
        format_layer_table(
            args.name,
            input_shape=_parse_shape(args.input),
            num_classes=args.classes,
            **_parse_options(args.overrides),
        )
    )
    return 0


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    from kvision.errors import KvisionError

    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise KvisionError(
            f"--input must look like 64x64x3 (height x width x channels). Received: --input {text}."
        ) from None


def _parse_options(pairs: list[str]) -> dict[str, object]:
    """``downscale=2`` -> {"downscale": 2}: values in TOML syntax (``[32,32]`` is a list)."""
    from kvision.keyvalue import split_key_value

    return dict(split_key_value(pair, "downscale=2") for pair in pairs)
