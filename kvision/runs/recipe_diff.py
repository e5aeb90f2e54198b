"""What differs between two runs' resolved recipes, key path by key path.

`kvision compare` and the TUI's compare screen say it before any number, and pair trials
across runs only when the recipes differ in nothing but the seed: otherwise a difference
between the runs mixes the seed's share with the effect of every other change.
"""

from __future__ import annotations

#: Keys that do not change what is trained or measured: where results go, and prose.
NOT_THE_EXPERIMENT = ("experiment.description", "output.")
#: Differences under which runs still pair: another draw of the seed, and how many repeats
#: ran (repeat r of either run is the same experiment, seeded seed + r).
PAIRABLE = ("experiment.seed", "experiment.repeats")


def flatten(value: object, prefix: str = "") -> dict[str, object]:
    """``{"a": {"b": [1, {"c": 2}]}}`` -> ``{"a.b[0]": 1, "a.b[1].c": 2}``."""
    if isinstance(value, dict):
        out: dict[str, object] = {}
        for key, inner in value.items():
            out |= flatten(inner, f"{prefix}.{key}" if prefix else str(key))
        return out or {prefix: {}}
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        out = {}
        for i, inner in enumerate(value):
            out |= flatten(inner, f"{prefix}[{i}]")
        return out or {prefix: []}
    return {prefix: value}


def recipe_differences(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """(key path, value in a, value in b) for every key whose values differ (a missing key
    reads as None), in a's key order then b's; keys that are not the experiment left out."""
    fa, fb = flatten(a), flatten(b)
    keys = list(dict.fromkeys([*fa, *fb]))
    return [
        (k, fa.get(k), fb.get(k))
        for k in keys
        if fa.get(k) != fb.get(k) and not k.startswith(NOT_THE_EXPERIMENT)
    ]


def beyond_seed(differences: list[tuple[str, object, object]]) -> list[str]:
    """The differing keys other than the seed (and the number of repeats): what makes paired
    statistics meaningless."""
    return [k for k, _, _ in differences if k not in PAIRABLE]


def describe(differences: list[tuple[str, object, object]], limit: int = 8) -> str:
    """'data.limit_per_class 150 -> 30; arms[0].stages[0].epochs 2 -> 4' (at most ``limit``)."""
    if not differences:
        return "the same recipe"
    shown = "; ".join(f"{k} {_show(x)} -> {_show(y)}" for k, x, y in differences[:limit])
    more = len(differences) - limit
    return shown + (f"; and {more} more" if more > 0 else "")


def _show(value: object) -> str:
    return "(absent)" if value is None else repr(value) if isinstance(value, str) else str(value)
