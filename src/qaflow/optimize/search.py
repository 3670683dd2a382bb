"""The search file of `qa optimize --config-file F`: what to tune, how to score it, the budget.

Two forms are read into one `Search`:
- QA-Board's (`qa optimize` of QA-Board 1.1.1): `search_space`, a list of scikit-optimize
  dimensions (`- Real: {name: x, low: 0, high: 1, prior: log-uniform}`, `Integer`,
  `Categorical: {name: m, categories: [a, b]}`); `objective`, metrics with `loss`
  (identity, shift, relative, with `relu`/`square`), `weight`, `margin`, `reduce` (sum, relu,
  l1, l2) and the special key `target` (`true`, or a mapping naming no execution such as
  `{batch: X}`: the `target:` of metrics.yaml, as in QA-Board; a reference execution,
  `{id|branch|tag: NAME, batch: LABEL}` or a name as `qa compare` takes it: the values of
  its runs, matched run by run); `evaluations`; `preset_params`; `solver`
  (`random_state`, `n_initial_points`; its scikit-optimize settings are ignored, with a
  warning); `parallel_sampling`.
- qaflow's: `space: {threshold: {low: 0, high: 1}, mode: [a, b]}` (a mapping of `low`/`high`,
  with `log: true` and `step`, or a list of choices) and `objective: {psnr: maximize}`;
  `evaluations`, `preset_params`, `sampler` (tpe, random, grid), `seed`, `parallel`.

Every mistake is a ConfigError naming the file and the field, raised before any trial runs.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qaflow.config import yamlfile
from qaflow.config.schema import kind_of
from qaflow.errors import ConfigError, QaflowWarning

Kind = Literal["real", "integer", "categorical"]
SAMPLERS = ("tpe", "random", "grid")
LOSSES = ("identity", "shift", "relative")
REDUCES = ("sum", "relu", "l1", "l2")
TARGET_KINDS = ("id", "branch", "tag")
SKOPT_SOLVER = "scikit-optimize"  # QA-Board's solver name: TPE stands in for it


@dataclass(frozen=True)
class Dimension:
    """One tuned parameter: a range of numbers or a list of choices."""

    name: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def grid(self) -> list[Any]:
        """Every value, for the grid sampler (a real range needs a `step`)."""
        if self.kind == "categorical":
            return list(self.choices)
        assert self.low is not None and self.high is not None
        if self.kind == "integer":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.step is None:
            raise ValueError(self.name)
        count = round((self.high - self.low) / self.step)
        return [self.low + i * self.step for i in range(count + 1)]


@dataclass(frozen=True)
class Term:
    """One metric of the objective: its runs' losses, reduced, weighted (QA-Board's
    `batch_objective`)."""

    metric: str
    loss: str = "identity"  # identity, shift or relative, with relu- or square- variants
    weight: float = 1.0
    margin: float = 0.0
    reduce: str = "sum"
    direction: Literal["minimize", "maximize"] | None = None  # None: from metrics.yaml

    @property
    def compares(self) -> bool:
        """Whether its loss compares the value with a target (shift, relative)."""
        return "shift" in self.loss or "relative" in self.loss


@dataclass(frozen=True)
class Target:
    """The reference execution `objective.target` names, whose runs give each trial run its
    targets (`qaflow.optimize.reference`): `kind` id (an execution id, or a commit), branch,
    tag (a git tag of the project), or ref (a name as `qa compare` takes it); `label`: the
    reference's label, for a branch, a tag or a commit (default: `default`)."""

    kind: Literal["id", "branch", "tag", "ref"]
    name: str
    label: str | None = None

    def __str__(self) -> str:
        label = f" (label {self.label!r})" if self.label else ""
        return f"{self.kind} {self.name!r}{label}"


@dataclass(frozen=True)
class Search:
    """What `qa optimize` reads from the search file."""

    path: Path
    dimensions: tuple[Dimension, ...]
    terms: tuple[Term, ...]
    evaluations: int
    preset_params: dict[str, Any] = field(default_factory=dict)
    sampler: str = "tpe"
    seed: int | None = None
    n_startup_trials: int | None = None
    parallel: int = 1
    use_targets: bool = False  # QA-Board's `objective.target`: losses against metrics.yaml targets
    raw_objective: bool = False  # qaflow's form with one metric: the study follows its value
    reference: Target | None = None  # `target:` naming an execution: losses against its runs

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]


def load_search(path: Path) -> Search:
    """Read and check a search file (either form); ConfigError on any mistake."""
    if not path.is_file():
        raise ConfigError(
            f"--config-file {str(path)!r}: no such file. Give the YAML file that describes the "
            "search (`space:` and `objective:`, or QA-Board's `search_space:`)."
        )
    data = yamlfile.load(path)
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: expected a mapping (space, objective, evaluations…), got {kind_of(data)}."
        )
    return _Reader(path, data).search()


class _Reader:
    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.data = path, data

    def fail(self, keys: tuple[str | int, ...], message: str) -> ConfigError:
        where = yamlfile.where(self.path, keys) if keys else str(self.path)
        return ConfigError(f"{where}: {message}")

    def search(self) -> Search:
        known = {"space", "search_space", "objective", "evaluations", "preset_params", "solver"}
        known |= {"sampler", "seed", "parallel", "parallel_sampling", "keep_all_best_iters"}
        for key in sorted(set(self.data) - known, key=str):
            warnings.warn(
                f"{self.path}: unknown key `{key}` is ignored.", QaflowWarning, stacklevel=2
            )
        dimensions = self.dimensions()
        terms, use_targets, raw, reference = self.objective()
        solver = self.solver()
        sampler = str(self.data.get("sampler") or solver.get("sampler", "tpe"))
        if sampler not in SAMPLERS:
            raise self.fail(("sampler",), f"unknown sampler {sampler!r}: use tpe, random or grid.")
        search = Search(
            path=self.path,
            dimensions=dimensions,
            terms=terms,
            evaluations=self.positive("evaluations", required=True),
            preset_params=self.mapping("preset_params"),
            sampler=sampler,
            seed=self.integer("seed", solver.get("seed")),
            n_startup_trials=solver.get("n_startup_trials"),
            parallel=self.positive("parallel_sampling") or self.positive("parallel") or 1,
            use_targets=use_targets,
            raw_objective=raw,
            reference=reference,
        )
        if sampler == "grid":
            self.check_grid(search)
        return search

    # ------------------------------------------------------------ the space
    def dimensions(self) -> tuple[Dimension, ...]:
        if "space" in self.data and "search_space" in self.data:
            raise self.fail(("space",), "give `space` or `search_space`, not both.")
        if "search_space" in self.data:
            found = self.skopt_space(self.data["search_space"])
        else:
            found = self.simple_space(self.data.get("space"))
        if not found:
            raise self.fail(
                ("space",) if "space" in self.data else (),
                "the search space is empty: give at least one parameter to tune, e.g. "
                "`space: {threshold: {low: 0, high: 1}}`.",
            )
        names = [d.name for d in found]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise self.fail((), f"parameter(s) {', '.join(repeated)} are defined twice.")
        return tuple(found)

    def simple_space(self, space: Any) -> list[Dimension]:
        if space is None:
            return []
        if not isinstance(space, dict):
            raise self.fail(("space",), f"expected a mapping of parameters, got {kind_of(space)}.")
        out = []
        for name, spec in space.items():
            keys: tuple[str | int, ...] = ("space", name)
            if isinstance(spec, list):
                out.append(self.categorical(str(name), spec, keys))
            elif isinstance(spec, dict):
                kind = spec.get("type")
                if kind not in (None, "real", "float", "int", "integer"):
                    raise self.fail(keys, f"`type` is {kind!r}: use real or integer.")
                ints = all(isinstance(spec.get(k), int) for k in ("low", "high"))
                integer = kind in ("int", "integer") or (kind is None and ints)
                out.append(self.numeric(str(name), spec, keys, integer=integer))
            else:
                raise self.fail(
                    keys,
                    f"expected {{low: …, high: …}} or a list of choices, got {kind_of(spec)}.",
                )
        return out

    def skopt_space(self, space: Any) -> list[Dimension]:
        if space is None:
            return []
        if not isinstance(space, list):
            raise self.fail(
                ("search_space",),
                f"expected a list of dimensions (`- Real: {{name: x, low: 0, high: 1}}`), got "
                f"{kind_of(space)}.",
            )
        out = []
        for index, item in enumerate(space):
            keys: tuple[str | int, ...] = ("search_space", index)
            if not (isinstance(item, dict) and len(item) == 1):
                raise self.fail(
                    keys, "expected one of `Real: {…}`, `Integer: {…}`, `Categorical: {…}`."
                )
            ((kind, spec),) = item.items()
            if kind not in ("Real", "Integer", "Categorical") or not isinstance(spec, dict):
                raise self.fail(
                    keys, f"unknown dimension {kind!r}: use Real, Integer or Categorical."
                )
            name = spec.get("name")
            if not isinstance(name, str) or not name:
                raise self.fail(keys, f"the {kind} dimension has no `name`.")
            if kind == "Categorical":
                out.append(self.categorical(name, spec.get("categories"), (*keys, kind)))
            else:
                prior = spec.get("prior", "uniform")
                if prior not in ("uniform", "log-uniform"):
                    raise self.fail((*keys, kind), f"prior {prior!r}: use uniform or log-uniform.")
                spec = {**spec, "log": prior == "log-uniform"}
                out.append(self.numeric(name, spec, (*keys, kind), integer=kind == "Integer"))
        return out

    def categorical(self, name: str, choices: Any, keys: tuple[str | int, ...]) -> Dimension:
        if not isinstance(choices, list) or not choices:
            raise self.fail(keys, f"parameter {name!r}: give a non-empty list of choices.")
        if any(not isinstance(c, (str, int, float, bool)) and c is not None for c in choices):
            raise self.fail(keys, f"parameter {name!r}: choices must be strings or numbers.")
        if len(set(map(repr, choices))) != len(choices):
            raise self.fail(keys, f"parameter {name!r}: repeated choices in {choices!r}.")
        return Dimension(name=name, kind="categorical", choices=tuple(choices))

    def numeric(
        self, name: str, spec: dict[str, Any], keys: tuple[str | int, ...], *, integer: bool
    ) -> Dimension:
        low, high, step = spec.get("low"), spec.get("high"), spec.get("step")
        for key, value in (("low", low), ("high", high)):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise self.fail(
                    keys, f"parameter {name!r}: `{key}` must be a number, got {value!r}."
                )
        assert isinstance(low, (int, float)) and isinstance(high, (int, float))
        if low > high:
            raise self.fail(
                keys, f"parameter {name!r}: `low` ({low}) is greater than `high` ({high})."
            )
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise self.fail(keys, f"parameter {name!r}: a log scale needs `low` > 0, got {low}.")
        if step is not None and (not isinstance(step, (int, float)) or step <= 0 or log):
            raise self.fail(
                keys, f"parameter {name!r}: `step` must be a positive number, without log."
            )
        if integer and not all(float(v).is_integer() for v in (low, high)):
            raise self.fail(keys, f"parameter {name!r}: an integer range needs integer bounds.")
        return Dimension(
            name=name,
            kind="integer" if integer else "real",
            low=low,
            high=high,
            log=log,
            step=step,
        )

    # ------------------------------------------------------------ the objective
    def objective(self) -> tuple[tuple[Term, ...], bool, bool, Target | None]:
        """(terms, QA-Board's `target: true`, whether the study follows one metric's raw
        value, the reference execution named by `target`)."""
        objective = self.data.get("objective")
        if not isinstance(objective, dict) or not objective:
            raise self.fail(
                ("objective",) if "objective" in self.data else (),
                "give an `objective`: the metrics to optimise, e.g. `objective: {psnr: maximize}`"
                " or QA-Board's `objective: {loss: {weight: 1}}`.",
            )
        reference = _reference(self, objective.get("target"))
        # as QA-Board: a target naming no execution (`true`, `{batch: X}`) means metrics.yaml's
        use_targets = reference is None and bool(objective.get("target"))
        terms = []
        for metric, options in objective.items():
            if metric == "target":
                continue
            terms.append(self.term(str(metric), options))
        if not terms:
            raise self.fail(("objective",), "the objective names no metric.")
        raw = len(terms) == 1 and isinstance(objective[terms[0].metric], str)
        raw = raw and not use_targets and reference is None
        if reference is not None and not any(term.compares for term in terms):
            raise self.fail(
                ("objective", "target"),
                "the target names a reference execution, but no metric of the objective is "
                "compared with it: give the metrics to compare `loss: shift` or `loss: relative` "
                "(e.g. `psnr: {loss: relu-shift}`), or remove `target`.",
            )
        return tuple(terms), use_targets, raw, reference

    def term(self, metric: str, options: Any) -> Term:
        keys: tuple[str | int, ...] = ("objective", metric)
        if options is None:
            return Term(metric=metric)
        if isinstance(options, str):
            if options not in ("minimize", "maximize"):
                raise self.fail(keys, f"{options!r}: use minimize or maximize.")
            return Term(metric=metric, direction=options)  # type: ignore[arg-type]
        if not isinstance(options, dict):
            raise self.fail(
                keys, f"expected minimize/maximize or a mapping, got {kind_of(options)}."
            )
        loss = str(options.get("loss", "identity"))
        if not any(base in loss for base in LOSSES):
            raise self.fail(
                keys, f"loss {loss!r}: use identity, shift or relative (relu-/square-)."
            )
        reduce = str(options.get("reduce", "sum"))
        if reduce not in REDUCES:
            raise self.fail(keys, f"reduce {reduce!r}: use sum, relu, l1 or l2.")
        direction = options.get("direction")
        if direction not in (None, "minimize", "maximize"):
            raise self.fail(keys, f"direction {direction!r}: use minimize or maximize.")
        return Term(
            metric=metric,
            loss=loss,
            weight=self.number(options.get("weight", 1.0), (*keys, "weight")),
            margin=self.number(options.get("margin", 0.0), (*keys, "margin")),
            reduce=reduce,
            direction=direction,
        )

    # ------------------------------------------------------------ the rest
    def solver(self) -> dict[str, Any]:
        solver = self.data.get("solver") or {}
        if not isinstance(solver, dict):
            raise self.fail(("solver",), f"expected a mapping, got {kind_of(solver)}.")
        name = solver.get("name", SKOPT_SOLVER)
        out: dict[str, Any] = {}
        if name in SAMPLERS:
            out["sampler"] = name
        elif name != SKOPT_SOLVER:
            raise self.fail(
                ("solver", "name"), f"unknown solver {name!r}: use tpe, random or grid."
            )
        if "random_state" in solver or "seed" in solver:
            out["seed"] = solver.get("seed", solver.get("random_state"))
        if "n_initial_points" in solver:
            out["n_startup_trials"] = self.number(solver["n_initial_points"], ("solver",))
            out["n_startup_trials"] = int(out["n_startup_trials"])
        ignored = sorted(set(solver) - {"name", "random_state", "seed", "n_initial_points"})
        if ignored:
            warnings.warn(
                f"{self.path}: solver settings {', '.join(ignored)} are scikit-optimize's: "
                "qaflow tunes with Optuna and ignores them.",
                QaflowWarning,
                stacklevel=2,
            )
        return out

    def check_grid(self, search: Search) -> None:
        for dimension in search.dimensions:
            try:
                dimension.grid()
            except ValueError:
                raise self.fail(
                    ("space", dimension.name),
                    f"the grid sampler needs a `step` for the real parameter {dimension.name!r}.",
                ) from None

    def positive(self, key: str, *, required: bool = False) -> int:
        value = self.data.get(key)
        if value is None and not required:
            return 0
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.fail(
                (key,) if key in self.data else (),
                f"`{key}` must be a positive integer, got {value!r}.",
            )
        return value

    def integer(self, key: str, default: Any) -> int | None:
        value = self.data.get(key, default)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.fail(
                (key,) if key in self.data else ("solver",),
                f"the seed must be an integer, got {value!r}.",
            )
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.data.get(key) or {}
        if not isinstance(value, dict):
            raise self.fail((key,), f"expected a mapping, got {kind_of(value)}.")
        return value

    def number(self, value: Any, keys: tuple[str | int, ...]) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(keys, f"expected a number, got {value!r}.")
        return float(value)


def _reference(reader: _Reader, target: Any) -> Target | None:
    """`target:` naming a reference execution (QA-Board's `{id|branch|tag: …, batch: …}`,
    or a name as `qa compare` takes it); None for `true`/`false`/absent, and, with a warning,
    for a mapping naming no execution (QA-Board's `{batch: X}`: metrics.yaml's targets)."""
    keys: tuple[str | int, ...] = ("objective", "target")
    if target is None or isinstance(target, bool) or target == {}:
        return None
    if isinstance(target, (str, int)) and str(target).strip():
        return Target(kind="ref", name=str(target).strip())
    if not isinstance(target, dict):
        raise reader.fail(
            keys,
            f"expected true, a reference execution (`{{branch: master}}`, `{{id: …}}`, "
            f"`{{tag: …}}`) or an execution name, got {kind_of(target)}.",
        )
    unknown = sorted(set(map(str, target)) - {*TARGET_KINDS, "batch", "label"})
    if unknown:
        raise reader.fail(
            keys,
            f"unknown key(s) {', '.join(unknown)}: give one of id, branch, tag, and "
            "optionally the reference's label (`label:`, or QA-Board's `batch:`).",
        )
    given = [kind for kind in TARGET_KINDS if kind in target]
    if not given:  # QA-Board's batch_objective then takes the targets of metrics.yaml
        warnings.warn(
            f"{yamlfile.where(reader.path, keys)}: names no execution (no `id`, `branch` or "
            "`tag`), so, as in QA-Board, the shift and relative losses compare with the "
            "metrics' `target:` in metrics.yaml; add `branch: NAME` (or `id`, `tag`) to compare "
            "with a reference execution's runs.",
            QaflowWarning,
            stacklevel=2,
        )
        return None
    if len(given) != 1:
        raise reader.fail(
            keys,
            "name the reference execution with exactly one of `id` (an execution id or a "
            f"commit), `branch` or `tag`; got {', '.join(given)}.",
        )
    values = {k: target[k] for k in (*given, "label", "batch") if target.get(k) is not None}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value):
            raise reader.fail((*keys, key), f"`{key}` must be a name, got {value!r}.")
    label = values.get("label", values.get("batch"))
    return Target(
        kind=given[0],  # type: ignore[arg-type]
        name=str(values[given[0]]),
        label=None if label is None else str(label),
    )


def with_overrides(search: Search, **overrides: Any) -> Search:
    """The search with the command line's settings (`--parallel`, `--sampler`, `--seed`,
    `--evaluations`) over the file's; None leaves a setting as the file says."""
    given = {k: v for k, v in overrides.items() if v is not None}
    if given.get("sampler") == "grid":
        _Reader(search.path, {}).check_grid(search)
    return dataclasses.replace(search, **given)
