"""Recipes as typed, validated configuration.

A recipe is a YAML mapping with the sections ``model``, ``data``, ``task``, ``optim`` and
``trainer`` (each a registered ``name`` plus its arguments), a ``seed`` and an ``expect``
block. Every key is checked against the signature of what it configures (the model's
builder, the dataset's builder, the optimizer's constructor, ``TrainerConfig``), and every
value against the type hint there, so a typo or a bad value is a one-line ``UsageError``
before anything is built or written.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Callable, Literal, Union

import yaml

from dlcamp.errors import UsageError
from dlcamp.registry import accepts_any, signature_params

SECTIONS = ("name", "description", "seed", "model", "data", "task", "optim", "phases", "trainer", "expect", "published")


@dataclasses.dataclass
class EarlyStopConfig:
    monitor: str = "val/loss"  # a metric logged during validation
    mode: Literal["min", "max"] = "min"
    patience: int = 5  # validation rounds without improvement before stopping
    min_delta: float = 0.0


@dataclasses.dataclass
class TrainerConfig:
    max_epochs: int = 10
    max_steps: int = -1  # -1: no step limit
    devices: int = 1  # >1 runs DDP (one process per device)
    num_nodes: int = 1
    accelerator: Literal["auto", "cpu", "gpu", "cuda", "mps"] = "cpu"
    precision: Literal["32", "32-true", "64", "64-true", "16-mixed", "bf16-mixed", "bf16-true"] = "32-true"
    channels_last: bool = False  # NHWC memory format for convolutional models
    compile: bool = False  # torch.compile the model
    # PyTorch's deterministic kernels. CPU runs are bitwise reproducible at a fixed thread
    # count without them (tests/engine/test_resume.py relies on it), and on CPU they move
    # convolutions off oneDNN (ResNet-20 steps ~10x slower); on a GPU they make cuDNN repeatable.
    deterministic: bool = False
    checkpoint_every_n_steps: int = 0  # 0: only at the end of each epoch
    log_every_n_steps: int = 10
    val_every_n_epochs: int = 1
    gradient_clip_val: float = 0.0  # 0: no clipping
    early_stopping: Union[EarlyStopConfig, None] = None
    limit_train_batches: Union[int, float] = 1.0  # fraction or count (quick runs)


@dataclasses.dataclass
class ExpectConfig:
    metric: str  # e.g. test/acc
    op: Literal[">=", "<=", ">", "<"]
    value: float
    within_seconds: Union[float, None] = None  # training-time budget
    hardware: str = "2 CPU cores"
    seeds: int = 1  # how many seeds `dlcamp bench recipe:NAME` runs
    references: list[str] = dataclasses.field(default_factory=list)  # reference baselines run beside it
    # the last `dlcamp bench recipe:NAME` result as recorded in BENCHMARKS.md (value, time,
    # seeds, date): what the tour shows for recipes it does not train itself
    measured: str = ""
    note: str = ""


@dataclasses.dataclass
class ScheduleConfig:
    name: Literal["constant", "cosine", "step", "multistep", "linear"] = "constant"
    warmup_steps: int = 0  # linear warm-up from 0 before the schedule proper
    step_size: int = 1000  # "step": decay every step_size steps by gamma
    gamma: float = 0.1
    # "multistep": decay by gamma at these fractions of training (He et al. 2016 and
    # Huang et al. 2017 both divide by 10 at 50% and 75%), so the schedule follows the
    # paper whatever the dataset size and batch
    milestones: list[float] = dataclasses.field(default_factory=lambda: [0.5, 0.75])
    min_lr_ratio: float = 0.0  # "cosine"/"linear": final lr as a fraction of the initial


# -- type checking of values -------------------------------------------------------------


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(_type_name(a) for a in typing.get_args(tp))}]"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the type hint ``tp`` (ints pass as floats); return it, cast where safe."""
    if tp is Any or tp is inspect_empty:
        return value
    origin = typing.get_origin(tp)
    bad = UsageError(f"{where} must be {_type_name(tp)}, got {value!r}")
    if origin in (Union, types.UnionType):
        deeper: UsageError | None = None
        for arg in typing.get_args(tp):
            try:
                return coerce(value, arg, where)
            except UsageError as e:
                # a member that matched the value's shape but not its contents says more
                if not str(e).startswith(f"{where} must be"):
                    deeper = e
        raise deeper or bad
    if origin is Literal:
        choices = typing.get_args(tp)
        if value in choices and not (isinstance(value, bool) and not any(isinstance(c, bool) for c in choices)):
            return value
        # YAML reads 32 as an int where a string "32" is meant (precision)
        if str(value) in [str(c) for c in choices]:
            return next(c for c in choices if str(c) == str(value))
        raise bad
    if tp is type(None):
        if value is None:
            return None
        raise bad
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise bad
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # PyYAML (YAML 1.1) reads 1e-3 as a string: it needs a dot
            try:
                return float(value)
            except ValueError:
                pass
        raise bad
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad
    if origin in (list, tuple, collections.abc.Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise bad
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise bad
            return [coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
        inner = args[0] if args else Any
        return [coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise bad
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad
        return dataclass_from_dict(tp, value, where)
    if origin is collections.abc.Callable:  # a layer class (norm_layer=...): not writable in YAML
        if callable(value):
            return value
        raise UsageError(f"{where} takes a Python callable (set it in code, not in a recipe), got {value!r}")
    if isinstance(tp, type):  # a class: the value must be one (a Tensor where lr may be one)
        if isinstance(value, tp):
            return value
        raise bad
    return value  # an annotation we do not check (a callable): trust the builder


inspect_empty = __import__("inspect").Parameter.empty


def dataclass_from_dict(cls: type, values: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, naming unknown keys and bad values."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    out = {}
    for key, value in values.items():
        if key not in fields:
            raise unknown_key(f"{where}.{key}", list(fields))
        out[key] = coerce(value, hints[key], f"{where}.{key}")
    try:
        return cls(**out)
    except TypeError as e:  # a required field missing
        raise UsageError(f"{where}: {e}") from None


def unknown_key(key: str, known: list[str]) -> UsageError:
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, known, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else f"known keys: {', '.join(known)}"
    return UsageError(f"unknown key {key!r}; {hint}")


def check_section(
    fn: Callable[..., Any],
    values: dict[str, Any],
    where: str,
    *,
    reserved: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Check a section's arguments against ``fn``'s keyword parameters and type hints.

    ``reserved`` parameters are filled by the engine, never by the recipe; ``optional``
    ones the recipe may set, and the engine fills them from the data when it does not.
    """
    if accepts_any(fn):
        return dict(values)
    params = {k: p for k, p in signature_params(fn).items() if k not in reserved and k != "self"}
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable annotations: check names only
        hints = {}
    out = {}
    for key, value in values.items():
        if key not in params:
            raise unknown_key(f"{where}.{key}", list(params))
        out[key] = coerce(value, hints.get(key, Any), f"{where}.{key}")
    for key, param in params.items():
        if param.default is inspect_empty and key not in out and key not in optional:
            raise UsageError(f"{where}.{key} is required (e.g. --set {where}.{key}=...)")
    return out


# -- overrides ---------------------------------------------------------------------------


def parse_value(raw: str) -> Any:
    """A ``--set`` value as YAML (``3``, ``0.1``, ``[8, 4]``, ``{a: 1}``); text that is not YAML stays text."""
    try:
        return yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        return raw


def apply_overrides(cfg: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides (values parsed as YAML) to a copy of ``cfg``."""
    cfg = copy.deepcopy(cfg)
    for item in overrides:
        if "=" not in item:
            raise UsageError(f"--set takes key=value (e.g. optim.lr=0.01), got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise UsageError(f"--set key {key!r} is not a dotted path like optim.lr")
        value = parse_value(raw)
        parts = key.split(".")
        if parts[0] not in SECTIONS:
            raise unknown_key(key, list(SECTIONS))
        node = cfg
        for part in parts[:-1]:
            if node.get(part) is None:
                node[part] = {}
            if not isinstance(node[part], dict):
                raise UsageError(f"--set {key}: {part!r} is a value, not a section")
            node = node[part]
        node[parts[-1]] = value
    return cfg


def load_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise UsageError(f"recipe file {str(path)!r} does not exist") from None
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise UsageError(f"recipe file {str(path)!r} is not valid YAML{where}") from None
    if not isinstance(cfg, dict):
        raise UsageError(f"recipe file {str(path)!r} must hold a mapping with model, data, task, optim, trainer")
    return cfg
