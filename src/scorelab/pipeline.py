"""What `scorelab train / sample / evaluate` do, as functions of a config and a run folder.

Two kinds of run share these functions: a noise ladder (σ-conditional model, `resolve_noise`,
the Langevin family) and a score SDE (time-conditional model, `resolve_sde`, sde_dsm and the
reverse-SDE family).  config.json holds "noise" for the first and "sde" for the second.

Either kind can train on points or on images.  An image run (`[data] images`) keeps its
training and held-out images in images.npz (raw integer values, not data.npy), records their
shape and level count under "images" in config.json, trains on flat rows (N, C·H·W)
dequantised per batch, writes a PNG grid beside every samples file, and is measured by the
digits classifier (`classifier`, `evaluate`; docs/cli.md, Image runs).

Every command runs its model on one torch device (`resolve_device`); checkpoints, samples and
the images file stay device-independent (CPU tensors).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scorelab import __version__
from scorelab._utils import ScorelabError, make_generator
from scorelab.checkpoint import load_checkpoint
from scorelab.config import (
    SDE_SAMPLERS,
    RunConfig,
    apply_override,
    parse_config,
    parse_sample,
    sde_parameters,
)
from scorelab.data import check_data, load_image_data, load_training_data
from scorelab.distributed import Dist, gather_rows, shares, stream_seed
from scorelab.runs import (
    figures_dir,
    fresh_run_dir,
    load_samples,
    read_json,
    save_samples,
    write_json,
)

IMAGES_FILE = "images.npz"
CLASSIFIER_DIR = "classifier"
MIN_CLASSIFIER_ACCURACY = 0.95  # below this the classifier's features do not measure samples


# -- devices ----------------------------------------------------------------------------------
DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str | None = "auto") -> torch.device:
    """auto: cuda when torch sees a GPU, else cpu; cuda without one is a one-line error."""
    name = name or "auto"
    if name not in DEVICES:
        raise ScorelabError(f"--device must be one of {', '.join(DEVICES)}, got '{name}'")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise ScorelabError(
            "--device cuda: no CUDA device is available (torch.cuda.is_available() is False; "
            f"torch {torch.__version__}); use --device cpu or auto"
        )
    return torch.device(name)


def _score_on(model: torch.nn.Module, device: torch.device):
    """model_score_fn(model) for inputs on any device: evaluated on `device`, returned on the
    input's (evaluation code draws its reference points on the CPU)."""
    from scorelab.models import model_score_fn

    fn = model_score_fn(model)

    def score_fn(x: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        return fn(x.to(device), None if s is None else s.to(device)).to(x.device)

    return score_fn


# -- noise ladder -----------------------------------------------------------------------------
def resolve_noise(cfg: RunConfig, data: torch.Tensor) -> dict[str, Any]:
    """Fill σ₁, L and ε left unset from the heuristics of Song & Ermon 2020; say which came
    from where, so the run folder records values a user did not have to guess."""
    from scorelab.heuristics import suggest_schedule

    n = cfg.noise
    dim = int(data[0].numel())
    levels = n.n_levels if n.n_levels is not None or dim >= 5 else 10
    schedule = suggest_schedule(
        data,
        n_steps_each=n.n_steps_each,
        sigma_min=n.sigma_min,
        n_levels=levels,
        sigma_max=n.sigma_max,
        step=n.step_size,
    )
    noise = schedule.as_dict()
    if n.n_levels is not None:
        levels_source = "config"
    elif dim >= 5:
        levels_source = "overlap rule C(γ) = 0.5"
    else:
        levels_source = f"default 10 (the overlap rule fixes no γ in D = {dim} ≤ 4)"
    noise["source"] = {
        "sigma_max": "config" if n.sigma_max is not None else "max pairwise distance",
        "n_levels": levels_source,
        "step_size": "config" if n.step_size is not None else "Song & Ermon 2020 technique 4",
    }
    return noise


# -- score SDE --------------------------------------------------------------------------------
def resolve_sde(cfg: RunConfig, data: torch.Tensor) -> dict[str, Any]:
    """Every parameter of the run's SDE and where it came from: the config, the class default,
    or (VE's sigma_max) the data's largest pairwise distance (Song & Ermon 2020, technique 1).

    Also `prior_fit`: the largest a(T)·‖x‖ over the data in units of the prior std.  The
    samplers start from N(0, prior_std²I) and the data's mean is not removed, so this should be
    ≲ 1; `train` warns when it is not (docs/cli.md, SDE runs).
    """
    from scorelab.heuristics import sigma_max_from_data
    from scorelab.sde import SDES

    sc = cfg.sde
    assert sc is not None
    params = sde_parameters(sc.name, sc.params)
    kind = SDES.get(sc.name).__name__
    source = {k: "config" if k in sc.params else f"{kind} default" for k in params}
    if params.get("sigma_max", 0.0) is None:
        sigma_max = sigma_max_from_data(data)
        params["sigma_max"] = sigma_max
        source["sigma_max"] = "max pairwise distance of the data (Song & Ermon 2020, technique 1)"
        if not sigma_max > params["sigma_min"]:
            raise ScorelabError(
                f"[sde] sigma_max from the data (max pairwise distance {sigma_max:.4g}) must "
                f"exceed sigma_min ({params['sigma_min']:.4g}); set sigma_max in [sde]"
            )
    sde = SDES.build(sc.name, **params)
    a_t, _ = sde.marginal(torch.tensor([sde.T], dtype=torch.float64))
    max_norm = float(data.double().flatten(1).norm(dim=1).max())
    return {
        "name": sc.name,
        "params": params,
        "source": source,
        "prior_std": float(sde.prior_std),
        "prior_fit": float(a_t[0]) * max_norm / float(sde.prior_std),
    }


def build_sde(resolved: dict[str, Any]):
    """The SDE object of a run from its resolved config.json entry."""
    from scorelab.sde import SDES

    return SDES.build(resolved["name"], **resolved["params"])


# -- builders ---------------------------------------------------------------------------------
def build_model(
    cfg: RunConfig,
    dim: int,
    sde: Any = None,
    *,
    sigmas: list[float] | None = None,
    image_shape: list[int] | tuple[int, ...] | None = None,
) -> torch.nn.Module:
    """The run's network; in an SDE run with scale_by_sigma, wrapped in MarginalStdScaled.

    The `ncsn` network gets the run's σ ladder (variant "ncsn": one norm row per level) and,
    for image data, its channels and image size from the images' shape (C, H, W).
    """
    from scorelab.models import MODELS, MarginalStdScaled

    params = dict(cfg.model.params)
    scale = cfg.sde is not None and bool(params.pop("scale_by_sigma", False))
    if cfg.model.name == "ncsn":
        if params.get("variant", "ncsn") == "ncsn":
            if sigmas is None:
                raise ScorelabError("[model] ncsn variant 'ncsn' needs the run's σ ladder")
            params["sigmas"] = list(sigmas)
        if image_shape is not None:
            c, h, w = (int(v) for v in image_shape)
            if h != w:
                raise ScorelabError(f"[model] ncsn takes square images, these are {c}×{h}×{w}")
            for key, value in (("channels", c), ("image_size", h)):
                if params.get(key, value) != value:
                    raise ScorelabError(
                        f"[model] {key} = {params[key]}, but the images are {c}×{h}×{w} "
                        f"(leave {key} out: image runs take it from the data)"
                    )
                params[key] = value
    model = MODELS.build(cfg.model.name, dim=dim, **params)
    return MarginalStdScaled(model, sde) if scale else model


def build_objective(cfg: RunConfig, sigmas: list[float] | None, sde: Any = None):
    from scorelab.objectives import OBJECTIVES

    params = dict(cfg.objective.params)
    if cfg.objective.name == "ncsn":
        params["sigmas"] = sigmas
    if cfg.objective.name == "sde_dsm":
        params["sde"] = sde
    return OBJECTIVES.build(cfg.objective.name, **params)


def _interactive() -> bool:
    return sys.stderr.isatty()


# -- train ------------------------------------------------------------------------------------
def train(
    cfg: RunConfig,
    config_text: str | None = None,
    *,
    device: str = "cpu",
    dist: Dist | None = None,
    precision: str = "fp32",
    compile_model: bool = False,
) -> Path:
    """Train into a fresh run folder: config.toml, config.json (resolved), data.npy (points) or
    images.npz (images), metrics.jsonl, checkpoints/.  The model trains on `device`.

    Under torchrun (`dist` from `scorelab.distributed.from_env`) every rank builds the same data
    and model; rank 0 alone creates the folder (its name broadcast to the others) and writes."""
    dist = Dist() if dist is None else dist
    dev = torch.device(device)
    batch_transform = None
    image_meta: dict[str, Any] | None = None
    if cfg.data.images is not None:
        train_images, test_images = load_image_data(cfg.data)
        data = train_images.images.flatten(1)
        image_meta = _image_meta(cfg, train_images, test_images)
        batch_transform = _dequantizer(train_images.levels)
    else:
        data, _ = load_training_data(cfg.data, cfg.seed)
    if cfg.sde is None:
        noise: dict[str, Any] = {"noise": resolve_noise(cfg, data)}
        sde = None
    else:
        noise = {"sde": resolve_sde(cfg, data)}
        sde = build_sde(noise["sde"])
    torch.manual_seed(cfg.seed)  # the model's initial weights (drawn on the CPU, then moved)
    sigmas = noise.get("noise", {}).get("sigmas")
    shape = image_meta["shape"] if image_meta is not None else None
    model = build_model(cfg, int(data.shape[1]), sde, sigmas=sigmas, image_shape=shape).to(dev)
    # builds (and validates) before the folder
    objective = build_objective(cfg, sigmas, sde)
    run_dir = dist.broadcast(fresh_run_dir(cfg.out, cfg.name) if dist.is_main else None)
    n_params = sum(p.numel() for p in model.parameters())
    if dist.is_main:
        if config_text is not None:
            (run_dir / "config.toml").write_text(config_text)
        if image_meta is not None:
            save_run_images(run_dir, train_images, test_images)
        else:
            np.save(run_dir / "data.npy", data.numpy())
        write_json(
            run_dir / "config.json",
            {
                "config": cfg.as_dict(),
                **noise,
                **({"images": image_meta} if image_meta is not None else {}),
                "dim": int(data.shape[1]),
                "n_data": int(data.shape[0]),
                "n_parameters": int(n_params),
                "device": str(dev),
                "world_size": dist.world_size,
                "scorelab_version": __version__,
                "created": datetime.now().isoformat(timespec="seconds"),
            },
        )
        _print_plan(cfg, data, image_meta, noise, model, n_params, dev, dist)
    how = {"dist": dist, "precision": precision, "compile_model": compile_model}
    _fit_run(cfg, model, objective, data, run_dir, batch_transform, **how)
    return run_dir


def resume(
    run_dir: str | Path,
    *,
    steps: int | None = None,
    device: str = "cpu",
    dist: Dist | None = None,
    precision: str = "fp32",
    compile_model: bool = False,
) -> Path:
    """Continue a run from its last checkpoint, to the config's train.steps (or `steps`), with
    its own stored data; any number of processes (`fit`'s streams need no saved state then)."""
    dist = Dist() if dist is None else dist
    run_dir = Path(run_dir)
    cfg, meta = read_run(run_dir)
    dev = torch.device(device)
    batch_transform = None
    if is_image_run(meta):
        train_images, _ = load_run_images(run_dir, meta)
        data = train_images.images.flatten(1)
        batch_transform = _dequantizer(train_images.levels)
    else:
        try:
            data = torch.as_tensor(np.load(run_dir / "data.npy", allow_pickle=False))
        except (OSError, ValueError, EOFError) as err:
            raise ScorelabError(f"{run_dir / 'data.npy'}: cannot read ({err})") from None
    sde = run_sde(meta)
    sigmas = meta.get("noise", {}).get("sigmas")
    shape = meta.get("images", {}).get("shape")
    # train's initial weights: they count when the run stopped before its first checkpoint
    torch.manual_seed(cfg.seed)
    model = build_model(cfg, meta["dim"], sde, sigmas=sigmas, image_shape=shape).to(dev)
    objective = build_objective(cfg, sigmas, sde)
    if steps is not None:
        cfg = copy.deepcopy(cfg)
        cfg.train.steps = steps
    how = {"dist": dist, "precision": precision, "compile_model": compile_model}
    _fit_run(cfg, model, objective, data, run_dir, batch_transform, resume=True, **how)
    return run_dir


def _dequantizer(levels: int | None):
    """Fresh uniform dequantisation per batch for discrete images (Theis et al. 2016)."""
    from scorelab.images import dequantize_scaled

    if levels is None:
        return None
    return lambda b, g: dequantize_scaled(b, levels, g)


def _fit_run(cfg, model, objective, data, run_dir, batch_transform, *, resume=False, **how) -> None:
    """fit() with the run's [train] settings; `how`: dist, precision, compile_model."""
    from scorelab.train import fit

    if how["compile_model"]:
        model.compile()  # in place: the state_dict keys, and so the checkpoints, stay the same
    t = cfg.train
    fit(
        model,
        objective,
        data,
        steps=t.steps,
        batch_size=t.batch_size,
        lr=t.lr,
        ema_decay=t.ema_decay,
        grad_clip=t.grad_clip,
        skip_nonfinite=t.skip_nonfinite,
        seed=cfg.seed,
        run_dir=run_dir,
        checkpoint_every=t.checkpoint_every,
        resume=resume,
        log_every=t.log_every,
        progress=_interactive(),
        config=cfg.as_dict(),
        batch_transform=batch_transform,
        dist=how["dist"],
        precision=how["precision"],
    )


def _print_plan(cfg, data, image_meta, noise, model, n_params, dev, dist) -> None:
    """What train is about to do, on stderr (rank 0)."""
    if image_meta is not None:
        c, h, w = image_meta["shape"]
        what = f"{data.shape[0]} images {c}×{h}×{w} ({image_meta['source']}"
        what += f", {image_meta['levels']} levels)" if image_meta["levels"] else ", continuous)"
        held = image_meta["test_source"]
        what += f"; held out: {image_meta['n_test']} ({held})" if held else "; none held out"
    else:
        what = f"{data.shape[0]} points in {data.shape[1]}-d"
    procs = f"; {dist.world_size} processes ({dist.backend})" if dist.enabled else ""
    print(
        f"{cfg.model.name}: {n_params:,} parameters; {cfg.objective.name} on {what}; "
        f"device {dev}{procs}",
        file=sys.stderr,
    )
    net = model.net if hasattr(model, "net") else model  # MarginalStdScaled wraps the network
    if hasattr(net, "summary"):
        print(net.summary(), file=sys.stderr)
    if "sde" in noise:
        r = noise["sde"]
        values = ", ".join(f"{k}={v:.4g}" for k, v in r["params"].items())
        print(f"sde: {r['name']} ({values})", file=sys.stderr)
        if r["prior_fit"] > 1.0:
            print(
                f"warning: the data reaches {r['prior_fit']:.3g} prior stds from 0 at t = T, so "
                "the prior N(0, prior_std²I) the samplers start from misses it; centre and "
                "scale the data, or raise sigma_max (ve) / beta_max or T (vp, subvp, ou)",
                file=sys.stderr,
            )
    else:
        r = noise["noise"]
        print(
            f"noise: {r['n_levels']} levels σ {r['sigma_max']:.4g} → {r['sigma_min']:.4g}, "
            f"step size {r['step_size']:.3g} at {r['n_steps_each']} steps per level",
            file=sys.stderr,
        )


# -- image data in a run folder ---------------------------------------------------------------
def _image_meta(cfg: RunConfig, train, test) -> dict[str, Any]:
    """config.json's "images" entry: what sample / classifier / evaluate need to reshape and
    measure (shape, levels) and where the images came from."""
    d = cfg.data
    return {
        "shape": [int(v) for v in train.shape],
        "levels": train.levels,
        "source": train.source,
        "n_train": len(train),
        "labels": train.labels is not None,
        "test_source": None if test is None else test.source,
        "n_test": 0 if test is None else len(test),
        "split": d.image_split(),
        "test_fraction": d.test_fraction,
        "split_seed": d.split_seed,
        "file": IMAGES_FILE,
        # what the model sees: the model space samples live in
        "model_scale": (
            f"(v + u)/{train.levels}, v ∈ 0..{train.levels - 1}, u ~ U(0, 1) per training batch"
            if train.levels is not None
            else "the stored values in [0, 1] (continuous data, no dequantisation)"
        ),
    }


def _raw(data) -> np.ndarray:
    """Images as their raw values: uint8 v when the level count fits, else float32 in [0, 1]."""
    from scorelab.images import quantize

    if data.levels is not None and data.levels <= 256:
        return quantize(data.images, data.levels).to(torch.uint8).numpy()
    return data.images.numpy()


def save_run_images(run_dir: Path, train, test) -> Path:
    """images.npz: arrays train, test (raw values, (N, C, H, W)) and their labels if any."""
    arrays = {"train": _raw(train)}
    if train.labels is not None:
        arrays["train_labels"] = train.labels.numpy()
    if test is not None:
        arrays["test"] = _raw(test)
        if test.labels is not None:
            arrays["test_labels"] = test.labels.numpy()
    tmp = run_dir / f".{IMAGES_FILE}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    path = run_dir / IMAGES_FILE
    os.replace(tmp, path)
    return path


def load_run_images(run_dir: str | Path, meta: dict) -> tuple[Any, Any]:
    """(train, held-out or None) ImageData of an image run, from its images.npz."""
    from scorelab.images import ImageData, check_images

    run_dir = Path(run_dir)
    info = meta["images"]
    path = run_dir / info.get("file", IMAGES_FILE)
    levels = info["levels"]
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.keys()}
    except FileNotFoundError:
        raise ScorelabError(
            f"{path} does not exist (an image run keeps its images there)"
        ) from None
    except (OSError, ValueError, EOFError) as err:
        raise ScorelabError(f"{path}: cannot read ({err})") from None
    out = []
    for part, source in (("train", info["source"]), ("test", info.get("test_source"))):
        if part not in arrays:
            out.append(None)
            continue
        x, _ = check_images(arrays[part], f"{path}[{part}]", levels=levels)
        if list(x.shape[1:]) != list(info["shape"]):
            raise ScorelabError(
                f"{path}[{part}]: images of shape {x.shape[1:]}, but config.json says "
                f"{tuple(info['shape'])}"
            )
        y = arrays.get(f"{part}_labels")
        labels = None if y is None else torch.as_tensor(y.astype(np.int64))
        out.append(ImageData(torch.from_numpy(np.ascontiguousarray(x)), labels, levels, source))
    if out[0] is None:
        raise ScorelabError(f"{path} holds no training images (array 'train')")
    return out[0], out[1]


def is_image_run(meta: dict) -> bool:
    return "images" in meta


# -- loading a run ----------------------------------------------------------------------------
def read_run(run_dir: str | Path) -> tuple[RunConfig, dict]:
    """(config, resolved metadata) of a run folder, checked for consistency."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ScorelabError(f"run folder {run_dir} does not exist")
    meta = read_json(run_dir / "config.json")
    if not isinstance(meta, dict) or "config" not in meta or "dim" not in meta:
        raise ScorelabError(f"{run_dir / 'config.json'} is not a scorelab run config")
    cfg = parse_config(meta["config"])
    if is_image_run(meta):
        shape = meta["images"].get("shape")
        if not (isinstance(shape, list) and len(shape) == 3 and math.prod(shape) == meta["dim"]):
            raise ScorelabError(
                f"{run_dir / 'config.json'}: image shape {shape} does not match dim {meta['dim']}"
            )
    return cfg, meta


def load_run(
    run_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[RunConfig, dict, torch.nn.Module]:
    """(config, resolved metadata, model with its EMA weights if it has them) on `device`.

    Checkpoints hold CPU tensors: the weights are read on the CPU and the model moved after.
    """
    cfg, meta = read_run(run_dir)
    model = build_model(
        cfg,
        meta["dim"],
        run_sde(meta),
        sigmas=meta.get("noise", {}).get("sigmas"),
        image_shape=meta.get("images", {}).get("shape"),
    )
    load_checkpoint(run_dir, model, ema=cfg.train.ema_decay is not None)
    model.to(torch.device(device)).eval()
    return cfg, meta, model


def run_sde(meta: dict):
    """The SDE of a run from its config.json, or None for a noise-ladder run."""
    return build_sde(meta["sde"]) if "sde" in meta else None


def _target(cfg: RunConfig):
    from scorelab.distributions import TARGETS

    return None if cfg.data.target is None else TARGETS.build(cfg.data.target, **cfg.data.params)


# -- sample -----------------------------------------------------------------------------------
_DEFAULTS = {
    "langevin": {"n_steps": 1000},
    "annealed_langevin": {"denoise": True},
    "mala": {"n_steps": 1000},
    "hmc": {"n_steps": 200, "n_leapfrog": 5},
    # SDE samplers: uniform grids of 500 steps (NFE 500; 1000 for PC with one corrector) and a
    # final Tweedie step; the PF-ODE by Heun at 100 steps (NFE 200)
    "reverse_sde": {"n_steps": 500, "denoise": True},
    "ancestral": {"n_steps": 500, "denoise": True},
    "predictor_corrector": {"n_steps": 500, "denoise": True},
    "probability_flow": {"method": "heun", "n_steps": 100, "denoise": True},
}


def _sampler_settings(sampler: str, given: dict[str, Any]) -> dict[str, Any]:
    """The run's defaults for `sampler` under the settings given (config or --set)."""
    params = {**_DEFAULTS[sampler], **given}
    if sampler == "probability_flow" and params["method"] in ("dopri5", "adaptive"):
        del params["n_steps"]  # adaptive solvers pick their own steps (config refuses n_steps)
    return params


def sample(
    run_dir: str | Path,
    *,
    sampler: str | None = None,
    n: int | None = None,
    overrides: list[str] | None = None,
    seed: int | None = None,
    device: str | torch.device = "cpu",
    dist: Dist | None = None,
    compile_model: bool = False,
) -> Path | None:
    """Draw samples from a trained run on `device`; writes samples/NAME.npz, plus a figure in
    2-D and a PNG grid figures/samples-NAME.png for image runs.

    Under torchrun the n samples are split into contiguous shares, rank r drawing its share
    from `stream_seed(seed, r)`; rank 0 gathers them in rank order, writes, and returns the
    path (None on the other ranks).  Same seed and number of processes: same file."""
    dist = Dist() if dist is None else dist
    run_dir = Path(run_dir)
    dev = torch.device(device)
    cfg, meta, model = load_run(run_dir, dev)
    if compile_model:
        model.compile()
    s = cfg.sample
    raw = {"sampler": s.sampler, "n": s.n, "init": s.init, **s.params}
    if sampler is not None and sampler != raw["sampler"]:
        raw = {"sampler": sampler, "n": raw["n"], "init": raw["init"]}  # params were for another
    if n is not None:
        raw["n"] = n
    for item in overrides or []:
        apply_override(raw, item.removeprefix("sample."))
    sc = parse_sample(raw, sde=cfg.sde.name if cfg.sde is not None else None)
    params = _sampler_settings(sc.sampler, sc.params)
    dim = meta["dim"]
    seed = cfg.seed + 1 if seed is None else seed
    image = meta.get("images")
    data = _model_space_data(run_dir, meta, seed)
    g = make_generator(seed, dev)
    n_total = sc.n
    if dist.enabled:
        if n_total < dist.world_size:
            raise ScorelabError(
                f"-n {n_total} is fewer than the {dist.world_size} processes: each draws a share"
            )
        sc = dataclasses.replace(sc, n=shares(n_total, dist.world_size)[dist.rank])
        g = make_generator(stream_seed(seed, dist.rank), dev)
    if sc.sampler in SDE_SAMPLERS:
        res = _sample_sde(model, run_sde(meta), sc.sampler, sc.n, dim, params, g)
    else:
        box = (0.0, 1.0) if image is not None else None  # images: U(0, 1)^D, as NCSN
        res = _sample_langevin(model, meta["noise"], sc, params, data.to(dev), g, box=box)
    samples = gather_rows(res.samples, dist)
    if samples is None:  # not rank 0: its share is in rank 0's file
        return None
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    extra = {"image_shape": image["shape"], "levels": image["levels"]} if image else {}
    if dist.enabled:
        extra["world_size"] = dist.world_size
    path = save_samples(
        run_dir / "samples" / f"{sc.sampler}-{stamp}.npz",
        samples,
        sampler=sc.sampler,
        init=sc.init,
        n=n_total,
        nfe=res.nfe,
        params=params,
        step_size=res.info.get("step_size"),
        info=res.info,
        device=str(dev),
        **extra,
    )
    if image is not None:
        save_sample_grid(samples, image, grid_path(path))
    elif dim == 2:
        _plot_samples(
            run_dir,
            cfg,
            data,
            samples,
            f"{sc.sampler} ({sc.init} start)",
            figures_dir(run_dir) / f"samples-{path.stem}.png",
        )
    return path


def grid_path(samples_path: Path) -> Path:
    """The PNG grid beside a samples file of an image run: RUN/figures/samples-NAME.png."""
    return samples_path.parent.parent / "figures" / f"samples-{samples_path.stem}.png"


GRID_MAX = 100  # samples shown in a grid (10 per row)


def to_stored_images(x: torch.Tensor, image: dict) -> torch.Tensor:
    """Model-space samples (N, C·H·W) → images (N, C, H, W) on the stored scale in [0, 1]:
    ⌊x·L⌋ clamped to 0..L−1, over L − 1 (`images.discretize`) when the run has L levels;
    clamped to [0, 1] for continuous data.  The classifier, the FD and the grids see these."""
    from scorelab.images import discretize

    x = x.detach().to("cpu", torch.float32)
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).reshape(x.shape[0], -1).any(dim=1).sum())
        raise ScorelabError(f"{bad} of {x.shape[0]} samples hold NaN or inf")
    levels = image["levels"]
    out = discretize(x, levels).float() / (levels - 1) if levels else x.clamp(0.0, 1.0)
    return out.reshape(-1, *image["shape"])


def save_sample_grid(samples: torch.Tensor, image: dict, path: Path) -> Path:
    """The first GRID_MAX samples as a pixel-exact PNG grid, 10 per row (never overwrites)."""
    from scorelab.images import save_png_grid

    imgs = to_stored_images(samples[:GRID_MAX], image)
    scale = 4 if max(image["shape"][1:]) <= 16 else 2
    return save_png_grid(imgs, path, nrow=10, scale=scale)


def _model_space_data(run_dir: Path, meta: dict, seed: int) -> torch.Tensor:
    """The training data as the model saw it, flat (N, D): data.npy, or for an image run its
    training images dequantised once (seeded) — the law the model learned."""
    if not is_image_run(meta):
        return torch.as_tensor(np.load(run_dir / "data.npy"))
    from scorelab.images import dequantize_scaled

    train, _ = load_run_images(run_dir, meta)
    return dequantize_scaled(train.images, train.levels, make_generator(seed)).flatten(1)


def _sample_sde(model, sde, sampler: str, n: int, dim: int, params: dict, g):
    """An SDE sampler from the SDE's prior N(0, prior_std²I) with the model's score s(x, t)."""
    from scorelab.models import model_score_fn
    from scorelab.samplers import SAMPLERS

    # sde.prior_sample on the generator's device (the same bits on the CPU)
    x0 = sde.prior_std * torch.randn((n, dim), generator=g, device=g.device)
    kwargs = dict(params)
    if sampler != "probability_flow":  # deterministic: takes no generator
        kwargs["generator"] = g
    fn = SAMPLERS.get(sampler)
    return fn(model_score_fn(model), x0, sde=sde, progress=_interactive(), **kwargs)


def _sample_langevin(model, noise: dict, sc, params: dict, data: torch.Tensor, g, *, box=None):
    """A Langevin-family sampler on a noise-ladder (or unconditional) run; `box` = (lo, hi) of
    init = "uniform" (default: the data's min and max)."""
    from scorelab.models import model_log_prob_fn, model_score_fn
    from scorelab.samplers import (
        annealed_langevin,
        from_data,
        gaussian_prior,
        hmc,
        langevin,
        mala,
        uniform_box,
    )

    dim = int(data.shape[1])
    dev = g.device
    if sc.init == "data":
        x0 = from_data(data, sc.n, generator=g)
    elif sc.init == "uniform":
        lo, hi = box if box is not None else (float(data.min()), float(data.max()))
        x0 = uniform_box(sc.n, dim, lo, hi, generator=g, device=dev)
    elif sc.sampler == "annealed_langevin":
        x0 = gaussian_prior(sc.n, dim, noise["sigma_max"], generator=g, device=dev)
    else:
        x0 = data.mean(0) + data.std(0) * gaussian_prior(sc.n, dim, generator=g, device=dev)

    score_fn = model_score_fn(model)
    conditional = getattr(model, "conditioning", "none") == "sigma"
    if conditional and sc.sampler != "annealed_langevin":
        # a single-level sampler on a noise-conditional model runs at the smallest σ
        sig_l = noise["sigma_min"]
        base = score_fn
        score_fn = lambda x, _s: base(x, torch.full((x.shape[0],), sig_l, device=x.device))  # noqa: E731
    step = params.pop("step_size", None)
    if sc.sampler == "annealed_langevin":
        res = annealed_langevin(
            score_fn,
            x0,
            sigmas=noise["sigmas"],
            step_size=step or noise["step_size"],
            n_steps_each=params.get("n_steps_each", noise["n_steps_each"]),
            denoise=params["denoise"],
            generator=g,
            progress=_interactive(),
        )
    elif sc.sampler == "langevin":
        step = step or (noise["sigma_min"] ** 2 if conditional else 0.01)
        kw = {"time": params["time"]} if "time" in params else {"n_steps": params["n_steps"]}
        res = langevin(score_fn, x0, step_size=step, generator=g, progress=_interactive(), **kw)
    elif sc.sampler == "mala":
        res = mala(
            score_fn,
            x0,
            log_prob_fn=model_log_prob_fn(model),
            step_size=step or 0.01,
            n_steps=params["n_steps"],
            generator=g,
            progress=_interactive(),
        )
    else:
        lp = model_log_prob_fn(model) if hasattr(model, "log_prob") and not conditional else None
        res = hmc(
            score_fn,
            x0,
            step_size=step or 0.05,
            n_leapfrog=params["n_leapfrog"],
            n_steps=params["n_steps"],
            log_prob_fn=lp,
            generator=g,
            progress=_interactive(),
        )
    return res


def _plot_samples(run_dir, cfg, data, samples, title, path) -> None:
    from scorelab.plots import samples_over_density, save

    target = _target(cfg)
    if target is not None:
        log_prob = target.log_prob
    else:  # no density: shade a Gaussian KDE of the training data instead
        from scipy.stats import gaussian_kde

        kde = gaussian_kde(data.numpy().T)
        log_prob = lambda x: torch.as_tensor(kde.logpdf(x.numpy().T))  # noqa: E731
    both = torch.cat([data, torch.as_tensor(samples, dtype=data.dtype)])
    lo, hi = both.quantile(0.005, dim=0), both.quantile(0.995, dim=0)
    pad = 0.1 * (hi - lo)
    fig = samples_over_density(
        [("training data", data), (title, torch.as_tensor(samples))],
        log_prob,
        xlim=(float(lo[0] - pad[0]), float(hi[0] + pad[0])),
        ylim=(float(lo[1] - pad[1]), float(hi[1] + pad[1])),
    )
    save(fig, path)


# -- evaluate ---------------------------------------------------------------------------------
def evaluate(
    run_dir: str | Path, *, n_reference: int = 2000, device: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Every samples file against the exact target (or the training data), and the model's
    Fisher divergence where the exact score is known; writes evaluation.json.  Image runs are
    measured by the digits classifier instead (`evaluate_images`)."""
    from scorelab.distributions.base import FiniteMixture
    from scorelab.metrics import (
        energy_distance,
        fisher_divergence,
        mixture_weights,
        mmd,
        sliced_wasserstein,
    )

    run_dir = Path(run_dir)
    dev = torch.device(device)
    _, meta = read_run(run_dir)
    if is_image_run(meta):
        return evaluate_images(run_dir, device=dev)
    cfg, meta, model = load_run(run_dir, dev)
    data = torch.as_tensor(np.load(run_dir / "data.npy"))
    target = _target(cfg)
    g = make_generator(cfg.seed + 2)
    if target is not None:
        reference, ref_name = target.sample(n_reference, generator=g).float(), "exact samples"
    else:
        reference, ref_name = data[torch.randperm(len(data), generator=g)[:n_reference]], "data"
    out: dict[str, Any] = {"reference": ref_name, "samples": {}}
    files = sorted((run_dir / "samples").glob("*.npz")) if (run_dir / "samples").is_dir() else []
    if not files:
        raise ScorelabError(f"{run_dir} has no samples yet: run `scorelab sample {run_dir}` first")
    for f in files:
        arr, smeta = load_samples(f)
        x = check_data(arr, f.name)
        x = x[:n_reference]
        row: dict[str, Any] = {
            "sampler": smeta.get("sampler"),
            "init": smeta.get("init"),
            "nfe": smeta.get("nfe"),
            "mmd": mmd(x, reference),
            "sliced_w2": sliced_wasserstein(x, reference, generator=make_generator(0)),
            "energy_distance": energy_distance(x, reference),
            # memorisation: how close outputs sit to their nearest training point
            "nn_distance_to_data": float(torch.cdist(x, data).min(1).values.mean()),
        }
        if isinstance(target, FiniteMixture):
            row["weights"] = mixture_weights(x, target).as_dict()
        out["samples"][f.name] = row
    out["nn_distance_reference"] = float(torch.cdist(reference, data).min(1).values.mean())
    sde = run_sde(meta)
    if sde is not None:
        if target is not None:
            out["fisher_divergence"] = _sde_fisher(model, sde, target, n_reference, g, dev)
        out["log_likelihood"] = _sde_log_likelihood(model, sde, target, reference, ref_name, dev)
    elif target is not None:
        sf = _score_on(model, dev)
        cond = getattr(model, "conditioning", "none") == "sigma"
        if cond:
            levels = [meta["noise"]["sigma_max"], meta["noise"]["sigma_min"]]
            mid = math.sqrt(levels[0] * levels[1])
            levels = [levels[0], mid, levels[1]]
            try:
                values = fisher_divergence(sf, target, n=n_reference, sigma=levels, generator=g)
                out["fisher_divergence"] = dict(
                    zip([f"{s:.4g}" for s in levels], values, strict=True)
                )
            except ScorelabError as err:
                out["fisher_divergence"] = f"not available: {err}"
        else:
            try:
                out["fisher_divergence"] = {
                    "clean": fisher_divergence(sf, target, n=n_reference, generator=g)
                }
            except ScorelabError as err:
                out["fisher_divergence"] = f"not available: {err}"
    write_json(run_dir / "evaluation.json", out)
    return out


def _sde_times(sde) -> list[float]:
    """T, T/2 and T/10 (kept ≥ eps): the prior end, the middle and near the data."""
    return [max(sde.T * f, sde.eps) for f in (1.0, 0.5, 0.1)]


def _sde_fisher(model, sde, target, n: int, g, device=None) -> dict[str, float] | str:
    """E_{x∼p_t} ‖s_θ(x, t) − ∇log p_t(x)‖² at a few t, against the exact score of the target
    pushed through the SDE (`scorelab.sde.exact_score_fn`); keys "t=…, s(t)=…"."""
    from scorelab.sde import exact_score_fn

    dev = device or torch.device("cpu")
    learned, exact = _score_on(model, dev), exact_score_fn(sde, target)
    out: dict[str, float] = {}
    try:
        for t in _sde_times(sde):
            x0 = target.sample(n, generator=g).float()
            tt = torch.full((n,), t)
            xt, _ = sde.perturb(x0, tt, g)
            diff = learned(xt, tt) - exact(xt, tt).to(xt.dtype)
            std = float(sde.marginal(tt[:1])[1][0])
            out[f"t={t:.3g}, s(t)={std:.3g}"] = float((diff**2).flatten(1).sum(1).mean())
    except ScorelabError as err:
        return f"not available: {err}"
    return out


_LL_POINTS = 200  # the PF-ODE log-likelihood integrates a (2N)-dim ODE with D backward passes


def _sde_log_likelihood(
    model, sde, target, reference: torch.Tensor, ref_name: str, device=None
) -> dict:
    """The model's mean log-density (nats) of the eps-marginal by the probability-flow ODE
    (`samplers.log_likelihood`, exact trace, RK45) on the first points of the reference, beside
    the target's exact value on the same points when the target has a closed-form noised law."""
    from scorelab.samplers import log_likelihood

    x = reference[:_LL_POINTS].double()
    # differentiable in x (model_score_fn runs under no_grad), in float64 like the ODE state
    net = copy.deepcopy(model).double().requires_grad_(False)
    dev = device or torch.device("cpu")
    log_p, info = log_likelihood(
        lambda y, t: net(y.to(dev), t.to(dev)).to(y.device), x, sde=sde, rtol=1e-4, atol=1e-4
    )
    out: dict[str, Any] = {
        "points": f"{x.shape[0]} {ref_name}",
        "model": float(log_p.mean()),
        "nfe": int(info["nfe"]),
        "eps": float(info["eps"]),
    }
    if target is not None:
        a, s = sde.marginal(torch.tensor([sde.eps], dtype=torch.float64))
        try:
            law = target.noised(float(s[0]), scale=float(a[0]))
            out["exact"] = float(law.log_prob(x.to(torch.get_default_dtype())).mean())
        except ScorelabError:
            pass  # no closed-form noised law: the model's value alone
    return out


# -- image runs: the digits classifier and image quality --------------------------------------
def run_classifier(
    run_dir: str | Path | None = None,
    *,
    out: str | Path = "runs",
    steps: int | None = None,
    seed: int | None = None,
) -> tuple[Any, dict[str, Any], Path, bool]:
    """The digits classifier of an image run (or of the default digits split), trained once and
    cached: (classifier, its record, its folder, whether the cache was used).

    Trained on the run's training images and labels, measured on its held-out images
    (`classifier.cached_classifier`); stored in RUN/classifier/ (without a run:
    OUT/classifier-digits/).  steps / seed default to those of the stored classifier, else
    600 / 0.  A held-out accuracy below MIN_CLASSIFIER_ACCURACY is a ScorelabError.
    """
    from scorelab.classifier import CLASSIFIER_JSON, DEFAULT_STEPS, cached_classifier
    from scorelab.images import load_digits

    if run_dir is None:
        train, test = load_digits("train"), load_digits("test")
        folder = Path(out) / "classifier-digits"
    else:
        run_dir = Path(run_dir)
        _, meta = read_run(run_dir)
        if not is_image_run(meta):
            raise ScorelabError(
                f"{run_dir} is not an image run: the classifier measures image samples "
                "([data] images = ...)"
            )
        train, test = load_run_images(run_dir, meta)
        folder = run_dir / CLASSIFIER_DIR
        if test is None:
            raise ScorelabError(
                f"{run_dir} holds no held-out images to measure a classifier on: train with "
                "[data] split = 'train' or a test_images file"
            )
    for part in (train, test):
        if part.labels is None:
            raise ScorelabError(
                f"{part.source}: no labels; the classifier needs labelled images (the digits, "
                "an IDX file with its labels file beside it, or a .npz with 'labels')"
            )
    record_path = folder / CLASSIFIER_JSON
    stored: dict[str, Any] = {}
    if record_path.is_file():
        try:
            stored = json.loads(record_path.read_text())
        except (OSError, ValueError):
            stored = {}  # unreadable: cached_classifier reports or retrains
    steps = steps if steps is not None else int(stored.get("steps", DEFAULT_STEPS))
    seed = seed if seed is not None else int(stored.get("seed", 0))
    before = record_path.stat().st_mtime_ns if record_path.is_file() else None
    model, record = cached_classifier(
        folder, train.images, train.labels, test.images, test.labels, seed=seed, steps=steps
    )
    cached = before is not None and record_path.stat().st_mtime_ns == before
    if record["accuracy"] < MIN_CLASSIFIER_ACCURACY:
        raise ScorelabError(
            f"the classifier in {folder} reaches held-out accuracy {record['accuracy']:.3f} < "
            f"{MIN_CLASSIFIER_ACCURACY} ({steps} steps, seed {seed}): its features cannot "
            "measure samples; train it longer (scorelab classifier RUN --steps 600 or more)"
        )
    return model, record, folder, cached


def evaluate_images(run_dir: str | Path, *, device: str | torch.device = "cpu") -> dict:
    """Every samples file of an image run measured by the run's digits classifier
    (`classifier.image_quality` against the held-out images); writes evaluation.json.

    Samples are mapped from model space to the stored scale first (`to_stored_images`:
    discretised when the run has a level count, clamped to [0, 1] otherwise), the scale the
    classifier, the training images and the held-out images share.
    """
    from scorelab.classifier import image_quality

    run_dir = Path(run_dir)
    _, meta = read_run(run_dir)
    image = meta["images"]
    files = sorted((run_dir / "samples").glob("*.npz")) if (run_dir / "samples").is_dir() else []
    if not files:
        raise ScorelabError(f"{run_dir} has no samples yet: run `scorelab sample {run_dir}` first")
    clf, record, folder, cached = run_classifier(run_dir)
    clf.to(torch.device(device))
    train, test = load_run_images(run_dir, meta)
    levels = image["levels"]
    out: dict[str, Any] = {
        "reference": f"{len(test)} held-out images ({test.source})",
        "samples_scale": (
            f"discretised: ⌊x·{levels}⌋ clamped to 0..{levels - 1}, / {levels - 1}"
            if levels
            else "clamped to [0, 1]"
        ),
        "classifier": {
            "folder": str(folder),
            "accuracy": record["accuracy"],
            "fd_floor": record["fd_floor"],
            "steps": record["steps"],
            "seed": record["seed"],
            "cached": cached,
        },
        "samples": {},
    }
    dim = meta["dim"]
    for f in files:
        arr, smeta = load_samples(f)
        x = check_data(arr, f.name)
        if x.shape[1] != dim:
            raise ScorelabError(
                f"{f.name}: samples have {x.shape[1]} values per row, but this run's images "
                f"are {'×'.join(map(str, image['shape']))} = {dim}"
            )
        if x.shape[0] < 2:
            raise ScorelabError(f"{f.name}: image quality needs at least 2 samples")
        q = image_quality(
            to_stored_images(x, image),
            classifier=clf,
            train_images=train.images,
            reference_images=test.images,
        )
        out["samples"][f.name] = {
            "sampler": smeta.get("sampler"),
            "init": smeta.get("init"),
            "nfe": smeta.get("nfe"),
            **q.as_dict(),
        }
    write_json(run_dir / "evaluation.json", out)
    return out
