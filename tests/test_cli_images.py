"""Image runs from the command line: [data] images, the ncsn model, sample grids, the digits
classifier, digits-FD in evaluate, IDX input, --device, and one-line errors."""

import gzip
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scorelab import ScorelabError
from scorelab.cli import main
from scorelab.config import load_config, parse_config
from scorelab.runs import load_samples, save_samples

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

TINY = """
name = "tiny-digits"
seed = 0
out = "{out}"

[data]
images = "digits"
split = "train"

[model]
name = "ncsn"
variant = "ncsn"
n_features = 4

[objective]
name = "ncsn"

[noise]
sigma_min = 0.01
n_steps_each = 2

[train]
steps = 40
batch_size = 32
checkpoint_every = 20
log_every = 10

[sample]
n = 30
"""


def _one_line_error(code, err, message):
    assert code == 2
    assert message in err, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def _cli(capsys, *args):
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


# -- config ------------------------------------------------------------------------------------
BASE = {"data": {"images": "digits"}, "model": {"name": "ncsn"}, "objective": {"name": "ncsn"}}


def test_image_config_defaults_and_round_trip():
    cfg = parse_config(BASE)
    assert cfg.data.image_split() == "train" and cfg.sample.init == "uniform"
    assert parse_config(cfg.as_dict()) == cfg
    with_test = parse_config({**BASE, "data": {"images": "a.npz", "test_images": "b.npz"}})
    assert with_test.data.image_split() == "all"  # a separate held-out file: train on everything
    sde = parse_config({**BASE, "sde": {"name": "ve"}, "objective": {"name": "sde_dsm"}})
    # an [sde] run makes the ncsn time-conditional and scales its output by 1/s(t)
    assert sde.model.params == {"variant": "time", "scale_by_sigma": True}
    assert sde.sample.init == "prior" and sde.sample.sampler == "predictor_corrector"
    for name in ("digits_ncsn", "digits_sde", "mnist_ncsn"):
        assert load_config(CONFIGS / f"{name}.toml").data.images is not None


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"data": {"images": "digits", "target": "ncsn_toy"}}, "give exactly one of target or"),
        ({"data": {"images": "digits", "split": "test"}}, "[data] split must be one of train, all"),
        ({"data": {"images": "digits", "test_fraction": 1.5}}, "test_fraction must lie in (0, 1)"),
        ({"data": {"target": "ncsn_toy", "test_images": "t.npz"}}, "applies to image data only"),
        ({"data": {"target": "ncsn_toy", "split_seed": 3}}, "split_seed applies to image data"),
        ({"data": {"images": ""}}, "[data] images must be 'digits' or the path"),
        ({"model": {"name": "ncsn", "variant": "v3"}}, "variant must be one of ncsn, ncsnv2, time"),
        ({"model": {"name": "ncsn", "conditioning": "sigma"}}, "ncsn takes no conditioning key"),
        ({"model": {"name": "ncsn", "sigmas": [1.0]}}, "[model] unknown key 'sigmas'"),
        ({"model": {"name": "ncsn", "width": 3}}, "[model] unknown key 'width'; allowed:"),
        ({"model": {"name": "ncsn", "n_features": 1}}, "n_features must be an integer >= 2"),
        ({"model": {"name": "ncsn", "scale_by_sigma": True}}, "unknown key 'scale_by_sigma'"),
        ({"model": {"name": "ncsn", "variant": "time"}}, "variant = 'time' is the time-cond"),
        ({"objective": {"name": "ssm"}}, "the ncsn model is σ-conditional"),
        (
            {
                "sde": {"name": "ve"},
                "objective": {"name": "sde_dsm"},
                "model": {"name": "ncsn", "variant": "ncsn"},
            },
            "needs the time-conditional ncsn",
        ),
    ],
)
def test_invalid_image_configs_name_the_key(raw, message):
    with pytest.raises(ScorelabError) as err:
        parse_config({**BASE, **raw})
    assert message in str(err.value)


def test_bad_image_config_is_one_line_before_any_work(tmp_path):
    cfg = tmp_path / "bad.toml"
    text = TINY.format(out=tmp_path / "runs").replace('split = "train"', 'split = "tset"')
    cfg.write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "scorelab.cli", "train", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    _one_line_error(proc.returncode, proc.stderr, "[data] split must be one of train, all")
    assert not (tmp_path / "runs").exists()


# -- a tiny digits run through the CLI ---------------------------------------------------------
@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """40 steps of a 4-feature NCSN on the digits (seconds): wiring, shapes and counts."""
    tmp = tmp_path_factory.mktemp("digits")
    cfg = tmp / "tiny.toml"
    cfg.write_text(TINY.format(out=tmp / "runs"))
    assert main(["train", str(cfg), "--device", "cpu"]) == 0
    (run,) = list((tmp / "runs").iterdir())
    return run


def test_train_records_the_images_and_prints_the_model(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.format(out=tmp_path / "runs"))
    code, _, err = _cli(capsys, "train", str(cfg), "--set", "train.steps=2")
    assert code == 0, err
    (run,) = list((tmp_path / "runs").iterdir())
    meta = json.loads((run / "config.json").read_text())
    assert meta["images"]["shape"] == [1, 8, 8] and meta["images"]["levels"] == 17
    assert meta["images"]["n_train"] == 1438 and meta["images"]["n_test"] == 359
    assert meta["dim"] == 64 and meta["device"] == "cpu"
    assert len(meta["noise"]["sigmas"]) == meta["noise"]["n_levels"] == 21  # overlap rule, D = 64
    assert f"{meta['n_parameters']:,} parameters" in err
    assert "NCSN[ncsn] U-Net 1×8×8" in err and "CondInstanceNorm++ over 21 σ levels" in err
    with np.load(run / "images.npz") as f:  # raw values 0..16, not floats
        assert f["train"].dtype == np.uint8 and f["train"].shape == (1438, 1, 8, 8)
        assert int(f["train"].max()) == 16 and f["test_labels"].shape == (359,)
    assert not (run / "data.npy").exists()


def test_sample_writes_samples_and_a_png_grid(digits_run, capsys):
    code, out, err = _cli(capsys, "sample", str(digits_run), "-n", "30")
    assert code == 0, err
    (path,) = list((digits_run / "samples").glob("annealed_langevin-*.npz"))
    arr, meta = load_samples(path)
    assert arr.shape == (30, 64) and np.isfinite(arr).all()
    assert meta["init"] == "uniform" and meta["image_shape"] == [1, 8, 8] and meta["levels"] == 17
    assert meta["nfe"] == 21 * 2 + 1  # L·T steps and the final denoising step
    grid = digits_run / "figures" / f"samples-{path.stem}.png"
    assert grid.is_file() and str(grid) in out
    from PIL import Image

    with Image.open(grid) as im:  # 3 rows × 10 of 8×8 with 1-pixel padding, scale 4
        assert im.size == ((10 * 9 + 1) * 4, (3 * 9 + 1) * 4) and im.mode == "L"


def test_classifier_is_cached_and_evaluate_writes_digits_fd(digits_run, capsys):
    if not list((digits_run / "samples").glob("*.npz")):
        assert main(["sample", str(digits_run), "-n", "30"]) == 0
    code, out, err = _cli(capsys, "classifier", str(digits_run), "--steps", "100")
    assert code == 0, err
    assert "trained in" in out and "held-out accuracy: 0.9" in out and "FD floor" in out
    record = digits_run / "classifier" / "classifier.json"
    stamp = record.stat().st_mtime_ns
    code, out, err = _cli(capsys, "classifier", str(digits_run))  # steps from the cache
    assert code == 0, err
    assert "(cached; 100 steps" in out and record.stat().st_mtime_ns == stamp

    code, out, err = _cli(capsys, "evaluate", str(digits_run), "--device", "auto")
    assert code == 0, err
    assert record.stat().st_mtime_ns == stamp  # evaluate reused the cached classifier
    ev = json.loads((digits_run / "evaluation.json").read_text())
    assert ev["classifier"]["cached"] and ev["classifier"]["accuracy"] >= 0.95
    (row,) = ev["samples"].values()
    assert row["n_samples"] == 30 and row["fd"] > 0 and row["fd_ratio"] > 0
    assert 0 < row["classes_present"] <= 1 and 0 <= row["memorised_fraction"] <= 1
    for key in ("fd", "fd_floor_matched", "fd_ratio", "classes_present", "label_entropy"):
        assert key in out
    code, out, err = _cli(capsys, "report", str(digits_run))
    assert code == 0, err
    html = (digits_run / "report.html").read_text()
    assert "samples-annealed_langevin-" in html and "fd_ratio" in html


def test_a_weak_classifier_is_refused(tmp_path, capsys):
    code, _, err = _cli(capsys, "classifier", "--out", str(tmp_path), "--steps", "1")
    _one_line_error(code, err, "held-out accuracy")
    assert "< 0.95" in err


def test_bad_samples_are_one_line_errors(digits_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(digits_run, run)
    shutil.rmtree(run / "samples", ignore_errors=True)
    bad = torch.zeros(5, 64)
    bad[2, 3] = float("nan")
    save_samples(run / "samples" / "nan.npz", bad, sampler="x")
    _one_line_error(*_cli(capsys, "evaluate", str(run))[::2], "1 of 5 rows hold NaN or inf")
    (run / "samples" / "nan.npz").unlink()
    save_samples(run / "samples" / "wide.npz", torch.zeros(5, 49), sampler="x")
    _one_line_error(*_cli(capsys, "evaluate", str(run))[::2], "49 values per row")


def test_unlabelled_or_missized_images_are_refused(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "a.npz", images=rng.integers(0, 256, (20, 8, 8), dtype=np.uint8))
    np.savez(tmp_path / "b.npz", images=rng.integers(0, 256, (6, 6, 6), dtype=np.uint8))
    np.savez(tmp_path / "nan.npz", images=np.full((4, 8, 8), np.nan))
    text = TINY.format(out=tmp_path / "runs")
    for images, extra, message in (
        ("a.npz", 'test_images = "{d}/b.npz"', "held-out images have shape 1×6×6"),
        ("nan.npz", "", "256 pixel values are NaN or inf"),
    ):
        cfg = tmp_path / "c.toml"
        data = f'images = "{tmp_path}/{images}"\n' + extra.format(d=tmp_path)
        cfg.write_text(text.replace('images = "digits"\nsplit = "train"', data))
        _one_line_error(*_cli(capsys, "train", str(cfg))[::2], message)
    assert not (tmp_path / "runs").exists()
    cfg.write_text(text.replace('images = "digits"', f'images = "{tmp_path}/a.npz"'))
    cfg.write_text(cfg.read_text().replace("steps = 40", "steps = 2"))
    assert _cli(capsys, "train", str(cfg))[0] == 0
    (run,) = list((tmp_path / "runs").iterdir())
    _one_line_error(*_cli(capsys, "classifier", str(run))[::2], "no labels")


# -- IDX (MNIST format) input ------------------------------------------------------------------
def _write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_config_trains_and_samples_on_tiny_idx_files(tmp_path, capsys, monkeypatch):
    """configs/mnist_ncsn.toml as shipped, on fake 28×28 IDX files and a handful of steps."""
    rng = np.random.default_rng(0)
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    for part, n in (("train", 24), ("t10k", 12)):
        _write_idx(mnist / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)), 0x803)
        _write_idx(mnist / f"{part}-labels-idx1-ubyte.gz", np.arange(n) % 10, 0x801)
    sets = ["train.steps=3", "train.batch_size=8", "model.n_features=4", f"out={tmp_path}/runs"]
    args = [x for s in sets for x in ("--set", s)]
    monkeypatch.chdir(tmp_path)  # the config's paths are relative: mnist/...
    code, _, err = _cli(capsys, "train", str(CONFIGS / "mnist_ncsn.toml"), *args)
    assert code == 0, err
    (run,) = list((tmp_path / "runs").iterdir())
    meta = json.loads((run / "config.json").read_text())
    assert meta["images"]["shape"] == [1, 28, 28] and meta["images"]["levels"] == 256
    assert meta["images"]["n_train"] == 24 and meta["images"]["n_test"] == 12
    assert meta["images"]["split"] == "all" and meta["noise"]["sigma_max"] == 20.0
    code, out, err = _cli(capsys, "sample", str(run), "-n", "4", "--set", "n_steps_each=1")
    assert code == 0, err
    (path,) = list((run / "samples").glob("*.npz"))
    arr, _ = load_samples(path)
    assert arr.shape == (4, 784) and np.isfinite(arr).all()
    assert (run / "figures" / f"samples-{path.stem}.png").is_file()


# -- devices -----------------------------------------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="tests the error without CUDA")
def test_device_cuda_without_cuda_is_a_one_line_error(tmp_path, digits_run, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.format(out=tmp_path / "runs"))
    n_samples = len(list((digits_run / "samples").glob("*.npz")))
    for args in (["train", str(cfg)], ["sample", str(digits_run)], ["evaluate", str(digits_run)]):
        code, _, err = _cli(capsys, *args, "--device", "cuda")
        _one_line_error(code, err, "--device cuda: no CUDA device is available")
    assert not (tmp_path / "runs").exists()  # nothing was started
    assert len(list((digits_run / "samples").glob("*.npz"))) == n_samples
