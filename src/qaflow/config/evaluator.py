"""The safe expression evaluator: Python syntax, evaluated node by node, never given to `eval`.

A walker evaluates the tree and allows only literals, names, attribute/subscript access,
displays, comprehensions, comparisons, boolean/unary/binary arithmetic, `x if c else y` and
calls of the functions in `FUNCTIONS` with positional arguments. Lambda, `:=`, f-strings,
keywords, unpacking, methods and `_attributes` are refused; sizes (length, depth, comprehension
steps, powers, repetitions) are bounded, and so are the values a call or a comparison goes
through and the value a whole expression may give (`qaflow.config.limits`). QA-Board semantics: `a.b` on a mapping is `a["b"]`,
`a[b]` with `b` a bare unbound name is `a["b"]`, `168 / 2` is 84, `round` rounds halves away
from zero, set forms give ordered lists. Every failure is an InterpolationError
"cannot evaluate <template>: <reason>"; a `Deferred` raised by a value read goes through as is.
The `${…}` templating on top of it is `qaflow.config.expressions`.
"""

from __future__ import annotations

import ast
import itertools
import math
import operator
import os.path
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from qaflow.config.limits import MAX_CALL_WORK, unfit_result, work
from qaflow.config.templates import Deferred
from qaflow.errors import InterpolationError

MAX_LENGTH = 2000
MAX_DEPTH = 100
MAX_STEPS = 100_000
MAX_SEQUENCE = 1_000_000
MAX_BUILT = 10_000_000
MAX_EXPONENT = 1000
MAX_POWER_BITS = 100_000
_CHEAP = frozenset({"len", "bool", "abs", "int", "float", "round", "floor", "ceil"})


class Refused(Exception):
    """Why an expression cannot be evaluated; turned into an InterpolationError by the caller."""


# --- allowed functions and operators -------------------------------------------------------------


def _round(number: float, ndigits: int | None = None) -> float:
    """round() with halves away from zero (2.5 -> 3, -2.5 -> -3), on the number's decimal text."""
    if not isinstance(number, int | float):
        raise TypeError("round() needs a number")
    if ndigits is not None and not isinstance(ndigits, int):
        raise TypeError("round() needs an integer number of digits")
    if isinstance(number, int) and (ndigits is None or ndigits >= 0):
        return int(number)
    if not math.isfinite(number):
        raise ValueError(f"cannot round {number}")
    digits = 0 if ndigits is None else max(-400, min(ndigits, 400))
    from decimal import ROUND_HALF_UP, Decimal, localcontext  # only to round a float

    with localcontext() as context:
        context.prec = 1000
        exact = Decimal(number) if isinstance(number, int) else Decimal(repr(number))
        rounded = exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return int(rounded) if ndigits is None or isinstance(number, int) else float(rounded)


def _join(items: Iterable[object], separator: str = " ") -> str:
    if not isinstance(separator, str):
        raise TypeError("join() needs a string separator")
    return separator.join(map(str, items))


def _sum(items: Iterable[Any], start: float = 0) -> Any:
    if not isinstance(start, int | float):
        raise TypeError("sum() only adds numbers")
    return sum(items, start)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    function.__name__: function
    for function in (min, max, abs, len, str, int, float, bool, sorted, list, any, all)
} | {"round": _round, "floor": math.floor, "ceil": math.ceil, "sum": _sum, "join": _join}
FUNCTIONS |= {"basename": os.path.basename, "dirname": os.path.dirname}


def _is_function(value: object) -> bool:
    return any(value is function for function in FUNCTIONS.values())


def _bounded(what: str, *values: Any) -> None:
    if work(values) > MAX_CALL_WORK:
        raise Refused(f"{what} would go through more than {MAX_CALL_WORK:,} values")


def checked_result(value: Any) -> Any:
    """The value of a whole expression, if a configuration can hold it (see `unfit_result`)."""
    reason = unfit_result(value, _is_function)
    if reason is not None:
        raise Refused(reason)
    return value


def _multiply(left: Any, right: Any) -> Any:
    for sequence, count in ((left, right), (right, left)):
        sized = isinstance(sequence, str | list | tuple) and isinstance(count, int)
        if sized and len(sequence) * count > MAX_SEQUENCE:
            raise Refused(f"repetition would build more than {MAX_SEQUENCE} items")
    return left * right


def _divide(left: Any, right: Any) -> Any:
    if isinstance(left, int) and isinstance(right, int) and right and left % right == 0:
        return left // right
    return left / right


def _modulo(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        raise Refused("string formatting with '%' is not allowed in expressions")
    return left % right


def _power(base: Any, exponent: Any) -> Any:
    if isinstance(exponent, int | float) and abs(exponent) > MAX_EXPONENT:
        raise Refused(f"exponent {exponent} is larger than {MAX_EXPONENT}")
    integers = isinstance(base, int) and isinstance(exponent, int) and exponent > 0
    if integers and base.bit_length() * exponent > MAX_POWER_BITS:
        raise Refused("the power would be too large")
    return base**exponent


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: _multiply,
    ast.Div: _divide,
} | {ast.FloorDiv: operator.floordiv, ast.Mod: _modulo, ast.Pow: _power}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = (
    {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le}
    | {ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not}
    | {ast.In: lambda left, right: left in right, ast.NotIn: lambda left, right: left not in right}
)
_NODE_NAMES = {"Lambda": "lambda", "NamedExpr": "':=' assignment", "Starred": "'*' unpacking"}
_NODE_NAMES |= {"JoinedStr": "f-string", "FormattedValue": "f-string", "Await": "await"}
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)


# --- the evaluator -------------------------------------------------------------------------------


class _Evaluator:
    """Evaluates one expression tree against names, node by node (see the module docstring)."""

    def __init__(self, names: Mapping[str, object]) -> None:
        self.names = names
        self.scopes: list[dict[str, object]] = []
        self.depth = 0
        self.steps = 0
        self.built = 0

    def eval(self, node: ast.AST) -> Any:
        handler = getattr(self, f"_eval_{type(node).__name__}", None)
        if handler is None:
            kind = type(node).__name__
            raise Refused(f"{_NODE_NAMES.get(kind, kind)} is not allowed in expressions")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise Refused("expression is nested too deeply")
            return handler(node)
        finally:
            self.depth -= 1

    def _account(self, value: Any) -> Any:
        if isinstance(value, str | list | tuple | dict):
            self.built += len(value)
            if self.built > MAX_BUILT:
                raise Refused("expression builds too much data")
        return value

    def _lookup(self, name: str) -> Any:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        if name in self.names:
            return self.names[name]
        if name in FUNCTIONS:
            return FUNCTIONS[name]
        raise Refused(f"name '{name}' is not defined (defined: {listing(self.names)})")

    def _container(self, node: ast.expr) -> Any:
        value = self.eval(node)
        if _is_function(value):
            raise Refused(f"'{ast.unparse(node)}' is a function: no attributes or items")
        return value

    def _eval_Constant(self, node: ast.Constant) -> Any:
        if node.value is None or type(node.value) in (str, int, float, bool):
            return node.value
        raise Refused(f"constant {node.value!r} is not allowed in expressions")

    def _eval_Name(self, node: ast.Name) -> Any:
        return self._lookup(node.id)

    def _eval_Attribute(self, node: ast.Attribute) -> Any:
        if node.attr.startswith("_"):
            raise Refused(f"attribute '{node.attr}' is not allowed")
        value = self._container(node.value)
        label = ast.unparse(node.value)
        if isinstance(value, Mapping):
            if node.attr in value:
                return value[node.attr]
            raise Refused(f"'{label}' has no key '{node.attr}' (it has: {listing(value)})")
        try:
            result = getattr(value, node.attr)
        except AttributeError:
            raise Refused(f"'{label}' has no attribute '{node.attr}'") from None
        if callable(result):
            raise Refused(f"attribute '{node.attr}' is not allowed: methods cannot be called")
        return result

    def _eval_Subscript(self, node: ast.Subscript) -> Any:
        value = self._container(node.value)
        index = node.slice
        bound = isinstance(index, ast.Name) and any(index.id in s for s in self.scopes)
        key = index.id if isinstance(index, ast.Name) and not bound else self.eval(index)
        return _item(value, key, ast.unparse(node.value))

    def _eval_Slice(self, node: ast.Slice) -> slice:
        parts = (node.lower, node.upper, node.step)
        return slice(*(None if part is None else self.eval(part) for part in parts))

    def _eval_List(self, node: ast.List | ast.Tuple | ast.Set) -> list[Any] | tuple[Any, ...]:
        items = [self.eval(element) for element in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items

    _eval_Tuple = _eval_Set = _eval_List

    def _eval_Dict(self, node: ast.Dict) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                raise Refused("'**' unpacking is not allowed in expressions")
            result[self.eval(key)] = self.eval(value)
        return result

    def _eval_ListComp(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp) -> list[Any]:
        return [self.eval(node.elt) for _ in self._loop(node.generators)]

    _eval_SetComp = _eval_GeneratorExp = _eval_ListComp

    def _eval_DictComp(self, node: ast.DictComp) -> dict[Any, Any]:
        return {self.eval(node.key): self.eval(node.value) for _ in self._loop(node.generators)}

    def _loop(self, generators: list[ast.comprehension]) -> Iterator[None]:
        self.scopes.append({})
        try:
            yield from self._bindings(generators, 0)
        finally:
            self.scopes.pop()

    def _bindings(self, generators: list[ast.comprehension], index: int) -> Iterator[None]:
        if index == len(generators):
            yield None
            return
        generator = generators[index]
        if generator.is_async:
            raise Refused("async comprehensions are not allowed in expressions")
        for item in self.eval(generator.iter):
            self.steps += 1
            if self.steps > MAX_STEPS:
                raise Refused(f"comprehensions take more than {MAX_STEPS} steps")
            _bind(generator.target, item, self.scopes[-1])
            if all(self.eval(condition) for condition in generator.ifs):
                yield from self._bindings(generators, index + 1)

    def _eval_Compare(self, node: ast.Compare) -> bool:
        left = self.eval(node.left)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = self.eval(comparator)
            _bounded("the comparison", left, right)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def _eval_BoolOp(self, node: ast.BoolOp) -> Any:
        stop_when = not isinstance(node.op, ast.And)
        value: Any = None
        for operand in node.values:
            value = self.eval(operand)
            if bool(value) == stop_when:
                return value
        return value

    def _eval_UnaryOp(self, node: ast.UnaryOp) -> Any:
        if isinstance(node.op, ast.Invert):
            raise Refused("operator '~' is not allowed in expressions")
        operand = self.eval(node.operand)
        if isinstance(node.op, ast.Not):
            return not operand
        return -operand if isinstance(node.op, ast.USub) else +operand

    def _eval_BinOp(self, node: ast.BinOp) -> Any:
        function = _BINARY.get(type(node.op))
        if function is None:
            raise Refused(f"operator {type(node.op).__name__} is not allowed in expressions")
        return self._account(function(self.eval(node.left), self.eval(node.right)))

    def _eval_IfExp(self, node: ast.IfExp) -> Any:
        return self.eval(node.body) if self.eval(node.test) else self.eval(node.orelse)

    def _eval_Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            allowed = ", ".join(FUNCTIONS)
            raise Refused(f"cannot call {ast.unparse(node.func)}: only {allowed} can be called")
        if node.keywords:
            raise Refused("keyword arguments are not allowed in expressions")
        function = self._lookup(node.func.id)
        if not _is_function(function):
            raise Refused(f"'{node.func.id}' is not a function here (it is redefined)")
        arguments = [self.eval(argument) for argument in node.args]
        if node.func.id not in _CHEAP:
            _bounded(f"{node.func.id}()", *arguments)
        return self._account(function(*arguments))


def _bind(target: ast.expr, value: Any, scope: dict[str, object]) -> None:
    if isinstance(target, ast.Name):
        scope[target.id] = value
        return
    if not isinstance(target, ast.Tuple | ast.List):
        raise Refused("comprehension targets must be names or tuples of names")
    values = list(itertools.islice(iter(value), len(target.elts) + 1))
    if len(values) != len(target.elts):
        raise Refused(f"cannot unpack {value!r} into {len(target.elts)} names")
    for element, item in zip(target.elts, values, strict=True):
        _bind(element, item, scope)


def _item(container: Any, key: Any, label: str) -> Any:
    try:
        return container[key]
    except KeyError:
        known = f" (it has: {listing(container)})" if isinstance(container, Mapping) else ""
        raise Refused(f"'{label}' has no key {key!r}{known}") from None
    except IndexError:
        raise Refused(f"index {key!r} is out of range for '{label}'") from None
    except TypeError as exc:
        raise Refused(f"cannot index '{label}' with {key!r}: {exc}") from None


def listing(keys: Iterable[Any]) -> str:
    shown = sorted(map(str, keys))
    if not shown:
        return "nothing"
    return ", ".join(shown[:20]) + (", …" if len(shown) > 20 else "")


# --- parsing and free names ----------------------------------------------------------------------


def try_parse(source: str) -> ast.Expression | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def parse(expression: str) -> ast.Expression:
    """Parse an expression; a bare generator (`x for x in y`, as QA-Board writes) is accepted."""
    text = expression.strip()
    if len(text) > MAX_LENGTH:
        raise Refused(f"expression is longer than {MAX_LENGTH} characters")
    tree = try_parse(text)
    if tree is None:
        tree = try_parse(f"({text})")
        if tree is None or not isinstance(tree.body, ast.GeneratorExp):
            raise Refused("invalid syntax")
    return tree


def free_in(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    _collect(tree, frozenset(), found, 0)
    return found


def _collect(node: ast.AST, bound: frozenset[str], found: set[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise Refused("expression is nested too deeply")
    if isinstance(node, ast.Name):
        if isinstance(node.ctx, ast.Load) and node.id not in bound:
            found.add(node.id)
    elif isinstance(node, _COMPREHENSIONS):
        _collect_comprehension(node, bound, found, depth + 1)
    elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Name):
        if node.slice.id in bound:  # else a bare name index is a string key, not a read
            _collect(node.slice, bound, found, depth + 1)
        _collect(node.value, bound, found, depth + 1)
    else:
        for child in ast.iter_child_nodes(node):
            _collect(child, bound, found, depth + 1)


def _collect_comprehension(
    node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp,
    bound: frozenset[str],
    found: set[str],
    depth: int,
) -> None:
    inner = set(bound)
    for generator in node.generators:
        _collect(generator.iter, frozenset(inner), found, depth)
        inner.update(n.id for n in ast.walk(generator.target) if isinstance(n, ast.Name))
        for condition in generator.ifs:
            _collect(condition, frozenset(inner), found, depth)
    results = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
    for result in results:
        _collect(result, frozenset(inner), found, depth)


def template_error(template: str, reason: str) -> InterpolationError:
    shown = template if len(template) <= 80 else template[:77] + "…"
    return InterpolationError(f"cannot evaluate {shown}: {reason}")


def reason_of(exc: BaseException) -> str:
    detail = str(exc)
    if detail and isinstance(exc, ArithmeticError | TypeError | ValueError):
        return detail
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


def evaluate_tree(tree: ast.Expression, template: str, names: Mapping[str, object]) -> Any:
    try:
        return checked_result(_Evaluator(names).eval(tree.body))
    except (InterpolationError, Deferred):
        raise
    except Refused as exc:
        raise template_error(template, str(exc)) from None
    except RecursionError:
        raise template_error(template, "expression is nested too deeply") from None
    except Exception as exc:
        raise template_error(template, reason_of(exc)) from exc


def parses(expression: str) -> bool:
    try:
        parse(expression)
    except Refused:
        return False
    return True


def evaluate(expression: str, names: Mapping[str, object]) -> object:
    """Parse `expression` (Python syntax, mode='eval') and evaluate it against `names`, safely."""
    template = "${" + expression.strip() + "}"
    try:
        tree = parse(expression)
    except Refused as exc:
        raise template_error(template, str(exc)) from None
    return evaluate_tree(tree, template, names)


def free_names(expression: str) -> set[str] | None:
    """Names an expression reads that are not bound by its own comprehensions; None if it does not
    parse. A bare-name index (`depends[calibration]`) is a string key, not a name read."""
    try:
        return free_in(parse(expression))
    except Refused:
        return None
