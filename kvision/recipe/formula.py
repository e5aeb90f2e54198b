"""Formulas in one variable ``x`` for function-fitting data, e.g. ``x**2 + 2*cos(x) + 2/exp(x)``.

Recipes never execute code, so a formula is not handed to ``eval``: it is parsed with
:mod:`ast` and accepted only if every node is arithmetic on numbers, ``x``, the constants
``pi`` and ``e``, and calls of the whitelisted functions below. Evaluation walks that
tree with NumPy, so a formula can compute nothing but a number per ``x``.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any

#: Functions a formula may call, by name, with the NumPy function name that computes them.
FUNCTIONS = {
    "sin": "sin",
    "cos": "cos",
    "tan": "tan",
    "arcsin": "arcsin",
    "arccos": "arccos",
    "arctan": "arctan",
    "sinh": "sinh",
    "cosh": "cosh",
    "tanh": "tanh",
    "exp": "exp",
    "log": "log",
    "log10": "log10",
    "log2": "log2",
    "sqrt": "sqrt",
    "abs": "abs",
    "sign": "sign",
    "floor": "floor",
    "ceil": "ceil",
}
CONSTANTS = {"pi": math.pi, "e": math.e}
VARIABLE = "x"
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
MAX_LENGTH = 500


class FormulaError(ValueError):
    """A formula that is not arithmetic in x; the message says what is not allowed."""


def parse_formula(text: str) -> ast.expr:
    """The checked expression tree of ``text``; FormulaError says what is wrong."""
    if len(text) > MAX_LENGTH:
        raise FormulaError(f"the formula is {len(text)} characters long; at most {MAX_LENGTH}.")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(
            f"'{text}' is not a formula: {exc.msg} at column {exc.offset}."
        ) from None
    _check(tree.body)
    if VARIABLE not in {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}:
        raise FormulaError(f"'{text}' does not use the variable x.")
    return tree.body


def _check(node: ast.AST) -> None:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, int | float):
            raise FormulaError(f"{node.value!r} is not a number.")
    elif isinstance(node, ast.Name):
        if node.id != VARIABLE and node.id not in CONSTANTS:
            raise FormulaError(_unknown(node.id, "name", [VARIABLE, *CONSTANTS]))
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        _check(node.left)
        _check(node.right)
    elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        _check(node.operand)
    elif isinstance(node, ast.Call):
        _check_call(node)
    else:
        raise FormulaError(
            f"'{ast.unparse(node)}' is not allowed: use numbers, x, pi, e, "
            "+ - * / ** % and the functions " + ", ".join(FUNCTIONS) + "."
        )


def _check_call(node: ast.Call) -> None:
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
        name = ast.unparse(node.func)
        raise FormulaError(_unknown(name, "function", FUNCTIONS))
    if len(node.args) != 1 or node.keywords:
        raise FormulaError(f"{node.func.id}() takes exactly one argument.")
    _check(node.args[0])


def _unknown(name: str, kind: str, known: Any) -> str:
    from kvision.errors import did_you_mean

    return f"unknown {kind} '{name}'.{did_you_mean(name, known)} Allowed: {', '.join(known)}."


def evaluate_formula(text: str, x: Any) -> Any:
    """The formula's value at every element of the NumPy array ``x`` (float64)."""
    import numpy as np

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return x if node.id == VARIABLE else CONSTANTS[node.id]
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](value(node.operand))
        return getattr(np, FUNCTIONS[node.func.id])(value(node.args[0]))  # a checked Call

    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):  # non-finite results are reported by the caller
        return np.broadcast_to(value(parse_formula(text)), x.shape).astype(np.float64)
