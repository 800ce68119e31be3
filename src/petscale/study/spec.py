"""The study spec: a YAML grid of trials, validated before anything runs.

Only ``models``, ``tasks`` and ``methods`` are required::

    models: [minilm-l6, minilm-l3]
    tasks: [rotten_tomatoes]
    methods:                        # a map method -> options (or a list, see below)
      full: {}
      lora: {rank: 8}               # the method's own options
      apet: {pattern: adjacent}
      bitfit: {budgets: [default]}  # per-method budgets replace the study's list
    budgets:                        # trainable-parameter budgets; `full` and `probe` have none
      - default                     # the method's default budget (no budget option)
      - match: lora                 # LoRA's default count on that model
      - geom: [100, 1000000, 13]    # 13 integers spaced geometrically, both ends included
      - 5000
    seeds: [0, 1, 2]
    steps: 300
    lr: {lora: 5.0e-4, prompt: 3.0e-2}   # or one number; a method left out: its default
    batch_size: 32
    eval_every: 50
    eval_limit: 0                   # score dev and test on N fixed examples each (0: all)
    max_length: 128
    head: trainable                 # trainable | frozen | label-words | auto (probe: trainable)
    pooling: auto                   # auto (the checkpoint's own) | cls | mean
    keep_deltas: true               # keep each trial's trained delta in DIR/trials/<id>/
    untuned: true                   # add each cell's untuned trial (method untuned: the floor)

``methods`` may also be a list, to run one method with several option sets:
``[lora, {apet: {pattern: adjacent}}, {apet: {pattern: discrete}}]``. A list for a trial
setting (``lr: [1.0e-4, 1.0e-3]``, ``steps: [100, 300]``) or for a method option that is not
itself a list (``lora: {rank: [4, 8]}``) sweeps it: the grid is the product.

Each (model, task, method entry, budget, seed) becomes one trial config: a plain dict with
every key of ``CONFIG_KEYS`` present (``eval_limit`` only when set, so that the ids of studies
written before it existed stay the same), whose id is ``trial_id(config)``.
"""

from __future__ import annotations

import difflib
import json
import math
import typing
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import yaml

from petscale.checks import MAX_INT, is_a, is_number, learning_rate
from petscale.errors import UserError
from petscale.hub import offline_reason
from petscale.ids import trial_id
from petscale.methods import (
    BUDGET_OPTIONS,
    METHODS,
    Budget,
    check_options,
    config_class,
    floor_method,
    head_only,
    is_fixed,
    matchable,
    sizing,
)
from petscale.settings import (
    CONFIG_KEYS,
    FLOOR_SETTINGS,
    RULES,
    STUDY_SETTINGS,
    WHEN_SET,
    TrialConfig,
    kind,
)
from petscale.settings import DEFAULTS as TRIAL_DEFAULTS
from petscale.tasks import get_task

#: A study trains a fixed number of steps and watches its curve (``tune``: one epoch, scored
#: at the end); its other settings' defaults are the trial's (``petscale.settings``).
STUDY_DEFAULTS: dict[str, Any] = {"steps": 300, "eval_every": 50}
DEFAULTS: dict[str, Any] = {
    "budgets": ["default"],
    "seeds": [0],
    **{key: STUDY_DEFAULTS.get(key, TRIAL_DEFAULTS[key]) for key in STUDY_SETTINGS},
    "keep_deltas": True,  # save each trial's trained delta under DIR/trials/<id>/ (not hashed)
    "untuned": True,  # add each cell's untuned trial: the floor of the analyses
}
#: What an untuned trial takes from the grid: the settings that shape its evaluation; the
#: training settings keep their defaults, so that one untuned trial serves every method.
UNTUNED_KEEPS = FLOOR_SETTINGS
SPEC_KEYS = ("models", "tasks", "methods", *DEFAULTS)
#: Head modes that depend on whether a model has a classification head (T5, decoders: none).
HEADLESS = ("auto", "frozen")
# Budgets are set through `budgets`, so that one spelling drives the grid.
RESERVED_OPTIONS = BUDGET_OPTIONS

CountFn = Callable[..., Mapping[str, Any]]
#: Limits checked before anything is built: a spec file's size, a geometric budget grid's
#: points, and the trials a spec may expand to (a larger study: several specs, one store).
MAX_SPEC_BYTES = 1 << 20
MAX_GEOM_POINTS = 1_000
MAX_TRIALS = 100_000


@dataclass(frozen=True)
class MethodEntry:
    name: str
    options: Mapping[str, Any]
    budgets: tuple[Budget, ...] | None  # None: the study's budgets


@dataclass(frozen=True)
class Spec:
    models: tuple[str, ...]
    tasks: tuple[str, ...]
    methods: tuple[MethodEntry, ...]
    budgets: tuple[Budget, ...]
    seeds: tuple[int, ...]
    keep_deltas: bool
    untuned: bool  # add the untuned trial of every (model, task, seed, head ...)
    #: the study-wide trial settings (``settings.STUDY_SETTINGS``: steps, lr, head ...), each
    #: a tuple of its values, checked: a list in the spec sweeps the setting
    settings: Mapping[str, tuple[Any, ...]]
    #: ``lr: {method: rate or [rates]}``: the rates of the methods it names (the others take
    #: ``settings["lr"]``, their default)
    method_lr: Mapping[str, tuple[float, ...]] = field(default_factory=dict)

    def variants(self, method: str) -> list[dict[str, Any]]:
        """Every combination of the study settings' values for ``method``, in spec order."""
        values = {**self.settings, "lr": self.method_lr.get(method, self.settings["lr"])}
        return [dict(zip(values, combo, strict=True)) for combo in product(*values.values())]


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML spec; a UserError names the bad key and the fix."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise UserError(
                f"{path} is {path.stat().st_size:,} bytes, over the {MAX_SPEC_BYTES:,} a spec may "
                "take; a spec lists its grid's axes, not its trials"
            )
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot read study spec {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the spec as UTF-8") from None
    try:
        return parse_spec(yaml.load(text, Loader=_UniqueKeyLoader))
    except yaml.YAMLError as e:
        problem = " ".join(str(e).split())
        raise UserError(f"{path}: not valid YAML: {problem}") from None
    except UserError as e:
        raise UserError(f"{path}: {e}") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of two equal keys; a spec that says a thing twice is an error."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                break  # PyYAML's own error names it
            if key in seen:
                line = key_node.start_mark.line + 1
                raise UserError(f"line {line}: the key {key!r} appears twice; keep one")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_spec(data: Any) -> Spec:
    """Validate a spec already parsed from YAML (a mapping)."""
    if not isinstance(data, Mapping):
        raise UserError("a study spec is a mapping with keys models, tasks, methods, ...")
    for key in data:
        if key not in SPEC_KEYS:
            close = difflib.get_close_matches(str(key), SPEC_KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(SPEC_KEYS)}"
            raise UserError(f"unknown key {key!r}; {hint}")
    for key in ("models", "tasks", "methods"):
        if key not in data:
            raise UserError(f"missing key {key!r}; list at least one")
    values = {**DEFAULTS, **data}
    if "epochs" in data and "steps" not in data:  # a length in epochs replaces the steps
        values["steps"] = None
    settings, method_lr = _settings(values)
    methods = _methods(values["methods"])
    budgets = _budgets(values["budgets"], "budgets")
    _sizes_with_budgets(methods, budgets)
    spec = Spec(
        models=_names(values["models"], "models"),
        tasks=_names(values["tasks"], "tasks"),
        methods=methods,
        budgets=budgets,
        seeds=_seeds(values["seeds"]),
        settings=settings,
        method_lr=method_lr,
        keep_deltas=_bool(values["keep_deltas"], "keep_deltas"),
        untuned=_bool(values["untuned"], "untuned"),
    )
    _check_size(spec)
    return spec


def _check_size(spec: Spec) -> None:
    """The trials the grid spans at most, counted before any is built (``MAX_TRIALS``)."""
    per_cell = sum(
        len(spec.variants(entry.name))
        * (1 if is_fixed(entry.name) else len(entry.budgets or spec.budgets))
        for entry in spec.methods
    )
    trials = len(spec.models) * len(spec.tasks) * len(spec.seeds) * per_cell
    if trials > MAX_TRIALS:
        raise UserError(
            f"the spec spans {trials:,} trials, over the limit of {MAX_TRIALS:,} for one spec; "
            "split it into several specs run into one folder (--out)"
        )


def expand(spec: Spec, count: CountFn | None = None) -> list[dict[str, Any]]:
    """Every trial config of the spec, in spec order, without duplicates.

    ``match: M`` becomes a budget here for methods other than apet, by the sizing step
    (:func:`petscale.budget.match_budget` on the model's meta twin) or by ``count(model=...,
    method=...)`` where given; apet's trial keeps ``match`` (its ids stay as they were), and the
    sizing step turns it into K when the trial runs.
    """
    from petscale.heads import answers_in_words, resolve_head  # here to keep the CLI fast

    counts: dict[tuple[str, str], int] = {}
    words: dict[str, bool] = {}

    def matched(model: str, method: str) -> int:
        if (model, method) not in counts:
            counts[model, method] = (
                int(count(model=model, method=method)["trainable_params"])
                if count
                else _match_budget(model, method)
            )
        return counts[model, method]

    configs: dict[str, dict[str, Any]] = {}
    floors: dict[str, dict[str, Any]] = {}
    for model in spec.models:
        for task in spec.tasks:
            for entry in spec.methods:
                for setting in spec.variants(entry.name):
                    head_mode = setting["head"]
                    if model not in words and (head_only(entry.name) or head_mode in HEADLESS):
                        words[model] = answers_in_words(model)
                    if words.get(model) and _headless(model, entry.name, head_mode):
                        continue
                    # auto is resolved here, per model: an encoder's trials under auto are the
                    # very trials (the same ids) of head: frozen; the head alone keeps its head
                    # trainable
                    head = (
                        "trainable"
                        if head_only(entry.name)
                        else resolve_head(head_mode, not words.get(model, False), model)
                    )
                    budgets = (Budget(),) if is_fixed(entry.name) else entry.budgets or spec.budgets
                    for budget in budgets:
                        options = dict(entry.options)
                        if budget.count is not None:
                            options["budget"] = budget.count
                        elif budget.match is not None and budget.match != entry.name:
                            if sizing(entry.name) == "native":
                                options["match"] = budget.match
                            else:
                                options["budget"] = matched(model, budget.match)
                        for seed in spec.seeds:
                            values = {
                                **setting,
                                "model": model,
                                "task": task,
                                "method": entry.name,
                                "options": options,
                                "head": head,
                                "seed": seed,
                            }
                            config = _config(values)
                            configs.setdefault(trial_id(config), config)
                            if spec.untuned:
                                floor = untuned_config(values)
                                floors.setdefault(trial_id(floor), floor)
    # the floors first: cheap (no step), and a run stopped early still has them
    out = list({**floors, **configs}.values())
    for config in out:  # the settings' checks across settings (steps and epochs ...)
        TrialConfig.parse(config)
    return out


def untuned_config(values: Mapping[str, Any]) -> dict[str, Any]:
    """The untuned trial of a trial's cell (``values``: its settings): the same model, task,
    seed and evaluation settings, method ``untuned``, training settings at their defaults."""
    kept = {key: values[key] for key in ("model", "task", "seed", *UNTUNED_KEEPS)}
    return _config({**TRIAL_DEFAULTS, **kept, "method": floor_method(), "options": {}})


def _config(values: Mapping[str, Any]) -> dict[str, Any]:
    config = {key: values[key] for key in CONFIG_KEYS}
    config.update({k: values[k] for k in WHEN_SET if values[k] != TRIAL_DEFAULTS[k]})
    return config


def _headless(model: str, method: str, head: str) -> bool:
    """For a model without a classification head (it answers in words): True where ``head:
    auto`` leaves its trial out (the head alone, probe); an error where the spec asks for a
    head it lacks."""
    if head_only(method):
        if head == "auto":
            return True
        raise UserError(
            f"methods.{method} trains the classification head alone; {model} answers in words "
            f"and has none: use head: auto ({method} then runs on the models with a head) or "
            f"drop {method}"
        )
    from petscale.heads import resolve_head  # with expand's: heads loads torch

    resolve_head(head, False, model)  # a head it lacks (frozen) is refused, as tune refuses it
    return False


def _match_budget(model: str, target: str) -> int:
    # Imported late: sizing builds the model's meta twin, which a spec without `match` never needs.
    from petscale.budget import match_budget
    from petscale.zoo.loader import meta_model

    return match_budget(meta_model(model), target)


def _default_count() -> CountFn:
    # Imported late: counting loads model configs, which a spec without `match` never needs.
    from petscale.api import count

    return count.__wrapped__  # unwrapped: a spec's errors name options as flags, as tune's do


def geom(low: int, high: int, n: int) -> list[int]:
    """``n`` integers spaced geometrically from ``low`` to ``high`` inclusive, deduplicated."""
    if n == 1:
        return [low]
    ratio = high / low
    return sorted({round(low * ratio ** (i / (n - 1))) for i in range(n)})


def _names(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise UserError(f"{key}: expected a list of names, got {value!r}")
    if not value:
        raise UserError(f"{key}: the list is empty; name at least one")
    return tuple(dict.fromkeys(value))


def _method_name(name: Any, key: str) -> str:
    if name not in METHODS:
        close = difflib.get_close_matches(str(name), METHODS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UserError(f"{key}: unknown method {name!r}; {hint}known: {', '.join(METHODS)}")
    return name


def _methods(value: Any) -> tuple[MethodEntry, ...]:
    if isinstance(value, Mapping):
        items = list(value.items())
    elif isinstance(value, list):
        items = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                items.append((item, None))
            elif isinstance(item, Mapping) and len(item) == 1:
                items.append(next(iter(item.items())))
            else:
                raise UserError(f"methods[{i}]: write a method name or {{name: {{options}}}}")
    else:
        raise UserError("methods: expected a map method -> options, or a list of methods")
    if not items:
        raise UserError("methods: the list is empty; name at least one method")
    return tuple(entry for name, options in items for entry in _method_entries(name, options))


def _method_entries(name: Any, options: Any) -> tuple[MethodEntry, ...]:
    """A method's entry, one per combination where an option holds a list of values that the
    option itself does not take as a list (``lora: {rank: [4, 8]}`` sweeps the rank)."""
    key = f"methods.{name}"
    name = _method_name(name, "methods")
    options = {} if options is None else options
    if not isinstance(options, Mapping) or not all(isinstance(k, str) for k in options):
        raise UserError(f"{key}: options must be a map option -> value, got {options!r}")
    options = dict(options)
    for reserved in RESERVED_OPTIONS:
        if reserved in options:
            raise UserError(
                f"{key}.{reserved}: set budgets with 'budgets' (study-wide or per method)"
            )
    budgets = options.pop("budgets", None)
    if budgets is not None:
        if is_fixed(name):
            raise UserError(f"{key}.budgets: {name} has a fixed size, no budget; remove 'budgets'")
        budgets = _budgets(budgets, f"{key}.budgets")
    hints = typing.get_type_hints(config_class(name))
    swept = {
        option: tuple(value)
        for option, value in options.items()
        if isinstance(value, list) and option in hints and not is_a(value, hints[option])
    }
    if any(not values for values in swept.values()):
        raise UserError(f"{key}: an option's list of values is empty; give at least one")
    entries = []
    for combo in product(*swept.values()):
        chosen = {**options, **dict(zip(swept, combo, strict=True))}
        try:
            check_options(name, chosen)  # the methods' own checks, as `tune` makes them
        except UserError as e:
            raise UserError(f"{key}: {e}") from None
        entries.append(MethodEntry(name, chosen, budgets))
    return tuple(entries)


def _sizes_with_budgets(entries: tuple[MethodEntry, ...], budgets: tuple[Budget, ...]) -> None:
    """An option that fixes a method's size (a LoRA rank) leaves nothing for a budget to set."""
    for entry in entries:
        knob = config_class(entry.name).size_option
        own = Budget(match=entry.name)
        sized = [b for b in entry.budgets or budgets if not b.is_default and b != own]
        if knob in entry.options and sized:
            raise UserError(
                f"methods.{entry.name}.{knob}: a {knob} fixes the size that budgets pick; give "
                f"it only with budgets: [default], or drop it"
            )


def _budgets(value: Any, key: str) -> tuple[Budget, ...]:
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise UserError(f"{key}: the list is empty; write 'default' for each method's default")
    budgets: list[Budget] = []
    for i, item in enumerate(value):
        where = f"{key}[{i}]"
        if item == "default":
            budgets.append(Budget())
        elif isinstance(item, Mapping) and set(item) == {"match"}:
            target = _method_name(item["match"], f"{where}.match")
            if not matchable(target):
                raise UserError(
                    f"{where}.match: {target} has no default budget; match another method"
                )
            budgets.append(Budget(match=target))
        elif isinstance(item, Mapping) and set(item) == {"geom"}:
            budgets.extend(Budget(count=n) for n in _geom(item["geom"], f"{where}.geom"))
        elif isinstance(item, Mapping):
            raise UserError(
                f"{where}: write a number, 'default', {{match: M}} or {{geom: [lo, hi, n]}}"
            )
        else:
            budgets.append(Budget(count=_int(item, where, 1)))
    return tuple(dict.fromkeys(budgets))


def _geom(value: Any, key: str) -> list[int]:
    if not isinstance(value, list) or len(value) != 3:
        raise UserError(f"{key}: write [low, high, points], e.g. [100, 1000000, 13]")
    low = _int(value[0], f"{key}[0] (low)", 1)
    high = _int(value[1], f"{key}[1] (high)", low)
    points = _int(value[2], f"{key}[2] (points)", 0)
    if points > MAX_GEOM_POINTS:
        raise UserError(f"{key}: {points:,} points, over the limit of {MAX_GEOM_POINTS:,}")
    if points == 0:
        raise UserError(f"{key}: an empty grid (0 points); ask for at least 1 point")
    if points == 1 and high != low:
        raise UserError(f"{key}: one point cannot span {low}..{high}; ask for at least 2")
    return geom(low, high, points)


def _seeds(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise UserError("seeds: the list is empty; give at least one seed, e.g. [0]")
    return tuple(dict.fromkeys(_int(v, f"seeds[{i}]", 0) for i, v in enumerate(value)))


def _int(value: Any, key: str, minimum: int) -> int:
    number = _number(value, key)
    if not float(number).is_integer():
        raise UserError(f"{key}: expected a whole number, got {value!r}")
    if number < minimum:
        raise UserError(f"{key}: {value!r} is too small; use a number >= {minimum}")
    if number >= MAX_INT:  # past what torch takes as a seed or a size
        raise UserError(f"{key}: {value!r} is too large; use a number below 2**63")
    return int(number)


def _number(value: Any, key: str) -> float:
    # PyYAML reads `3e-4` (no dot) as a string, so numeric strings are taken too.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise UserError(f"{key}: expected a number, got {value!r}") from None
    if not (is_number(value) and math.isfinite(value)):
        raise UserError(f"{key}: expected a number, got {value!r}")
    return value


def _settings(
    values: Mapping[str, Any],
) -> tuple[dict[str, tuple[Any, ...]], dict[str, tuple[float, ...]]]:
    """Each study setting's values (a list sweeps it), and ``lr``'s per-method rates."""
    settings = {key: _sweep(values[key], key, _setting) for key in STUDY_SETTINGS if key != "lr"}
    lr = values["lr"]
    method_lr = {}
    if isinstance(lr, Mapping):
        for method, rates in lr.items():
            key = f"lr.{_method_name(method, 'lr')}"
            method_lr[method] = _sweep(rates, key, lambda k, v: _rate(v, k))
        lr = None
    settings["lr"] = (None,) if lr is None else _sweep(lr, "lr", lambda k, v: _rate(v, k))
    return {key: settings[key] for key in STUDY_SETTINGS}, method_lr


def _sweep(value: Any, key: str, check: Callable[[str, Any], Any]) -> tuple[Any, ...]:
    """One value, or a list of values to sweep (each checked, duplicates dropped)."""
    if not isinstance(value, list):
        return (check(key, value),)
    if not value:
        raise UserError(f"{key}: the list is empty; give a value, or a list of values to sweep")
    checked = [check(f"{key}[{i}]", v) for i, v in enumerate(value)]
    # duplicates dropped by their JSON form: a value may be a map (task_options)
    return tuple({json.dumps(v, sort_keys=True): v for v in checked}.values())


def _rate(value: Any, key: str) -> float:
    number = float(_number(value, key))
    learning_rate(key, number)  # tune's bounds too
    return number


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise UserError(f"{key}: expected true or false, got {value!r}")
    return value


def _setting(key: str, value: Any) -> Any:
    """A study-wide trial setting's value, checked by its rule in ``petscale.settings``."""
    name = key.partition("[")[0]
    rule, wanted = RULES[name], kind(name)
    if value is None and TRIAL_DEFAULTS[name] is None:  # unset: the trial's default
        return None
    if rule.choices is not None:
        if value not in rule.choices():
            raise UserError(f"{key}: expected one of {', '.join(rule.choices())}, got {value!r}")
        return value
    if wanted is int:
        value = _int(value, key, -MAX_INT if rule.minimum is None else rule.minimum)
    elif wanted is float:
        value = float(_number(value, key))
    elif not isinstance(value, wanted):
        raise UserError(f"{key}: expected {wanted.__name__}, got {value!r}")
    if rule.check is not None:
        rule.check(key, value)
    return value


def check_counts(configs: list[dict[str, Any]], count: CountFn | None = None) -> None:
    """Every trial's method fits its model (options, budget, targets), counted on the meta
    device without weights, so that a bad one fails before any trial runs."""
    counter = count or _default_count()
    seen: set[str] = set()
    for config in configs:
        model, method, options = config["model"], config["method"], config["options"]
        key = json.dumps([model, method, options], sort_keys=True)
        if key not in seen:
            seen.add(key)
            try:
                counter(model=model, method=method, **options)
            except UserError as e:
                given = " ".join(f"{k}={v}" for k, v in options.items())
                raise UserError(f"{model} / {method} {given}: {e}") from None


def check_names(spec: Spec) -> None:
    """Every model and task of the grid exists here, before any trial runs."""
    from petscale.zoo import registry  # here: it loads transformers

    for model in spec.models:
        registry.shape_config(model)
        # a model known by its dimensions only: its weights must come from the hub, or the
        # spec asks for random ones (for every trial)
        no_weights = registry.config_entry(model) and registry.weights_folder(model) is None
        if no_weights and not all(spec.settings["random_init"]) and offline_reason():
            raise registry.unreachable(model)
    for task in spec.tasks:
        for options in spec.settings["task_options"]:
            get_task(task, **options)
