"""Score-SDE runs from a config: the [sde] table, its checks, train → sample → evaluate."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from scorelab import ScorelabError
from scorelab.cli import main
from scorelab.config import load_config, parse_config, parse_sample
from scorelab.distributions import ncsn_toy
from scorelab.heuristics import sigma_max_from_data
from scorelab.metrics import mixture_weights, mmd
from scorelab.models import MarginalStdScaled
from scorelab.pipeline import load_run, sample
from scorelab.runs import load_samples
from scorelab.sde import VPSDE

TINY = """
name = "tiny-sde"
seed = 0
out = "{out}"

[data]
target = "ncsn_toy"
n = 400

[sde]
name = "ve"
sigma_min = 0.01

[model]
name = "score_mlp"
hidden = 16
depth = 2

[objective]
name = "sde_dsm"
weighting = "sigma2"

[train]
steps = 30
batch_size = 64
log_every = 10

[sample]
sampler = "predictor_corrector"
n = 60
n_steps = 8
snr = 0.05
denoise = true
"""


def _write(tmp_path, text=None, **replace):
    text = TINY.format(out=tmp_path / "runs") if text is None else text
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def _one_line_error(code, err, message):
    assert code == 2
    assert message in err, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


@pytest.fixture(scope="module")
def ve_run(tmp_path_factory):
    """A 30-step VE run (seconds): for wiring, counts and finiteness, not quality."""
    tmp = tmp_path_factory.mktemp("ve")
    assert main(["train", str(_write(tmp))]) == 0
    (run,) = list((tmp / "runs").iterdir())
    return run


# -- the config ---------------------------------------------------------------------------------
def test_an_sde_table_fills_the_defaults_of_an_sde_run(tmp_path):
    cfg = parse_config({"data": {"target": "ncsn_toy"}, "sde": {"name": "vp", "beta_max": 25}})
    assert cfg.sde.name == "vp" and cfg.sde.params == {"beta_max": 25.0}
    assert cfg.objective.name == "sde_dsm"
    assert cfg.model.params == {"conditioning": "time", "scale_by_sigma": True}
    assert cfg.sample.sampler == "predictor_corrector"
    raw = cfg.as_dict()
    assert "noise" not in raw and raw["sde"]["name"] == "vp"
    assert parse_config(raw) == cfg  # config.json re-parses to the same config
    ladder = parse_config({"data": {"target": "ncsn_toy"}, "model": {"conditioning": "sigma"}})
    assert "sde" not in ladder.as_dict() and ladder.sde is None  # ladder runs as before
    # the user's explicit choices stay
    own = load_config(_write(tmp_path, **{"depth = 2": "depth = 2\nscale_by_sigma = false"}))
    assert own.model.params["scale_by_sigma"] is False


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"sde": {"name": "vee"}}, "unknown sde 'vee'; known: ou, subvp, ve, vp"),
        ({"sde": {}}, "[sde] needs name = one of ou, subvp, ve, vp"),
        ({"sde": {"name": "ve", "beta_max": 2.0}}, "[sde] unknown key 'beta_max' for ve; allowed:"),
        ({"sde": {"name": "vp", "beta_max": -1}}, "[sde] beta_max must be a positive number"),
        ({"sde": {"name": "vp", "beta_min": 30}}, "[sde] beta_min (30.0) must be smaller than"),
        ({"sde": {"name": "ve", "eps": 0}}, "[sde] eps must be a positive number, got 0"),
        ({"sde": {"name": "ou", "T": "long"}}, "[sde] T must be a positive number, got 'long'"),
        ({"sde": {"name": "ou", "eps": 6.0}}, "[sde] eps (6.0) must be smaller than T (5.0)"),
        ({"sde": {"name": "ve", "sigma_min": 1, "sigma_max": 1}}, "sigma_min (1.0) must be small"),
        ({"sde": {"name": "ve"}, "noise": {"sigma_min": 0.1}}, "[noise] is the σ ladder"),
        ({"sde": {"name": "ve"}, "objective": {"name": "ncsn"}}, "trains with sde_dsm, got 'ncsn'"),
        ({"sde": {"name": "ve"}, "objective": {"weighting": "l2"}}, "weighting must be one of"),
        ({"sde": {"name": "ve"}, "objective": {"eps": 1.5}}, "eps must be a number in (0, T"),
        ({"sde": {"name": "ve"}, "model": {"conditioning": "sigma"}}, "must be 'time' in an SDE"),
        ({"objective": {"name": "sde_dsm"}}, "sde_dsm needs an SDE object: add an [sde] table"),
        ({"model": {"conditioning": "time"}}, "conditioning = 'time' is for score-SDE runs"),
        (
            {"model": {"conditioning": "sigma"}, "sample": {"sampler": "ancestral"}},
            "ancestral samples a score SDE: it needs a run",
        ),
        ({"sde": {"name": "ve"}, "sample": {"sampler": "langevin"}}, "langevin samples noise-"),
        ({"sde": {"name": "ve"}, "sample": {"init": "data"}}, "init = 'data' applies to the"),
        ({"sde": {"name": "ve"}, "sample": {"n_steps": 0}}, "n_steps must be an integer >= 1"),
        ({"sde": {"name": "ve"}, "sample": {"snr": -0.1}}, "snr must be a positive number"),
        ({"sde": {"name": "ve"}, "sample": {"n_corrector": -1}}, "n_corrector must be an integer"),
        ({"sde": {"name": "ve"}, "sample": {"predictor": "rk4"}}, "predictor for predictor_corr"),
        ({"sde": {"name": "ve"}, "sample": {"step_size": 0.1}}, "unknown key 'step_size' for pr"),
        (
            {"sde": {"name": "ve"}, "sample": {"sampler": "reverse_sde", "method": "heun"}},
            "method for reverse_sde must be one of euler_maruyama, exponential, got 'heun'",
        ),
        (
            {"sde": {"name": "ve"}, "sample": {"sampler": "probability_flow", "method": "rk"}},
            "method for probability_flow must be one of euler, heun, euler_sigma, heun_sigma, "
            "dopri5, adaptive",
        ),
        (
            {
                "sde": {"name": "ve"},
                "sample": {"sampler": "probability_flow", "method": "adaptive", "n_steps": 9},
            },
            "chooses its own steps: remove n_steps",
        ),
    ],
)
def test_bad_sde_configs_name_the_key(raw, message):
    with pytest.raises(ScorelabError) as err:
        parse_config({"data": {"target": "ncsn_toy"}, **raw})
    assert message in str(err.value)


@pytest.mark.parametrize(
    "edit, message",
    [
        ({'name = "ve"': 'name = "ddpm"'}, "unknown sde 'ddpm'; known:"),
        ({"sigma_min = 0.01": "sigma_min = -0.01"}, "[sde] sigma_min must be a positive number"),
        ({"sigma_min = 0.01": "sigma_min = 0.01\nbeta = 1"}, "[sde] unknown key 'beta' for ve"),
        ({'sampler = "predictor_corrector"': 'sampler = "hmc"'}, "hmc samples noise-conditional"),
        ({"n_steps = 8": "n_steps = 0"}, "[sample] n_steps must be an integer >= 1"),
        ({'weighting = "sigma2"': 'weighting = "flat"'}, "[objective] weighting must be one of"),
        ({'[sde]\nname = "ve"\nsigma_min = 0.01\n': ""}, "sde_dsm needs an SDE object"),
    ],
)
def test_bad_sde_configs_are_one_line_exit_2_before_any_work(tmp_path, capsys, edit, message):
    code = main(["train", str(_write(tmp_path, **edit))])
    _one_line_error(code, capsys.readouterr().err, message)
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_the_console_gives_one_line_and_status_2(tmp_path):
    """Once through a real process: exit status 2, one line, no traceback."""
    cfg = _write(tmp_path, **{"snr = 0.05": "snr = 0"})
    proc = subprocess.run(
        [sys.executable, "-m", "scorelab.cli", "train", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    _one_line_error(proc.returncode, proc.stderr, "[sample] snr must be a positive number")


def test_sample_settings_are_checked_against_the_run_kind():
    assert parse_sample({"sampler": "ancestral", "n_steps": 3}, sde="vp").params == {"n_steps": 3}
    with pytest.raises(ScorelabError, match="time-conditional"):
        parse_sample({"sampler": "annealed_langevin"}, sde="vp")
    with pytest.raises(ScorelabError, match="needs a run trained with an \\[sde\\] table"):
        parse_sample({"sampler": "probability_flow"})


# -- train → sample → evaluate ------------------------------------------------------------------
def test_train_records_the_sde_and_where_its_values_came_from(ve_run):
    meta = json.loads((ve_run / "config.json").read_text())
    assert "noise" not in meta
    sde = meta["sde"]
    data = np.load(ve_run / "data.npy")
    assert sde["params"]["sigma_max"] == pytest.approx(sigma_max_from_data(data))
    assert sde["source"]["sigma_max"].startswith("max pairwise distance")
    assert sde["source"]["sigma_min"] == "config" and sde["source"]["T"] == "VESDE default"
    assert sde["prior_std"] == sde["params"]["sigma_max"]
    # the largest |x| of the data over σ_max: the ncsn_toy modes sit at ±(5, 5)
    norm = np.linalg.norm(data, axis=1).max()
    assert sde["prior_fit"] == pytest.approx(norm / sde["params"]["sigma_max"])
    cfg, _, model = load_run(ve_run)
    assert cfg.sde.name == "ve" and isinstance(model, MarginalStdScaled)


def test_the_model_output_is_divided_by_the_marginal_std(ve_run):
    _, _, model = load_run(ve_run)
    x, t = torch.randn(5, 2), torch.tensor([1e-3, 0.1, 0.4, 0.7, 1.0])
    _, std = model.sde.marginal(t)
    torch.testing.assert_close(model(x, t), model.net(x, t) / std[:, None])


@pytest.mark.parametrize(
    "args, nfe",
    [
        ([], 8 * 2 + 1),  # the config's predictor_corrector: 8 steps, 1 corrector, denoise
        (["--sampler", "reverse_sde", "--set", "method=exponential", "--set", "n_steps=5"], 6),
        (["--sampler", "ancestral", "--set", "n_steps=7", "--set", "denoise=false"], 7),
        (["--sampler", "probability_flow", "--set", "n_steps=6"], 2 * 6 + 1),  # Heun, denoise
        (["--sampler", "probability_flow", "--set", "method=adaptive"], None),
        (["--sampler", "probability_flow", "--set", "method=dopri5"], None),
        (["--sampler", "probability_flow", "--set", "method=heun_sigma", "--set", "n_steps=4"], 9),
    ],
)
def test_every_sde_sampler_through_the_console(ve_run, args, nfe):
    folder = ve_run / "samples"
    before = set(folder.glob("*.npz")) if folder.is_dir() else set()
    assert main(["sample", str(ve_run), "-n", "40", *args]) == 0
    (path,) = set(folder.glob("*.npz")) - before
    x, meta = load_samples(path)
    assert x.shape == (40, 2) and np.isfinite(x).all()
    assert meta["init"] == "prior"
    assert meta["sampler"] == (args[1] if args else "predictor_corrector")
    if nfe is not None:
        assert meta["nfe"] == nfe
    else:  # the adaptive solvers count their own evaluations (+1: the Tweedie step)
        assert meta["info"]["method"] == args[-1].split("=")[1] and meta["nfe"] > 6


def test_wrong_samplers_on_an_sde_run_are_one_line(ve_run, capsys):
    code = main(["sample", str(ve_run), "--sampler", "annealed_langevin"])
    _one_line_error(code, capsys.readouterr().err, "time-conditional ([sde] ve)")
    code = main(["sample", str(ve_run), "--set", "snr=-1"])
    _one_line_error(code, capsys.readouterr().err, "[sample] snr must be a positive number")


def test_evaluate_an_sde_run(ve_run, capsys):
    if not (ve_run / "samples").is_dir():
        sample(ve_run, n=40)
    assert main(["evaluate", str(ve_run)]) == 0
    out = capsys.readouterr().out
    assert "log-likelihood (PF-ODE" in out
    ev = json.loads((ve_run / "evaluation.json").read_text())
    assert ev["reference"] == "exact samples"
    assert all(np.isfinite(r["mmd"]) and "weights" in r for r in ev["samples"].values())
    fisher = ev["fisher_divergence"]
    assert [k.split(",")[0] for k in fisher] == ["t=1", "t=0.5", "t=0.1"]
    assert all(np.isfinite(v) and v >= 0 for v in fisher.values())
    ll = ev["log_likelihood"]
    assert ll["points"] == "200 exact samples" and np.isfinite(ll["model"]) and ll["nfe"] > 0
    # the exact log-density at eps ≈ 0 of two far-apart unit Gaussians weighted 0.8 / 0.2
    # averages −log(2πe) − H(0.8, 0.2) = −3.338 nats; its s.e. over 200 points is ≈ 0.08
    assert -3.75 < ll["exact"] < -2.95


@pytest.mark.parametrize("name", ["vp", "subvp", "ou"])
def test_other_sdes_train_and_sample(tmp_path, name):
    cfg = _write(tmp_path, **{'name = "ve"\nsigma_min = 0.01': f'name = "{name}"'})
    assert main(["train", str(cfg), "--set", "train.steps=10"]) == 0
    (run,) = list((tmp_path / "runs").iterdir())
    meta = json.loads((run / "config.json").read_text())
    assert meta["sde"]["name"] == name
    assert all(v.endswith("SDE default") for v in meta["sde"]["source"].values())
    x, _ = load_samples(sample(run, sampler="reverse_sde", n=30, overrides=["n_steps=5"]))
    assert x.shape == (30, 2) and np.isfinite(x).all()


def test_a_vp_run_warns_when_the_prior_misses_the_data(tmp_path, capsys):
    far = tmp_path / "far.npy"
    np.save(far, np.random.default_rng(0).normal(size=(200, 2)) + 2000.0)
    cfg = _write(tmp_path, **{'target = "ncsn_toy"\nn = 400': f'path = "{far}"'})
    cfg.write_text(cfg.read_text().replace('name = "ve"\nsigma_min = 0.01', 'name = "vp"'))
    assert main(["train", str(cfg), "--set", "train.steps=2"]) == 0
    err = capsys.readouterr().err
    assert "warning: the data reaches" in err and "centre and scale the data" in err
    (run,) = list((tmp_path / "runs").iterdir())
    fit = json.loads((run / "config.json").read_text())["sde"]["prior_fit"]
    a_T = float(VPSDE().marginal(torch.tensor([1.0]))[0][0])
    assert fit == pytest.approx(a_T * np.linalg.norm(np.load(run / "data.npy"), axis=1).max())


def test_a_short_ve_run_samples_the_mixture(tmp_path):
    """Learning and sampling wired right: 1500 steps put the samples on the two modes."""
    cfg = _write(
        tmp_path,
        **{"n = 400": "n = 2000", "hidden = 16": "hidden = 64", "steps = 30": "steps = 1500"},
    )
    assert main(["train", str(cfg), "--set", "train.batch_size=128", "--set", "train.lr=3e-3"]) == 0
    (run,) = list((tmp_path / "runs").iterdir())
    target = ncsn_toy()
    ref = target.sample(500, generator=torch.Generator().manual_seed(7))
    means = torch.tensor([[5.0, 5.0], [-5.0, -5.0]])
    for sampler in ("predictor_corrector", "reverse_sde"):
        path = sample(run, sampler=sampler, n=500, overrides=["n_steps=100"])
        x = torch.as_tensor(load_samples(path)[0])
        near = float(((x[:, None] - means).norm(dim=-1).min(1).values < 3.5).float().mean())
        # exact samples: 0.998 within 3.5 of a mode; after 30 steps of training: ≈ 0.15
        assert near > 0.8, (sampler, near)
        assert mixture_weights(x, target).as_dict()["tv"] < 0.08, sampler  # s.e. 0.018
        assert mmd(x, ref) < 0.2, sampler  # 30 steps of training: ≈ 1.3
