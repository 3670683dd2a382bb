"""`${…}` templating of configuration values and shell commands, on the safe evaluator.

A template is evaluated only when meant for us (free names meet `roots`, or `${{ … }}`, or a
call, or only constants and functions): `${HOME}`, `${VAR:-x}`, `${1}` and awk programs stay as
written. Shell commands also get QA-Board's single-brace forms (`{input_path}`). The
expressions themselves are evaluated by `qaflow.config.evaluator` (what is allowed, the
limits); which names each interpolation pass offers is `qaflow.config.passes`. Every failure
is an InterpolationError "cannot evaluate <template>: <reason>"; callers add where.
"""

from __future__ import annotations

import ast
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from qaflow.config.evaluator import (
    FUNCTIONS,
    Refused,
    evaluate,
    evaluate_tree,
    free_in,
    free_names,
    listing,
    parse,
    parses,
    reason_of,
    template_error,
    try_parse,
)
from qaflow.config.templates import KNOWN_ROOTS, has_templates
from qaflow.errors import InterpolationError

__all__ = [
    "KNOWN_ROOTS",
    "evaluate",
    "free_names",
    "has_templates",
    "interpolate",
    "interpolate_command",
]


_Mode = Literal["dollar", "double", "single"]

_KEEP = object()  # marker: a template that is not meant for us stays as written


@dataclass(frozen=True)
class _Evaluated:
    value: object
    template: str
    items: bool = False  # a comprehension: its items, space-separated, inside a string


@dataclass(frozen=True)
class _Items:
    """The value of a comprehension, as `_resolve` returns it (see `_Evaluated.items`)."""

    value: object


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp)


@dataclass(frozen=True)
class _Context:
    names: Mapping[str, object]
    roots: frozenset[str]
    quote: bool
    later: frozenset[str] = frozenset()  # names given in a later pass: templates using them wait


# --- templates -----------------------------------------------------------------------------------

_START = re.compile(r"\$\{|\{")
_DOLLAR = re.compile(r"\$\{")
_LEADING = re.compile(r"\s*([A-Za-z_]\w*)")


def _match_brace(text: str, start: int) -> int | None:
    """Index of the `}` closing the `{` at text[start], skipping quoted strings; None if none."""
    depth, quote, index = 0, "", start
    while index < len(text):
        char = text[index]
        if quote:
            if char == "\\":
                index += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
        index += 1
    return None


def _ours_without_roots(tree: ast.Expression, free: set[str]) -> bool:
    """A `${…}` naming no root is still ours if it calls something, or reads only functions and
    is not a bare name or integer (the shapes of shell parameters like ${HOME} or ${1})."""
    body = tree.body
    if any(isinstance(node, ast.Call) for node in ast.walk(body)):
        return True
    if isinstance(body, ast.Name) or (isinstance(body, ast.Constant) and type(body.value) is int):
        return False
    return free <= FUNCTIONS.keys()


def _resolve(expression: str, template: str, ctx: _Context, mode: _Mode) -> object:
    """The value of one template, or _KEEP when it is not meant for us."""
    try:
        tree = parse(expression)
        free = free_in(tree)
    except Refused as exc:
        leading = _LEADING.match(expression)
        named = leading is not None and leading.group(1) in ctx.roots
        if mode == "double" or (mode == "dollar" and named):  # `${{ … }}` is always ours
            raise template_error(template, str(exc)) from None
        return _KEEP
    relevant = free & ctx.roots
    if relevant & ctx.later:
        return _KEEP
    if not relevant:
        ours = mode == "double" or (mode == "dollar" and _ours_without_roots(tree, free))
        if not ours:
            return _KEEP
    missing = sorted(name for name in relevant if name not in ctx.names)
    if missing:
        defined = listing(ctx.names)
        raise template_error(
            template, f"name '{missing[0]}' is not defined here (defined: {defined})"
        )
    value = evaluate_tree(tree, template, ctx.names)
    return _Items(value) if isinstance(tree.body, _COMPREHENSIONS) else value


def _resolve_dollar(template: str, ctx: _Context) -> object:
    content = template[2:-1]
    if not content.strip() or content.replace(" ", "") == "{}":
        raise template_error(template, "the expression is empty: write one between the braces")
    if content[:1] == "{" and _match_brace(content, 0) == len(content) - 1:
        inner = content[1:-1]
        expression = content if not parses(inner) and parses(content) else inner
        return _resolve(expression, template, ctx, "double")
    return _resolve(content, template, ctx, "dollar")


def _resolve_single(template: str, ctx: _Context) -> object:
    tree = try_parse(template)
    whole = tree is not None and isinstance(tree.body, ast.SetComp)
    return _resolve(template if whole else template[1:-1], template, ctx, "single")


def _split(text: str, ctx: _Context, *, single: bool) -> list[str | _Evaluated]:
    """Cut text into literal strings and evaluated templates, scanning left to right."""
    parts: list[str | _Evaluated] = []
    position = cursor = 0
    protected = -1  # single-brace forms are not looked for inside a `${…}` left as written
    pattern = _START if single else _DOLLAR
    while (match := pattern.search(text, cursor)) is not None:
        start, dollar = match.start(), match.group() == "${"
        cursor = match.end()
        if not dollar and start <= protected:
            continue
        close = _match_brace(text, start + 1 if dollar else start)
        if close is None:
            continue
        template = text[start : close + 1]
        value = _resolve_dollar(template, ctx) if dollar else _resolve_single(template, ctx)
        if value is _KEEP:
            protected = max(protected, close) if dollar else protected
            continue
        if start > position:
            parts.append(text[position:start])
        if isinstance(value, _Items):
            parts.append(_Evaluated(value.value, template, items=True))
        else:
            parts.append(_Evaluated(value, template))
        position = cursor = close + 1
    if position < len(text) or not parts:
        parts.append(text[position:])
    return parts


def _format(value: object, quote: bool) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        return " ".join(_format_scalar(item, quote) for item in value)
    return _format_scalar(value, quote)


def _format_scalar(value: object, quote: bool) -> str:
    text = str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return shlex.quote(text) if quote else text


def _render(part: str | _Evaluated, quote: bool) -> str:
    """A part of a string. In a command: shell-quoted, lists space-separated, 84.0 as 84. In a
    configuration, a value is written as QA-Board's str.format writes it (84.0, `(0, 1)`,
    `['a', 'b']`), except a comprehension's items, space-separated."""
    if isinstance(part, str):
        return part
    try:
        if not quote and not part.items:
            return str(part.value)
        return _format(part.value, quote)
    except Exception as exc:
        raise template_error(part.template, f"cannot format its value: {reason_of(exc)}") from exc


def _context(
    names: Mapping[str, object],
    roots: frozenset[str] | None,
    quote: bool,
    later: frozenset[str] = frozenset(),
) -> _Context:
    known = KNOWN_ROOTS | frozenset(names) | later if roots is None else roots | later
    return _Context(names, known, quote, later)


def _interpolate(value: object, ctx: _Context) -> object:
    if isinstance(value, str):
        if "${" not in value:
            return value
        parts = _split(value, ctx, single=False)
        if len(parts) == 1 and isinstance(parts[0], _Evaluated):
            return parts[0].value
        return "".join(_render(part, ctx.quote) for part in parts)
    if isinstance(value, list):
        return [_interpolate(item, ctx) for item in value]
    if isinstance(value, dict):
        return {key: _interpolate(item, ctx) for key, item in value.items()}
    return value


# --- public API ----------------------------------------------------------------------------------


def interpolate(
    value: object,
    names: Mapping[str, object],
    *,
    roots: frozenset[str] | None = None,
    quote: bool = False,
    later: frozenset[str] = frozenset(),
) -> object:
    """Replace `${expr}` and `${{ expr }}` in every string inside value (recursing into lists and
    dict values, not keys; other types returned unchanged). Returns a new object, never mutates.
    A string that is exactly one template becomes the template's value, with its type.
    A template that reads a name in `later` is left as written, for a later pass."""
    try:
        return _interpolate(value, _context(names, roots, quote, later))
    except RecursionError:
        raise InterpolationError("cannot interpolate: the value is nested too deeply") from None


def interpolate_command(
    command: str,
    names: Mapping[str, object],
    *,
    roots: frozenset[str] | None = None,
    later: frozenset[str] = frozenset(),
) -> str:
    """For shell commands: like interpolate(..., quote=True) on a string, plus QA-Board's
    single-brace forms `{input_path}`, `{o.output_dir for o in needs["b"]}`, when they name a root."""
    if "{" not in command:
        return command
    parts = _split(command, _context(names, roots, True, later), single=True)
    return "".join(_render(part, True) for part in parts)
