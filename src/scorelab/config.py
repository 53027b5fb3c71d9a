"""TOML configs → typed dataclasses, validated before any work starts.

Only this module (and the CLI) reads config files; the library takes explicit arguments.
Every error names the table and key and lists what is allowed, e.g.
    [train] unknown key 'stpes'; allowed: batch_size, checkpoint_every, ema_decay, ...
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from scorelab._utils import ScorelabError

SAMPLER_NAMES = ("langevin", "annealed_langevin", "mala", "hmc")
INIT_NAMES = ("prior", "uniform", "data")


@dataclass
class DataConfig:
    """Where training data comes from: a built-in target by name, or a user file."""

    target: str | None = None  # a name in scorelab.distributions.TARGETS
    path: str | None = None  # .npy / .npz / .csv of shape (N, d)
    n: int = 5000  # samples drawn from a target
    params: dict = field(default_factory=dict)  # keyword arguments of the target's builder


@dataclass
class ModelConfig:
    name: str = "score_mlp"  # a name in scorelab.models.MODELS
    params: dict = field(default_factory=dict)  # every other key of [model]


@dataclass
class ObjectiveConfig:
    name: str = "ncsn"  # a name in scorelab.objectives.OBJECTIVES
    params: dict = field(default_factory=dict)


@dataclass
class NoiseConfig:
    """The σ ladder and annealed step; unset values come from scorelab.heuristics."""

    sigma_max: float | None = None
    sigma_min: float = 0.01
    n_levels: int | None = None
    step_size: float | None = None
    n_steps_each: int = 100


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    ema_decay: float | None = 0.999  # 0 in a config file: no EMA
    grad_clip: float | None = None
    checkpoint_every: int | None = None
    log_every: int = 100


@dataclass
class SampleConfig:
    sampler: str = "annealed_langevin"
    n: int = 1000
    init: str = "prior"  # prior (N(0, σ₁²I) or N(0, I)), uniform (data box), data (Koehler–Vuong)
    params: dict = field(default_factory=dict)  # step_size, n_steps, time, n_leapfrog, denoise


@dataclass
class RunConfig:
    name: str = "run"
    seed: int = 0
    out: str = "runs"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_TABLES = {
    "data": DataConfig,
    "model": ModelConfig,
    "objective": ObjectiveConfig,
    "noise": NoiseConfig,
    "train": TrainConfig,
    "sample": SampleConfig,
}
# tables whose unknown keys are builder parameters (checked against the builder's signature)
_OPEN_TABLES = {"model", "objective", "sample"}


def _type_ok(value: Any, hint: Any) -> bool:
    hint_s = str(hint)
    if value is None:
        return "None" in hint_s
    if isinstance(value, bool):
        return "bool" in hint_s
    if isinstance(value, int):
        return "int" in hint_s or "float" in hint_s
    if isinstance(value, float):
        return "float" in hint_s
    if isinstance(value, str):
        return "str" in hint_s
    if isinstance(value, dict):
        return "dict" in hint_s
    return False


def _build_table(cls, table: str, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ScorelabError(f"[{table}] must be a table, got {type(raw).__name__}")
    hints = get_type_hints(cls)
    names = [f.name for f in fields(cls) if f.name != "params"]
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = dict(raw.pop("params", {}) or {})
    for key, value in raw.items():
        if key in names:
            if not _type_ok(value, hints[key]):
                want = str(hints[key]).replace("typing.", "")
                raise ScorelabError(
                    f"[{table}] {key} = {value!r} has the wrong type; expected {want}"
                )
            as_float = "float" in str(hints[key]) and "int" not in str(hints[key])
            coerce = as_float and value is not None and not isinstance(value, bool)
            kwargs[key] = float(value) if coerce else value
        elif table in _OPEN_TABLES or "params" in hints:
            extra[key] = value
        else:
            raise ScorelabError(
                f"[{table}] unknown key '{key}'; allowed: {', '.join(sorted(names))}"
            )
    if "params" in hints:
        kwargs["params"] = extra
    return cls(**kwargs)


def parse_config(raw: dict) -> RunConfig:
    """A RunConfig from a parsed TOML dict; every name, type and range checked."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    top = {f.name for f in fields(RunConfig)} - set(_TABLES)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _TABLES:
            kwargs[key] = _build_table(_TABLES[key], key, value)
        elif key in top:
            want = {"name": str, "seed": int, "out": str}[key]
            if not isinstance(value, want) or isinstance(value, bool):
                raise ScorelabError(f"{key} = {value!r} must be a {want.__name__}")
            kwargs[key] = value
        else:
            allowed = ", ".join(sorted(top | set(_TABLES)))
            raise ScorelabError(f"unknown top-level key '{key}'; allowed: {allowed}")
    cfg = RunConfig(**kwargs)
    if cfg.train.ema_decay == 0:  # TOML has no null: 0 switches the EMA off
        cfg.train.ema_decay = None
    validate(cfg)
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Read a TOML file, apply `key=value` overrides (dotted keys), validate."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ScorelabError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as err:
        raise ScorelabError(f"{path} is not valid TOML: {err}") from None
    for item in overrides or []:
        apply_override(raw, item)
    return parse_config(raw)


def parse_value(text: str) -> Any:
    """A TOML literal (1e-3, 100, true, "x", [1, 2]); anything else is a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_override(raw: dict, item: str) -> None:
    """Set raw[a][b] = value from 'a.b=value' (tables are created as needed)."""
    if "=" not in item:
        raise ScorelabError(f"--set expects key=value, got '{item}'")
    key, text = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ScorelabError(f"--set expects key=value, got '{item}'")
    node = raw
    for p in parts[:-1]:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ScorelabError(f"--set {key}: '{p}' is not a table")
    node[parts[-1]] = parse_value(text.strip())


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ScorelabError(message)


def _check_params(table: str, builder, params: dict, reserved: tuple[str, ...] = ()) -> None:
    """Builder keyword arguments must exist in its signature."""
    sig = inspect.signature(builder)
    allowed = sorted(
        n
        for n, p in sig.parameters.items()
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and n not in reserved
    )
    for key in params:
        _check(key in allowed, f"[{table}] unknown key '{key}'; allowed: {', '.join(allowed)}")


def validate(cfg: RunConfig) -> None:
    """Names against the registries, ranges, and combinations — before any work starts."""
    from scorelab.distributions import TARGETS
    from scorelab.models import MODELS
    from scorelab.objectives import OBJECTIVES

    d = cfg.data
    _check((d.target is None) != (d.path is None), "[data] give exactly one of target or path")
    if d.target is not None:
        TARGETS.get(d.target)
        _check_params("data.params", TARGETS.get(d.target), d.params)
    else:
        _check(not d.params, "[data] params only apply to a target")
        suffix = Path(d.path).suffix.lower()
        _check(
            suffix in (".npy", ".npz", ".csv"),
            f"[data] path must be .npy, .npz or .csv, got '{d.path}'",
        )
    _check(d.n >= 1, f"[data] n must be >= 1, got {d.n}")

    MODELS.get(cfg.model.name)
    _check_params("model", MODELS.get(cfg.model.name), cfg.model.params, reserved=("dim",))
    OBJECTIVES.get(cfg.objective.name)
    _check(cfg.objective.name != "esm", "[objective] esm needs a known score; use it from Python")
    _check(
        cfg.objective.name != "sde_dsm",
        "[objective] sde_dsm needs an SDE object, which configs cannot name yet; "
        "use scorelab.objectives.SDEDSM from Python",
    )
    _check_params(
        "objective",
        OBJECTIVES.get(cfg.objective.name),
        cfg.objective.params,
        reserved=("sigmas", "score_fn"),
    )
    cond = cfg.model.params.get("conditioning", "none")
    if cfg.objective.name == "ncsn":
        _check(cond == "sigma", "[model] conditioning must be 'sigma' for the ncsn objective")

    n = cfg.noise
    for key in ("sigma_max", "step_size"):
        v = getattr(n, key)
        _check(v is None or (math.isfinite(v) and v > 0), f"[noise] {key} must be > 0, got {v}")
    _check(
        math.isfinite(n.sigma_min) and n.sigma_min > 0,
        f"[noise] sigma_min must be > 0, got {n.sigma_min}",
    )
    _check(
        n.sigma_max is None or n.sigma_max > n.sigma_min,
        f"[noise] sigma_max ({n.sigma_max}) must exceed sigma_min ({n.sigma_min})",
    )
    _check(
        n.n_levels is None or n.n_levels >= 2, f"[noise] n_levels must be >= 2, got {n.n_levels}"
    )
    _check(n.n_steps_each >= 1, f"[noise] n_steps_each must be >= 1, got {n.n_steps_each}")

    t = cfg.train
    _check(t.steps >= 1, f"[train] steps must be >= 1, got {t.steps}")
    _check(t.batch_size >= 1, f"[train] batch_size must be >= 1, got {t.batch_size}")
    _check(math.isfinite(t.lr) and t.lr > 0, f"[train] lr must be > 0, got {t.lr}")
    _check(
        t.ema_decay is None or 0 < t.ema_decay < 1,
        f"[train] ema_decay must be in (0, 1), got {t.ema_decay}",
    )
    _check(
        t.grad_clip is None or t.grad_clip > 0, f"[train] grad_clip must be > 0, got {t.grad_clip}"
    )
    _check(
        t.checkpoint_every is None or t.checkpoint_every >= 1,
        "[train] checkpoint_every must be >= 1",
    )
    _check(t.log_every >= 1, f"[train] log_every must be >= 1, got {t.log_every}")

    validate_sample(cfg.sample)


_SAMPLE_PARAMS = {
    "langevin": ("step_size", "n_steps", "time"),
    "annealed_langevin": ("step_size", "n_steps_each", "denoise"),
    "mala": ("step_size", "n_steps"),
    "hmc": ("step_size", "n_steps", "n_leapfrog"),
}


def parse_sample(raw: dict) -> SampleConfig:
    """A validated SampleConfig from a [sample]-like dict (for `scorelab sample --set`)."""
    sc = _build_table(SampleConfig, "sample", dict(raw))
    validate_sample(sc)
    return sc


def validate_sample(s: SampleConfig) -> None:
    _check(
        s.sampler in SAMPLER_NAMES,
        f"[sample] unknown sampler '{s.sampler}'; allowed: {', '.join(SAMPLER_NAMES)}",
    )
    _check(
        s.init in INIT_NAMES,
        f"[sample] init must be one of {', '.join(INIT_NAMES)}, got '{s.init}'",
    )
    _check(s.n >= 1, f"[sample] n must be >= 1, got {s.n}")
    allowed = _SAMPLE_PARAMS[s.sampler]
    for key, value in s.params.items():
        _check(
            key in allowed,
            f"[sample] unknown key '{key}' for {s.sampler}; allowed: {', '.join(allowed)}",
        )
        if key in ("step_size", "time"):
            _check(
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and math.isfinite(value)
                and value > 0,
                f"[sample] {key} must be a positive number, got {value!r}",
            )
        elif key in ("n_steps", "n_steps_each", "n_leapfrog"):
            _check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 1,
                f"[sample] {key} must be an integer >= 1, got {value!r}",
            )
        elif key == "denoise":
            _check(
                isinstance(value, bool), f"[sample] denoise must be true or false, got {value!r}"
            )
