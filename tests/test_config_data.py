"""Config parsing and user data loading, without the command line."""

import numpy as np
import pytest
import torch

from scorelab import ScorelabError
from scorelab.config import apply_override, load_config, parse_config, parse_sample, parse_value
from scorelab.data import load_array, load_training_data

BASE = {"data": {"target": "seed001_fig3"}, "model": {"conditioning": "sigma"}}


def test_defaults_types_and_round_trip():
    cfg = parse_config(dict(BASE, train={"lr": 1, "ema_decay": 0}))
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.ema_decay is None  # 0 switches the EMA off
    assert cfg.model.params == {"conditioning": "sigma"}
    assert parse_config(cfg.as_dict()) == cfg  # config.json re-parses to the same config


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"data": {}}, "give exactly one of target or path"),
        ({"data": {"target": "seed001_fig3", "path": "x.npy"}}, "exactly one of target or path"),
        ({"data": {"target": "nope"}}, "unknown target 'nope'; known:"),
        (
            {"data": {"target": "seed000_mixture", "params": {"k": 3}}},
            "[data.params] unknown key 'k'",
        ),
        ({"data": {"path": "x.txt"}}, "must be .npy, .npz or .csv"),
        ({"trian": {}}, "unknown top-level key 'trian'; allowed:"),
        ({"seed": 1.5}, "seed = 1.5 must be a int"),
        ({"objective": {"name": "esm"}}, "esm needs a known score"),
        ({"objective": {"name": "sde_dsm"}}, "sde_dsm needs an SDE object"),
        ({"objective": {"name": "dsm", "sigmas": [1.0]}}, "[objective] unknown key 'sigmas'"),
        ({"train": {"ema_decay": 1.0}}, "ema_decay must be in (0, 1)"),
        ({"noise": {"sigma_max": 0.001}}, "must exceed sigma_min"),
        ({"sample": {"sampler": "ddpm"}}, "unknown sampler 'ddpm'; allowed:"),
        ({"sample": {"sampler": "hmc", "time": 1.0}}, "unknown key 'time' for hmc"),
    ],
)
def test_invalid_configs_name_the_key(raw, message):
    full = {**BASE, **raw}
    with pytest.raises(ScorelabError) as err:
        parse_config(full)
    assert message in str(err.value)


def test_overrides_and_values(tmp_path):
    raw = {}
    apply_override(raw, "train.steps=500")
    apply_override(raw, "model.hidden=64")
    apply_override(raw, "name=quick")
    assert raw == {"train": {"steps": 500}, "model": {"hidden": 64}, "name": "quick"}
    assert parse_value("1e-3") == 1e-3 and parse_value("true") is True
    assert parse_value("data") == "data" and parse_value("[1, 2]") == [1, 2]
    with pytest.raises(ScorelabError, match="key=value"):
        apply_override(raw, "steps")
    cfg_file = tmp_path / "c.toml"
    cfg_file.write_text('[data]\ntarget = "seed001_fig3"\n[model]\nconditioning = "sigma"\n')
    assert load_config(cfg_file, ["train.steps=7"]).train.steps == 7
    cfg_file.write_text("[data\n")
    with pytest.raises(ScorelabError, match="is not valid TOML"):
        load_config(cfg_file)
    assert parse_sample({"sampler": "langevin", "time": 2}).params == {"time": 2}


def test_user_data_formats(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 3))
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", data=x, labels=np.zeros(30))
    np.savez(tmp_path / "c.npz", x)
    (tmp_path / "d.csv").write_text("u,v,w\n" + "\n".join(",".join(map(str, r)) for r in x))
    for name in ("a.npy", "b.npz", "c.npz", "d.csv"):
        got = load_array(tmp_path / name)
        assert got.dtype == torch.float32 and got.shape == (30, 3), name
        torch.testing.assert_close(got, torch.as_tensor(x, dtype=torch.float32))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: np.save(p / "f.npy", np.zeros(5)), "shape (N, d)"),
        (lambda p: np.save(p / "f.npy", np.zeros((0, 2))), "is empty"),
        (lambda p: np.save(p / "f.npy", np.array([["a", "b"]])), "must be numbers"),
        (lambda p: np.save(p / "f.npy", np.array([[1.0, np.inf]])), "1 of 1 rows hold NaN or inf"),
        (lambda p: np.save(p / "f.npy", np.array([{"a": 1}], dtype=object)), "cannot read"),
        (lambda p: np.savez(p / "f.npz", a=np.zeros((2, 2)), b=np.zeros((2, 2))), "name the data"),
        (lambda p: (p / "f.csv").write_text("1,2\n3,x\n"), "line 2: not a number"),
    ],
)
def test_bad_user_data(tmp_path, make, message):
    make(tmp_path)
    (path,) = list(tmp_path.iterdir())
    with pytest.raises(ScorelabError) as err:
        load_array(path)
    assert message in str(err.value)


def test_training_data_from_a_target_is_seeded():
    cfg = parse_config(
        dict(
            BASE,
            data={"target": "seed000_mixture", "n": 50, "params": {"n_components": 3, "dim": 4}},
        )
    )
    a, target = load_training_data(cfg.data, seed=3)
    b, _ = load_training_data(cfg.data, seed=3)
    assert a.shape == (50, 4) and target.n_components == 3 and torch.equal(a, b)
