"""What `scorelab train / sample / evaluate` do, as functions of a config and a run folder.

Two kinds of run share these functions: a noise ladder (σ-conditional model, `resolve_noise`,
the Langevin family) and a score SDE (time-conditional model, `resolve_sde`, sde_dsm and the
reverse-SDE family).  config.json holds "noise" for the first and "sde" for the second.
"""

from __future__ import annotations

import copy
import math
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
from scorelab.data import check_data, load_training_data
from scorelab.runs import (
    figures_dir,
    fresh_run_dir,
    load_samples,
    read_json,
    save_samples,
    write_json,
)


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
def build_model(cfg: RunConfig, dim: int, sde: Any = None) -> torch.nn.Module:
    """The run's network; in an SDE run with scale_by_sigma, wrapped in MarginalStdScaled."""
    from scorelab.models import MODELS, MarginalStdScaled

    params = dict(cfg.model.params)
    scale = cfg.sde is not None and bool(params.pop("scale_by_sigma", False))
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
def train(cfg: RunConfig, config_text: str | None = None) -> Path:
    """Train into a fresh run folder: config.toml, config.json (resolved), data.npy,
    metrics.jsonl, checkpoints/."""
    from scorelab.train import fit

    data, _ = load_training_data(cfg.data, cfg.seed)
    if cfg.sde is None:
        noise: dict[str, Any] = {"noise": resolve_noise(cfg, data)}
        sde = None
    else:
        noise = {"sde": resolve_sde(cfg, data)}
        sde = build_sde(noise["sde"])
    torch.manual_seed(cfg.seed)  # the model's initial weights
    model = build_model(cfg, int(data.shape[1]), sde)
    # builds (and validates) before the folder
    objective = build_objective(cfg, noise.get("noise", {}).get("sigmas"), sde)
    run_dir = fresh_run_dir(cfg.out, cfg.name)
    if config_text is not None:
        (run_dir / "config.toml").write_text(config_text)
    np.save(run_dir / "data.npy", data.numpy())
    n_params = sum(p.numel() for p in model.parameters())
    write_json(
        run_dir / "config.json",
        {
            "config": cfg.as_dict(),
            **noise,
            "dim": int(data.shape[1]),
            "n_data": int(data.shape[0]),
            "n_parameters": int(n_params),
            "scorelab_version": __version__,
            "created": datetime.now().isoformat(timespec="seconds"),
        },
    )
    t = cfg.train
    print(
        f"{cfg.model.name}: {n_params} parameters; {cfg.objective.name} on "
        f"{data.shape[0]} points in {data.shape[1]}-d",
        file=sys.stderr,
    )
    if sde is not None:
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
    fit(
        model,
        objective,
        data,
        steps=t.steps,
        batch_size=t.batch_size,
        lr=t.lr,
        ema_decay=t.ema_decay,
        grad_clip=t.grad_clip,
        seed=cfg.seed,
        run_dir=run_dir,
        checkpoint_every=t.checkpoint_every,
        log_every=t.log_every,
        progress=_interactive(),
        config=cfg.as_dict(),
    )
    return run_dir


# -- loading a run ----------------------------------------------------------------------------
def load_run(run_dir: str | Path) -> tuple[RunConfig, dict, torch.nn.Module]:
    """(config, resolved metadata, model with its EMA weights if it has them)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ScorelabError(f"run folder {run_dir} does not exist")
    meta = read_json(run_dir / "config.json")
    cfg = parse_config(meta["config"])
    model = build_model(cfg, meta["dim"], run_sde(meta))
    load_checkpoint(run_dir, model, ema=cfg.train.ema_decay is not None)
    model.eval()
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
    if sampler == "probability_flow" and params["method"] == "adaptive":
        del params["n_steps"]  # RK45 picks its own steps (config refuses n_steps with it)
    return params


def sample(
    run_dir: str | Path,
    *,
    sampler: str | None = None,
    n: int | None = None,
    overrides: list[str] | None = None,
    seed: int | None = None,
) -> Path:
    """Draw samples from a trained run; writes samples/NAME.npz (+ a figure in 2-D)."""
    run_dir = Path(run_dir)
    cfg, meta, model = load_run(run_dir)
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
    data = torch.as_tensor(np.load(run_dir / "data.npy"))
    g = make_generator(cfg.seed + 1 if seed is None else seed)
    if sc.sampler in SDE_SAMPLERS:
        res = _sample_sde(model, run_sde(meta), sc.sampler, sc.n, dim, params, g)
    else:
        res = _sample_langevin(model, meta["noise"], sc, params, data, g)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    path = save_samples(
        run_dir / "samples" / f"{sc.sampler}-{stamp}.npz",
        res.samples,
        sampler=sc.sampler,
        init=sc.init,
        n=sc.n,
        nfe=res.nfe,
        params=params,
        step_size=res.info.get("step_size"),
        info=res.info,
    )
    if dim == 2:
        _plot_samples(
            run_dir,
            cfg,
            data,
            res.samples,
            f"{sc.sampler} ({sc.init} start)",
            figures_dir(run_dir) / f"samples-{path.stem}.png",
        )
    return path


def _sample_sde(model, sde, sampler: str, n: int, dim: int, params: dict, g):
    """An SDE sampler from the SDE's prior N(0, prior_std²I) with the model's score s(x, t)."""
    from scorelab.models import model_score_fn
    from scorelab.samplers import SAMPLERS

    x0 = sde.prior_sample((n, dim), generator=g)
    kwargs = dict(params)
    if sampler != "probability_flow":  # deterministic: takes no generator
        kwargs["generator"] = g
    fn = SAMPLERS.get(sampler)
    return fn(model_score_fn(model), x0, sde=sde, progress=_interactive(), **kwargs)


def _sample_langevin(model, noise: dict, sc, params: dict, data: torch.Tensor, g):
    """A Langevin-family sampler on a noise-ladder (or unconditional) run."""
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
    if sc.init == "data":
        x0 = from_data(data, sc.n, generator=g)
    elif sc.init == "uniform":
        lo, hi = float(data.min()), float(data.max())
        x0 = uniform_box(sc.n, dim, lo, hi, generator=g)
    elif sc.sampler == "annealed_langevin":
        x0 = gaussian_prior(sc.n, dim, noise["sigma_max"], generator=g)
    else:
        x0 = data.mean(0) + data.std(0) * gaussian_prior(sc.n, dim, generator=g)

    score_fn = model_score_fn(model)
    conditional = getattr(model, "conditioning", "none") == "sigma"
    if conditional and sc.sampler != "annealed_langevin":
        # a single-level sampler on a noise-conditional model runs at the smallest σ
        sig_l = noise["sigma_min"]
        base = score_fn
        score_fn = lambda x, _s: base(x, torch.full((x.shape[0],), sig_l))  # noqa: E731
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
def evaluate(run_dir: str | Path, *, n_reference: int = 2000) -> dict[str, Any]:
    """Every samples file against the exact target (or the training data), and the model's
    Fisher divergence where the exact score is known; writes evaluation.json."""
    from scorelab.distributions.base import FiniteMixture
    from scorelab.metrics import (
        energy_distance,
        fisher_divergence,
        mixture_weights,
        mmd,
        sliced_wasserstein,
    )
    from scorelab.models import model_score_fn

    run_dir = Path(run_dir)
    cfg, meta, model = load_run(run_dir)
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
            out["fisher_divergence"] = _sde_fisher(model, sde, target, n_reference, g)
        out["log_likelihood"] = _sde_log_likelihood(model, sde, target, reference, ref_name)
    elif target is not None:
        sf = model_score_fn(model)
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


def _sde_fisher(model, sde, target, n: int, g) -> dict[str, float] | str:
    """E_{x∼p_t} ‖s_θ(x, t) − ∇log p_t(x)‖² at a few t, against the exact score of the target
    pushed through the SDE (`scorelab.sde.exact_score_fn`); keys "t=…, s(t)=…"."""
    from scorelab.models import model_score_fn
    from scorelab.sde import exact_score_fn

    learned, exact = model_score_fn(model), exact_score_fn(sde, target)
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


def _sde_log_likelihood(model, sde, target, reference: torch.Tensor, ref_name: str) -> dict:
    """The model's mean log-density (nats) of the eps-marginal by the probability-flow ODE
    (`samplers.log_likelihood`, exact trace, RK45) on the first points of the reference, beside
    the target's exact value on the same points when the target has a closed-form noised law."""
    from scorelab.samplers import log_likelihood

    x = reference[:_LL_POINTS].double()
    # differentiable in x (model_score_fn runs under no_grad), in float64 like the ODE state
    net = copy.deepcopy(model).double().requires_grad_(False)
    log_p, info = log_likelihood(lambda y, t: net(y, t), x, sde=sde, rtol=1e-4, atol=1e-4)
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
