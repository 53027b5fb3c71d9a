"""TOML configs → typed dataclasses, validated before any work starts.

Only this module (and the CLI) reads config files; the library takes explicit arguments.
Every error names the table and key and lists what is allowed, e.g.
    [train] unknown key 'stpes'; allowed: batch_size, checkpoint_every, ema_decay, ...

Two kinds of run: a noise ladder ([noise]; a σ-conditional model, the Langevin family of
samplers) and a score SDE ([sde]; a time-conditional model trained with sde_dsm, sampled by
the reverse-SDE family).  An [sde] table switches a config to the second kind and fills in its
defaults (objective sde_dsm, conditioning time, sampler predictor_corrector); see docs/cli.md.

Data are points (a named target or a user (N, d) file) or images (`[data] images`: the embedded
digits, a .npz, a PNG folder or an IDX file; scorelab.images).  Image runs train on flat rows
(N, C·H·W), default to `init = "uniform"` (U(0, 1), as NCSN) and are measured by the digits
classifier (docs/cli.md, Image runs).  The `ncsn` model takes its conditioning from its variant.
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

LANGEVIN_SAMPLERS = ("langevin", "annealed_langevin", "mala", "hmc")
SDE_SAMPLERS = ("reverse_sde", "ancestral", "predictor_corrector", "probability_flow")
SAMPLER_NAMES = LANGEVIN_SAMPLERS + SDE_SAMPLERS
INIT_NAMES = ("prior", "uniform", "data")
SDE_DEFAULT_SAMPLER = "predictor_corrector"
IMAGE_SPLITS = ("train", "all")
# objectives that hand the model a noise level σ (what a σ-conditional ncsn network needs)
SIGMA_OBJECTIVES = ("ncsn", "dsm")


@dataclass
class DataConfig:
    """Where training data comes from: a built-in target by name, a user file of points, or
    images (exactly one of target, path, images)."""

    target: str | None = None  # a name in scorelab.distributions.TARGETS
    path: str | None = None  # .npy / .npz / .csv of shape (N, d)
    n: int = 5000  # samples drawn from a target
    params: dict = field(default_factory=dict)  # keyword arguments of the target's builder
    # images: "digits", a .npz, a folder of PNGs or an IDX file (scorelab.images.load_images)
    images: str | None = None
    # train: the seeded (stratified) train part, the rest held out; all: the whole source
    # (default: train, or all when test_images is given)
    split: str | None = None
    test_fraction: float = 0.2  # held-out fraction of the split
    split_seed: int = 0  # the split's seed (not the run's: the held-out set stays put)
    test_images: str | None = None  # a separate held-out file, taken whole (e.g. MNIST t10k)

    def image_split(self) -> str:
        """The split the training images come from (the default depends on test_images)."""
        if self.split is not None:
            return self.split
        return "all" if self.test_images is not None else "train"


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
class SDEConfig:
    """The forward SDE of a score-SDE run: a name in scorelab.sde.SDES and its parameters.

    Unset parameters take the SDE class's defaults, except VE's sigma_max, which comes from
    the data (max pairwise distance, Song & Ermon 2020 technique 1).
    """

    name: str = ""  # ve | vp | subvp | ou
    params: dict = field(default_factory=dict)  # sigma_min, sigma_max, beta_min, beta_max, T, eps


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 256
    lr: float = 1e-3
    ema_decay: float | None = 0.999  # 0 in a config file: no EMA
    grad_clip: float | None = None
    skip_nonfinite: bool = False  # skip (and log) a step whose loss or gradient is not finite
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
    sde: SDEConfig | None = None  # set: a score-SDE run; [noise] does not apply

    def as_dict(self) -> dict:
        """Plain data that parse_config reads back to an equal config (the table of the
        other kind of run is left out: an SDE run has no [noise], a ladder run no [sde])."""
        out = dataclasses.asdict(self)
        if self.sde is None:
            del out["sde"]
        else:
            del out["noise"]
        return out


_TABLES = {
    "data": DataConfig,
    "model": ModelConfig,
    "objective": ObjectiveConfig,
    "noise": NoiseConfig,
    "train": TrainConfig,
    "sample": SampleConfig,
    "sde": SDEConfig,
}
# tables whose unknown keys are builder parameters (checked against the builder's signature)
_OPEN_TABLES = {"model", "objective", "sample", "sde"}


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


def _sde_defaults(raw: dict) -> None:
    """An [sde] table makes a score-SDE run: fill what the user left out, refuse [noise].

    Defaults are filled here, not in validate, because only the raw tables tell a key the user
    wrote from a dataclass default (e.g. the ladder run's objective "ncsn").
    """
    if raw.get("sde") is None:  # config.json of a ladder run written before [sde] existed
        raw.pop("sde", None)
        return
    if "noise" in raw:
        raise ScorelabError(
            "[noise] is the σ ladder of noise-conditional runs; an SDE run takes its noise from "
            "[sde] (remove [noise])"
        )
    model = raw.setdefault("model", {})
    is_ncsn = isinstance(model, dict) and model.get("name") == "ncsn"
    for table, key, value in (
        ("objective", "name", "sde_dsm"),
        # the ncsn network's conditioning is its variant: "time" is the time-conditional one
        ("model", "variant" if is_ncsn else "conditioning", "time"),
        ("sample", "sampler", SDE_DEFAULT_SAMPLER),
    ):
        _set_default(raw, table, key, value)
    if isinstance(model, dict) and model.get("name", "score_mlp") in ("score_mlp", "ncsn"):
        # continuous-time NCSNv2 scaling: output / s(t) (see models.MarginalStdScaled)
        _set_default(raw, "model", "scale_by_sigma", True)


def _set_default(raw: dict, table: str, key: str, value: Any) -> None:
    """raw[table][key] = value unless the user set it (directly or under params)."""
    node = raw.setdefault(table, {})
    if isinstance(node, dict):
        params = node.get("params") if isinstance(node.get("params"), dict) else {}
        if key not in node and key not in params:
            node[key] = value


def _image_defaults(raw: dict) -> None:
    """An image run on a σ ladder starts annealed Langevin from U(0, 1)^D, as NCSN does
    (init = "uniform": the data box of images in [0, 1]), unless [sample] init says otherwise."""
    data = raw.get("data")
    if isinstance(data, dict) and data.get("images") is not None and raw.get("sde") is None:
        _set_default(raw, "sample", "init", "uniform")


def parse_config(raw: dict) -> RunConfig:
    """A RunConfig from a parsed TOML dict; every name, type and range checked."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    _sde_defaults(raw)
    _image_defaults(raw)
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
        _check_like_default(table, key, params[key], sig.parameters[key].default)


def _check_like_default(table: str, key: str, value: Any, default: Any) -> None:
    """A value of the builder default's type: bool, int (≥ 1 where the default is), a finite
    float (an int is one too) or a string.  Keys without such a default are left to the builder."""
    kind = type(default)
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok and (default < 1 or value >= 1)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and math.isfinite(value)
    elif kind is str:
        ok = isinstance(value, str)
    else:
        return
    want = {
        bool: "true or false",
        int: "an integer" + (" >= 1" if kind is int and default >= 1 else ""),
        float: "a finite number",
        str: "a string",
    }[kind]
    _check(ok, f"[{table}] {key} must be {want}, got {value!r}")


def validate(cfg: RunConfig) -> None:
    """Names against the registries, ranges, and combinations — before any work starts."""
    from scorelab.objectives import OBJECTIVES

    validate_data(cfg.data)
    validate_model(cfg)
    OBJECTIVES.get(cfg.objective.name)
    _check(cfg.objective.name != "esm", "[objective] esm needs a known score; use it from Python")
    _check(
        cfg.objective.name != "sde_dsm" or cfg.sde is not None,
        "[objective] sde_dsm needs an SDE object: add an [sde] table with name = one of "
        f"{', '.join(_sde_names())} (docs/cli.md, SDE runs)",
    )
    _check_params(
        "objective",
        OBJECTIVES.get(cfg.objective.name),
        cfg.objective.params,
        reserved=("sigmas", "score_fn", "sde"),
    )
    cond = model_conditioning(cfg.model)
    if cfg.sde is not None:
        validate_sde(cfg)
    else:
        if cfg.model.name == "ncsn":
            _check(
                cond != "time",
                "[model] variant = 'time' is the time-conditional ncsn for score-SDE runs: add "
                "an [sde] table (or use variant = 'ncsn' / 'ncsnv2' with the ncsn objective)",
            )
            _check(
                cfg.objective.name in SIGMA_OBJECTIVES,
                f"[objective] the ncsn model is σ-conditional: train it with one of "
                f"{', '.join(SIGMA_OBJECTIVES)}, got '{cfg.objective.name}'",
            )
        _check(
            cond != "time",
            "[model] conditioning = 'time' is for score-SDE runs: add an [sde] table "
            "(or use conditioning = 'sigma' with the ncsn objective)",
        )
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

    validate_sample(cfg.sample, sde=cfg.sde.name if cfg.sde is not None else None)


def validate_data(d: DataConfig) -> None:
    """[data]: one source (target, path or images) and the keys that belong to it."""
    from scorelab.distributions import TARGETS

    given = [k for k in ("target", "path", "images") if getattr(d, k) is not None]
    _check(
        len(given) == 1,
        "[data] give exactly one of target or path (points) or images"
        + (f"; got {', '.join(given)}" if given else ""),
    )
    if d.target is not None:
        TARGETS.get(d.target)
        _check_params("data.params", TARGETS.get(d.target), d.params)
    elif d.path is not None:
        _check(not d.params, "[data] params only apply to a target")
        suffix = Path(d.path).suffix.lower()
        _check(
            suffix in (".npy", ".npz", ".csv"),
            f"[data] path must be .npy, .npz or .csv, got '{d.path}'",
        )
    else:
        _check(not d.params, "[data] params only apply to a target")
        _check(
            isinstance(d.images, str) and d.images.strip() != "",
            "[data] images must be 'digits' or the path of a .npz, a folder of PNGs or an IDX file",
        )
        _check(
            d.split is None or d.split in IMAGE_SPLITS,
            f"[data] split must be one of {', '.join(IMAGE_SPLITS)}, got {d.split!r}",
        )
        _check(
            math.isfinite(d.test_fraction) and 0 < d.test_fraction < 1,
            f"[data] test_fraction must lie in (0, 1), got {d.test_fraction}",
        )
        _check(
            d.test_images is None or d.test_images.strip() != "",
            "[data] test_images must be a path",
        )
    if d.images is None:
        for key, default in (("split", None), ("test_images", None)):
            _check(
                getattr(d, key) == default,
                f"[data] {key} applies to image data only ([data] images = ...)",
            )
        for key, default in (("test_fraction", 0.2), ("split_seed", 0)):
            _check(
                getattr(d, key) == default,
                f"[data] {key} applies to image data only ([data] images = ...)",
            )
    _check(d.n >= 1, f"[data] n must be >= 1, got {d.n}")


def model_conditioning(model: ModelConfig) -> str:
    """none | sigma | time: the [model] conditioning key, or for `ncsn` its variant's
    (ncsn, ncsnv2 → sigma; time → time)."""
    if model.name == "ncsn":
        return "time" if model.params.get("variant", "ncsn") == "time" else "sigma"
    return model.params.get("conditioning", "none")


def validate_model(cfg: RunConfig) -> None:
    """[model]: a registered name whose builder takes every key given.

    `dim` (and for ncsn `sigmas`, the run's σ ladder) are filled in by the run; `ncsn` gets
    its channels and image size from image data, and in an SDE run it also takes
    scale_by_sigma (output / s(t), models.MarginalStdScaled), applied by the pipeline.
    """
    from scorelab.models import MODELS

    m = cfg.model
    MODELS.get(m.name)
    if m.name != "ncsn":
        _check_params("model", MODELS.get(m.name), m.params, reserved=("dim",))
        return
    from scorelab.models.ncsn import VARIANTS

    _check(
        "conditioning" not in m.params,
        "[model] ncsn takes no conditioning key: its variant sets it (variant = 'ncsn' or "
        "'ncsnv2': σ-conditional; 'time': time-conditional, for [sde] runs)",
    )
    params = {
        k: v for k, v in m.params.items() if not (cfg.sde is not None and k == "scale_by_sigma")
    }
    _check_params("model", MODELS.get(m.name), params, reserved=("dim", "sigmas"))
    variant = m.params.get("variant", "ncsn")
    _check(
        variant in VARIANTS,
        f"[model] variant must be one of {', '.join(VARIANTS)}, got {variant!r}",
    )
    for key, low in (("n_features", 2), ("channels", 1), ("image_size", 2), ("embed_dim", 1)):
        if key in m.params:
            v = m.params[key]
            _check(
                isinstance(v, int) and not isinstance(v, bool) and v >= low,
                f"[model] {key} must be an integer >= {low}, got {v!r}",
            )
    if "fourier_scale" in m.params:
        v = m.params["fourier_scale"]
        _check(
            _is_number(v) and math.isfinite(v) and v > 0,
            f"[model] fourier_scale must be a positive number, got {v!r}",
        )


# -- score-SDE runs ---------------------------------------------------------------------------
def _sde_names() -> list[str]:
    from scorelab.sde import SDES

    return list(SDES)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def sde_parameters(name: str, params: dict) -> dict[str, float | None]:
    """Every parameter of SDE `name`: the config's value, else the class default; None for
    VE's sigma_max, which the run takes from the data (pipeline.resolve_sde)."""
    from scorelab.sde import SDES

    sig = inspect.signature(SDES.get(name))
    out: dict[str, float | None] = {}
    for key, p in sig.parameters.items():
        if key in params:
            out[key] = float(params[key])
        elif name == "ve" and key == "sigma_max":
            out[key] = None
        else:
            out[key] = float(p.default)
    return out


def validate_sde(cfg: RunConfig) -> None:
    """[sde]: a known name, its own numeric positive parameters, and what an SDE run needs
    of [model], [objective] and [sample]."""
    from scorelab.objectives import SDE_WEIGHTINGS
    from scorelab.sde import SDES

    sde = cfg.sde
    assert sde is not None
    _check(sde.name != "", f"[sde] needs name = one of {', '.join(_sde_names())}")
    allowed = list(inspect.signature(SDES.get(sde.name)).parameters)
    for key in sde.params:
        _check(
            key in allowed,
            f"[sde] unknown key '{key}' for {sde.name}; allowed: {', '.join(sorted(allowed))}",
        )
    for key, value in sde.params.items():
        _check(
            _is_number(value) and math.isfinite(value) and value > 0,
            f"[sde] {key} must be a positive number, got {value!r}",
        )
    v = sde_parameters(sde.name, sde.params)
    _check(v["eps"] < v["T"], f"[sde] eps ({v['eps']}) must be smaller than T ({v['T']})")
    for lo, hi in (("sigma_min", "sigma_max"), ("beta_min", "beta_max")):
        if v.get(lo) is not None and v.get(hi) is not None:
            _check(v[lo] < v[hi], f"[sde] {lo} ({v[lo]}) must be smaller than {hi} ({v[hi]})")

    _check(
        cfg.objective.name == "sde_dsm",
        f"[objective] an SDE run ([sde] table) trains with sde_dsm, got '{cfg.objective.name}'",
    )
    weighting = cfg.objective.params.get("weighting", "sigma2")
    _check(
        weighting in SDE_WEIGHTINGS,
        f"[objective] weighting must be one of {', '.join(SDE_WEIGHTINGS)}, got {weighting!r}",
    )
    if "eps" in cfg.objective.params:
        eps = cfg.objective.params["eps"]
        _check(
            _is_number(eps) and 0 < eps < v["T"],
            f"[objective] eps must be a number in (0, T = {v['T']}), got {eps!r}",
        )
    if cfg.model.name == "ncsn":
        variant = cfg.model.params.get("variant", "time")
        _check(
            variant == "time",
            f"[model] an SDE run ([sde] table) needs the time-conditional ncsn: variant = "
            f"'time', got {variant!r}",
        )
    cond = model_conditioning(cfg.model)
    _check(
        cond == "time",
        f"[model] conditioning must be 'time' in an SDE run ([sde] table), got '{cond}'",
    )
    scale = cfg.model.params.get("scale_by_sigma", False)
    _check(isinstance(scale, bool), f"[model] scale_by_sigma must be true or false, got {scale!r}")


# -- [sample] ---------------------------------------------------------------------------------
_SAMPLE_PARAMS = {
    "langevin": ("step_size", "n_steps", "time"),
    "annealed_langevin": ("step_size", "n_steps_each", "denoise"),
    "mala": ("step_size", "n_steps"),
    "hmc": ("step_size", "n_steps", "n_leapfrog"),
    "reverse_sde": ("n_steps", "method", "denoise"),
    "ancestral": ("n_steps", "denoise"),
    "predictor_corrector": ("n_steps", "predictor", "n_corrector", "snr", "denoise"),
    "probability_flow": ("n_steps", "method", "rtol", "atol", "denoise"),
}
# the string settings of the SDE samplers and their values (the samplers check them too)
_CHOICES = {
    ("reverse_sde", "method"): ("euler_maruyama", "exponential"),
    ("probability_flow", "method"): (
        "euler",
        "heun",
        "euler_sigma",
        "heun_sigma",
        "dopri5",
        "adaptive",
    ),
    ("predictor_corrector", "predictor"): ("reverse_diffusion", "ancestral", "euler_maruyama"),
}


def parse_sample(raw: dict, *, sde: str | None = None) -> SampleConfig:
    """A validated SampleConfig from a [sample]-like dict (for `scorelab sample --set`);
    `sde` is the run's SDE name (None for a noise-ladder run)."""
    sc = _build_table(SampleConfig, "sample", dict(raw))
    validate_sample(sc, sde=sde)
    return sc


def validate_sample(s: SampleConfig, *, sde: str | None = None) -> None:
    """Names, ranges and the sampler's fit to the run: the Langevin family samples σ ladders,
    the SDE family a run with an [sde] table (`sde` is its name)."""
    _check(
        s.sampler in SAMPLER_NAMES,
        f"[sample] unknown sampler '{s.sampler}'; allowed: {', '.join(SAMPLER_NAMES)}",
    )
    if sde is None:
        _check(
            s.sampler not in SDE_SAMPLERS,
            f"[sample] {s.sampler} samples a score SDE: it needs a run trained with an [sde] "
            f"table; this run's samplers: {', '.join(LANGEVIN_SAMPLERS)}",
        )
    else:
        _check(
            s.sampler in SDE_SAMPLERS,
            f"[sample] {s.sampler} samples noise-conditional (σ) models; this run's model is "
            f"time-conditional ([sde] {sde}): use one of {', '.join(SDE_SAMPLERS)}",
        )
    _check(
        s.init in INIT_NAMES,
        f"[sample] init must be one of {', '.join(INIT_NAMES)}, got '{s.init}'",
    )
    if sde is not None:
        _check(
            s.init == "prior",
            f"[sample] init = '{s.init}' applies to the Langevin family; {s.sampler} starts "
            "from the SDE's prior (init = 'prior')",
        )
    _check(s.n >= 1, f"[sample] n must be >= 1, got {s.n}")
    allowed = _SAMPLE_PARAMS[s.sampler]
    for key, value in s.params.items():
        _check(
            key in allowed,
            f"[sample] unknown key '{key}' for {s.sampler}; allowed: {', '.join(allowed)}",
        )
        if (s.sampler, key) in _CHOICES:
            choices = _CHOICES[(s.sampler, key)]
            _check(
                value in choices,
                f"[sample] {key} for {s.sampler} must be one of {', '.join(choices)}, "
                f"got {value!r}",
            )
        elif key == "n_corrector":
            _check(
                isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                f"[sample] n_corrector must be an integer >= 0, got {value!r}",
            )
        elif key in ("step_size", "time", "snr", "rtol", "atol"):
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
    method = s.params.get("method")
    if s.sampler == "probability_flow" and method in ("dopri5", "adaptive"):
        _check(
            "n_steps" not in s.params,
            f"[sample] probability_flow with method = '{method}' chooses its own steps: "
            "remove n_steps",
        )
