"""MkDocs hooks: the reference tables of the docs, generated from the code at build time.

A page asks for a table with a marker on a line of its own, e.g.
``<!-- kvision: recipe-keys training -->``. Markers:

- ``recipe-keys SECTION``: every key of a recipe section (``experiment``, ``data``,
  ``conditions``, ``models``, ``arms``, ``training``, ``evaluate``, ``output``, ``insight``,
  ``sweep``) with its type, default and help, from the schema (kvision/recipe/schema*.py).
- ``models``: every architecture with its parameter count at its usual input, counted by
  building it on torch's meta device (no weights), and ``model-options``: their options.
- ``recipes``: every shipped recipe file with its description.
- ``cli``: the ``--help`` of ``kvision`` and of each subcommand, from argparse.
- ``event-kinds``: the event kinds of events.jsonl (kvision.runs.events).
- ``measured NAME``: ``docs/measured/NAME.md`` as a benchmark wrote it (``--markdown``,
  stamped with machine, date and command); where none was measured yet, a note saying which
  command writes it.

An unknown marker fails the build, so a typo cannot leave a hole in the docs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- kvision: ([a-z-]+)(?: ([a-z_]+))? -->$", re.MULTILINE)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace every marker of a page with its generated table."""
    return MARKER.sub(lambda m: _generate(m.group(1), m.group(2), page.file.src_path), markdown)


def _generate(kind: str, arg: str | None, where: str) -> str:
    generators = {
        "recipe-keys": recipe_keys,
        "models": lambda _: model_table(),
        "model-options": lambda _: model_options(),
        "recipes": lambda _: recipe_files(),
        "cli": lambda _: cli_help(),
        "event-kinds": lambda _: event_kinds(),
        "measured": measured,
    }
    if kind not in generators:
        raise ValueError(
            f"{where}: unknown kvision marker '{kind}'; known: {', '.join(generators)}"
        )
    return generators[kind](arg)


# -- recipe keys ------------------------------------------------------------------------------
def recipe_keys(section: str | None) -> str:
    """The keys of one recipe section as a table: key, type, default, meaning."""
    from kvision.recipe.schema import Recipe

    fields = {f.name: f for f in dataclasses.fields(Recipe) if f.init}
    if section not in fields:
        raise ValueError(f"unknown recipe section '{section}'; known: {', '.join(fields)}")
    hints = typing.get_type_hints(Recipe)
    rows = list(_rows(hints[section], section))
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| `{key}` | {kind} | {default} | {text} |" for key, kind, default, text in rows]
    return "\n".join(lines) + "\n"


def _rows(tp: Any, prefix: str):
    """(key, type, default, help) for every leaf under annotation ``tp`` at ``prefix``."""
    inner = _without_none(tp)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    if origin is dict and dataclasses.is_dataclass(args[1]):
        yield from _rows(args[1], f"{prefix}.NAME")
    elif origin is tuple and args and dataclasses.is_dataclass(args[0]):
        yield from _rows(args[0], f"{prefix}[]")
    elif dataclasses.is_dataclass(inner):
        yield from _dataclass_rows(inner, prefix)


def _dataclass_rows(cls: type, prefix: str):
    from kvision.recipe.spec import rules_of

    hints = typing.get_type_hints(cls)
    extra = getattr(cls, "EXTRA_KEYS", None)
    for f in dataclasses.fields(cls):
        if not f.init or f.name == extra:
            continue
        key, tp, rules = f"{prefix}.{f.name}", hints[f.name], rules_of(f)
        if _is_table(tp):
            yield key, _type_name(tp), _default(f), _escape(rules.help)
            yield from _rows(tp, key)
            continue
        yield key, _type_name(tp), _default(f), _escape(rules.help + _limits(rules))
    if extra and getattr(cls, "EXTRA_SCHEMA", None) is None:
        yield (
            f"{prefix}.OPTION",
            "any",
            "–",
            "the architecture's own options (see [Models](models.md#options))",
        )
    elif extra:  # a stage's [training] overrides: listed once, not as a copy of [training]
        yield (
            f"{prefix}.KEY",
            "–",
            "from `[training]`",
            "any `[training]` key (see [Training](training.md#training-keys)), overriding it "
            "for this stage; tables merge key by key",
        )


def _is_table(tp: Any) -> bool:
    inner = _without_none(tp)
    origin, args = typing.get_origin(inner), typing.get_args(inner)
    return dataclasses.is_dataclass(inner) or (
        origin in (dict, tuple)
        and bool(args)
        and dataclasses.is_dataclass(args[-1] if origin is dict else args[0])
    )


def _without_none(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        rest = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return tp


def _type_name(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        names = [_type_name(a) for a in args if a is not type(None)]
        optional = " (optional)" if type(None) in args else ""
        return " or ".join(names) + optional
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"array of {_type_name(args[0])}"
        return "array [" + ", ".join(_type_name(a) for a in args) + "]"
    if origin is dict:
        return f"tables of {_type_name(args[1])}" if dataclasses.is_dataclass(args[1]) else "table"
    if dataclasses.is_dataclass(tp):
        return "table"
    return {bool: "bool", int: "int", float: "float", str: "string"}.get(tp, "any")


def _default(f: dataclasses.Field) -> str:
    from kvision.recipe.spec import to_plain

    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        return "**required**"
    if dataclasses.is_dataclass(value) or value is None:
        return "–"
    return _escape(f"`{_toml(to_plain(value))}`")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}" if value else "{}"
        )
    return repr(value)


def _limits(rules: Any) -> str:
    parts = [
        f"{sign} {_number(value)}"
        for sign, value in (("≥", rules.ge), (">", rules.gt), ("≤", rules.le), ("<", rules.lt))
        if value is not None
    ]
    if rules.choices:
        parts.insert(0, "one of " + ", ".join(f"`{c}`" for c in rules.choices))
    if rules.min_len:
        parts.append(f"at least {rules.min_len} entries")
    return f" ({'; '.join(parts)})" if parts else ""


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# -- models -----------------------------------------------------------------------------------
def model_table() -> str:
    """Every architecture: description, trainable parameters at its usual input, input."""
    import kvision  # noqa: F401  (the torch backend before keras)
    from kvision.models.catalog import MODELS
    from kvision.models.counting import count_parameters

    lines = [
        "| name | what it is | trainable parameters (classes) | default input | smallest side |",
        "|---|---|---:|---|---:|",
    ]
    for name in sorted(MODELS):
        e = MODELS[name]
        params = count_parameters(name, input_shape=e.default_input, num_classes=e.default_classes)
        shape = (
            "x".join(map(str, e.default_input))
            if len(e.default_input) == 3
            else f"{e.default_input[0]} feature(s)"
        )
        lines.append(
            f"| `{name}` | {_escape(e.description)} | {params:,} ({e.default_classes}) | "
            f"{shape} | {e.min_input if len(e.default_input) == 3 else '–'} |"
        )
    return "\n".join(lines) + "\n"


def model_options() -> str:
    """Every architecture option: which architectures take it, type, default, meaning."""
    from kvision.models.catalog import MODELS

    seen: dict[tuple, list[str]] = {}
    for name in sorted(MODELS):
        for o in MODELS[name].options:
            kinds = o.type if isinstance(o.type, tuple) else (o.type,)
            kind = " or ".join("none" if k is type(None) else k.__name__ for k in kinds)
            default = f"`{_toml(o.default)}`" if o.default is not None else "–"
            seen.setdefault((o.name, kind, default, o.help), []).append(name)
    lines = ["| key | architectures | type | default | meaning |", "|---|---|---|---|---|"]
    for (key, kind, default, text), names in sorted(seen.items()):
        archs = "all" if len(names) == len(MODELS) else ", ".join(f"`{n}`" for n in names)
        lines.append(f"| `{key}` | {archs} | {kind} | {default} | {_escape(text)} |")
    return "\n".join(lines) + "\n"


# -- recipes, CLI, events ------------------------------------------------------------------------
def recipe_files() -> str:
    """Every shipped recipe with its [experiment] description."""
    lines = ["| recipe | what it runs |", "|---|---|"]
    for path in sorted((ROOT / "recipes").glob("*.toml")):
        text = tomllib.loads(path.read_text("utf-8")).get("experiment", {}).get("description", "")
        lines.append(f"| `recipes/{path.name}` | {_escape(text.strip())} |")
    return "\n".join(lines) + "\n"


def cli_help() -> str:
    """``kvision --help`` and every subcommand's ``--help``, as argparse prints them."""
    import argparse

    from kvision.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal; fix it for the docs
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    parts = [f"## kvision\n\n```text\n{parser.format_help().rstrip()}\n```\n"]
    for name, p in sub.choices.items():
        parts.append(f"## kvision {name}\n\n```text\n{p.format_help().rstrip()}\n```\n")
    return "\n".join(parts)


MEASURED_BY = {
    "main_job": "python benchmarks/main_job.py --markdown docs/measured/main_job.md",
    "tui_startup": "python benchmarks/tui_startup.py --big-run 8x3000 "
    "--markdown docs/measured/tui_startup.md",
    "tui_refresh": "python benchmarks/tui_refresh.py --trials 8 --epochs 3000 "
    "--markdown docs/measured/tui_refresh.md",
    "data_throughput": "python benchmarks/data_throughput.py "
    "--markdown docs/measured/data_throughput.md",
    "data_scale": "python benchmarks/data_scale.py --sizes 2000 20000 --variants blurred "
    "--torchvision-python PYTHON "
    "--markdown docs/measured/data_scale.md",
    "data_scale_clear": "python benchmarks/data_scale.py --sizes 2000 20000 --variants clear "
    "--torchvision-python PYTHON --markdown docs/measured/data_scale_clear.md",
    "run_scale": "python benchmarks/run_scale.py --sizes 2000 20000 --cap 4G "
    "--markdown docs/measured/run_scale.md",
    "data_modes": "python benchmarks/data_modes.py --sizes 200 800 "
    "--markdown docs/measured/data_modes.md",
    "train_speed": "kvision bench --repeats 5 --markdown docs/measured/train_speed.md",
    "train_speed_before": "kvision bench --repeats 5 --markdown docs/measured/train_speed_before.md",
    "infer_capture": "kvision bench --mode infer --repeats 5 "
    "--markdown docs/measured/infer_capture.md",
    "infer_capture_before": "kvision bench --mode infer --repeats 5 "
    "--markdown docs/measured/infer_capture_before.md",
    "memory": "python benchmarks/memory.py --markdown docs/measured/memory.md",
    "memory_import": "python benchmarks/memory.py --case import "
    "--markdown docs/measured/memory_import.md",
    "memory_import_before": "python benchmarks/memory.py --case import "
    "--markdown docs/measured/memory_import_before.md",
    "import_cost": "python benchmarks/import_cost.py --markdown docs/measured/import_cost.md",
    "train_speed_round5": "kvision bench --repeats 5 --json --markdown /work/scratch/bench_full.md "
    "--note NOTE (copied unchanged to docs/measured/train_speed_round5.md)",
    "run_profile_pause": "python benchmarks/run_profile.py BEFORE1 AFTER1 BEFORE2 AFTER2 BEFORE3 "
    "AFTER3 --label ... --markdown docs/measured/run_profile_pause.md --note NOTE",
    "run_profile_round5_end": "python benchmarks/run_profile.py BEFORE1 AFTER1 BEFORE2 AFTER2 "
    "--label ... --markdown docs/measured/run_profile_round5_end.md --note NOTE",
    "memory_round5": "python benchmarks/memory.py --markdown /work/scratch/memory_round5.md "
    "--note NOTE (copied unchanged to docs/measured/memory_round5.md)",
    "sweep_batch": "python benchmarks/sweep_batch.py --rounds 6 "
    "--markdown docs/measured/sweep_batch.md",
    "import_time": "python benchmarks/import_time.py --rounds 7 --markdown docs/measured/import_time.md",
    "memory_export": "python benchmarks/memory.py --case main-job "
    "--markdown /work/scratch/memory_export.md --note NOTE (copied unchanged to "
    "docs/measured/memory_export.md)",
    "relu_in_place": "python benchmarks/relu_in_place.py --rounds 25 "
    "--markdown docs/measured/relu_in_place.md --note NOTE",
    "run_profile_round6": "python benchmarks/run_profile.py BEFORE1 AFTER1 BEFORE2 AFTER2 "
    "BEFORE3 AFTER3 --label ... --markdown docs/measured/run_profile_round6.md --note NOTE",
    "forward_overhead": "python benchmarks/forward_overhead.py --rounds 30 "
    "--markdown docs/measured/forward_overhead.md --note NOTE",
    "train_speed_round6": "kvision bench --repeats 5 --json --markdown /work/scratch/bench_r6.md "
    "--note NOTE (copied unchanged to docs/measured/train_speed_round6.md)",
    "export_cost": "python benchmarks/export_cost.py --rounds 7 "
    "--markdown docs/measured/export_cost.md --note NOTE",
    "train_gap_before": "python benchmarks/train_gap.py --rounds 30 --markdown "
    "docs/measured/train_gap.md --note NOTE (before the lean train step; renamed)",
    "train_gap_lenet_before": "python benchmarks/train_gap.py --case lenet-28-gray --rounds 30 "
    "--markdown docs/measured/train_gap_lenet.md --note NOTE (before the lean train step; "
    "renamed)",
    "train_speed_round7_before": "kvision bench --repeats 5 --json --markdown "
    "docs/measured/train_speed_round7.md --note NOTE (before the lean train step; renamed)",
    "train_gap": "python benchmarks/train_gap.py --rounds 30 "
    "--markdown docs/measured/train_gap.md --note NOTE",
    "train_gap_lenet": "python benchmarks/train_gap.py --case lenet-28-gray --rounds 30 "
    "--markdown docs/measured/train_gap_lenet.md --note NOTE",
    "batch_end_dispatch": "python benchmarks/fit_ways.py --ways batch-end --rounds 15 "
    "--markdown docs/measured/batch_end_dispatch.md --note NOTE",
    "lean_train_step": "python benchmarks/fit_ways.py --ways train-step --rounds 15 "
    "--markdown docs/measured/lean_train_step.md --note NOTE",
    "train_speed_round7": "kvision bench --repeats 5 --json "
    "--markdown docs/measured/train_speed_round7.md --note NOTE",
    "run_profile_export": "python benchmarks/run_profile.py BEFORE1 AFTER1 BEFORE2 AFTER2 "
    "BEFORE3 AFTER3 --label ... --markdown docs/measured/run_profile_export.md --note NOTE",
    "run_profile_drain": "python benchmarks/run_profile.py BEFORE1 AFTER1 BEFORE2 AFTER2 BEFORE3 "
    "AFTER3 --label ... --markdown docs/measured/run_profile_drain.md",
    "run_profile": "python benchmarks/run_profile.py RUN_DIR ... "
    "--markdown docs/measured/run_profile.md",
    "run_profile_worker_loaded": "python benchmarks/run_profile.py BEFORE AFTER "
    "--markdown docs/measured/run_profile_worker_loaded.md --note NOTE",
    "run_profile_checkpoint": "python benchmarks/run_profile.py BEFORE AFTER BEFORE AFTER "
    "--markdown docs/measured/run_profile_checkpoint.md --note NOTE",
    "run_profile_no_mpl": "python benchmarks/run_profile.py BEFORE AFTER ... "
    "--markdown docs/measured/run_profile_no_mpl.md --note NOTE",
    "eval_batch": "python benchmarks/eval_batch.py --markdown docs/measured/eval_batch.md",
    "memory_lenet_before": "python benchmarks/memory.py --case fmnist-lenet "
    "--markdown docs/measured/memory_lenet_before.md (in a worktree of the commit before)",
    "memory_lenet": "python benchmarks/memory.py --case fmnist-lenet "
    "--markdown docs/measured/memory_lenet.md",
    "checkpoint_write": "python benchmarks/checkpoint_write.py "
    "--markdown docs/measured/checkpoint_write.md",
    "model_size": "python benchmarks/model_size.py --markdown docs/measured/model_size.md",
    "export_compare": "python benchmarks/export_compare.py "
    "--markdown docs/measured/export_compare.md",
    "run_size": "python benchmarks/run_size.py RUN_DIR --markdown docs/measured/run_size.md",
    "load_share": "python benchmarks/load_share.py --markdown docs/measured/load_share.md",
    "evidence": "python benchmarks/evidence.py RUN_DIR ... --markdown docs/measured/evidence.md",
    "shared_sweep": "python benchmarks/shared_sweep.py --workers 1 --workers 3 "
    "--markdown docs/measured/shared_sweep.md",
    "test_suite": "python benchmarks/suite_time.py --only quick whole serial "
    "--markdown docs/measured/test_suite.md",
    "train_speed_recheck": "kvision bench --repeats 5 --json "
    "--markdown docs/measured/train_speed_recheck.md",
    "heap_ab": "python benchmarks/heap_ab.py --rounds 2 --markdown docs/measured/heap_ab.md",
    "memory_before_dynamo": "python benchmarks/memory.py "
    "--markdown docs/measured/memory_before_dynamo.md (in a worktree of the commit before)",
    "run_profile_dynamo_heap": "python benchmarks/run_profile.py BEFORE AFTER BEFORE AFTER "
    "--markdown docs/measured/run_profile_dynamo_heap.md --note NOTE",
    "run_profile_render_hold": "python benchmarks/run_profile.py BEFORE AFTER BEFORE AFTER "
    "BEFORE AFTER --markdown docs/measured/run_profile_render_hold.md --note NOTE",
    "heap_breakdown": "python benchmarks/heap_breakdown.py "
    "--markdown docs/measured/heap_breakdown.md --note NOTE",
    "run_profile_slim_checkpoint": "python benchmarks/run_profile.py BEFORE AFTER BEFORE "
    "AFTER BEFORE AFTER --markdown docs/measured/run_profile_slim_checkpoint.md --note NOTE",
    "run_profile_reuse": "python benchmarks/run_profile.py BEFORE AFTER BEFORE AFTER "
    "BEFORE AFTER --markdown docs/measured/run_profile_reuse.md --note NOTE",
    "run_profile_reuse_first3": "python benchmarks/run_profile.py BEFORE AFTER BEFORE "
    "AFTER BEFORE AFTER --markdown docs/measured/run_profile_reuse_first3.md --note NOTE",
    "infer_checks_before_1": "kvision bench --case lenet-28-gray --case vgg11/8-64 "
    "--mode infer --repeats 5 --markdown docs/measured/infer_checks_before_1.md",
    "infer_checks_after_1": "kvision bench --case lenet-28-gray --case vgg11/8-64 "
    "--mode infer --repeats 5 --markdown docs/measured/infer_checks_after_1.md",
    "infer_checks_before_2": "kvision bench --case lenet-28-gray --case vgg11/8-64 "
    "--mode infer --repeats 5 --markdown docs/measured/infer_checks_before_2.md",
    "infer_checks_after_2": "kvision bench --case lenet-28-gray --case vgg11/8-64 "
    "--mode infer --repeats 5 --markdown docs/measured/infer_checks_after_2.md",
    "infer_checks_before_3": "kvision bench --case lenet-28-gray --case vgg11/8-64 "
    "--mode infer --repeats 5 --markdown docs/measured/infer_checks_before_3.md",
    "infer_checks_after_3": "kvision bench --case lenet-28-gray --case vgg11/8-64 "
    "--mode infer --repeats 5 --markdown docs/measured/infer_checks_after_3.md",
    "heap_breakdown_glibc": "KVISION_HEAP=glibc python benchmarks/heap_breakdown.py "
    "--markdown docs/measured/heap_breakdown_glibc.md --note NOTE",
}


def measured(name: str | None) -> str:
    """A measured-figures file, included as written; or how to write it."""
    if name not in MEASURED_BY:
        raise ValueError(f"unknown measured file '{name}'; known: {', '.join(MEASURED_BY)}")
    path = ROOT / "docs" / "measured" / f"{name}.md"
    if path.is_file():
        return path.read_text("utf-8")
    return (
        f'!!! note "Not measured in this checkout"\n    `{MEASURED_BY[name]}` measures it '
        "and writes the file this page shows.\n"
    )


def event_kinds() -> str:
    """The event kinds, as kvision.runs.events defines them."""
    from kvision.runs.events import EVENT_KINDS

    return ", ".join(f"`{k}`" for k in EVENT_KINDS) + "\n"
