"""The `scorelab` command: version, help, demo, train → sample → evaluate → report, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from scorelab import __version__
from scorelab.cli import main

TINY = """
name = "tiny"
seed = 0
out = "{out}"

[data]
{data}

[model]
name = "score_mlp"
hidden = 32
depth = 2
conditioning = "sigma"
scale_by_sigma = true

[objective]
name = "ncsn"

[noise]
sigma_min = 0.1
n_levels = 5
n_steps_each = 20

[train]
steps = 60
batch_size = 64
checkpoint_every = 30
log_every = 20

[sample]
n = 200
"""


def _run_cli(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "scorelab.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def _one_line_error(proc, message):
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"scorelab {__version__}"
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("train", "sample", "evaluate", "report", "experiment", "demo"):
        assert command in out


def test_demo_trains_samples_and_reports(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "-n", "1000", "--steps", "200"]) == 0
    out = capsys.readouterr().out
    (run,) = list(tmp_path.iterdir())
    results = json.loads((run / "results.json").read_text())
    rows = {(r[0], r[1]): r for r in results["tables"]["samplers"]["rows"]}
    assert len(rows) == 6
    # columns: sampler, score, w1, w2, weight TV, MMD², NFE, seconds.  With the exact score the
    # demo's claims hold at 1000 chains (binomial s.e. 0.013; bounds ≥ 4 s.e. away):
    assert rows[("langevin (uniform start)", "exact")][4] > 0.1
    assert rows[("annealed langevin", "exact")][4] < 0.06
    assert rows[("langevin from data (early stop)", "exact")][4] < 0.06
    assert rows[("annealed langevin", "learned")][6] == 10 * 200 + 1
    html = (run / "report.html").read_text()
    assert "data:image/png;base64," in html and "annealed langevin" in html
    assert (run / "checkpoints" / "checkpoint.json").exists()
    assert len(list((run / "samples").glob("*.npz"))) == 6
    assert "annealed langevin" in out and "report.html" in out


@pytest.mark.parametrize("data", ['target = "seed001_fig3"\nn = 500', 'path = "{path}"'])
def test_train_sample_evaluate_report_through_the_console(tmp_path, data):
    """The README's tour on a tiny config, once on a named target and once on a user .npy."""
    points = tmp_path / "points.npy"
    np.save(points, np.random.default_rng(0).normal(size=(400, 2)))
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.format(out=tmp_path / "runs", data=data.format(path=points)))
    proc = _run_cli("train", str(cfg))
    assert proc.returncode == 0, proc.stderr
    (run,) = list((tmp_path / "runs").iterdir())
    resolved = json.loads((run / "config.json").read_text())
    # σ₁ was left unset: it came from the data, and the run folder says so
    assert resolved["noise"]["source"]["sigma_max"] == "max pairwise distance"
    assert len(resolved["noise"]["sigmas"]) == 5
    for args in (
        [],
        ["--sampler", "langevin", "--set", "init=data", "--set", "time=0.5"],
        ["--sampler", "hmc", "-n", "50", "--set", "n_steps=5"],
    ):
        proc = _run_cli("sample", str(run), *args)
        assert proc.returncode == 0, proc.stderr
    assert len(list((run / "samples").glob("*.npz"))) == 3
    proc = _run_cli("evaluate", str(run))
    assert proc.returncode == 0, proc.stderr
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert len(evaluation["samples"]) == 3
    assert all(np.isfinite(r["mmd"]) for r in evaluation["samples"].values())
    if "target" in data:
        assert evaluation["reference"] == "exact samples" and "fisher_divergence" in evaluation
    proc = _run_cli("report", str(run))
    assert proc.returncode == 0, proc.stderr
    assert "data:image/png;base64," in (run / "report.html").read_text()


@pytest.mark.parametrize(
    "edit, message",
    [
        (("[train]", "[train]\nstpes = 5"), "[train] unknown key 'stpes'; allowed: batch_size"),
        (('name = "score_mlp"', 'name = "unet9"'), "unknown model 'unet9'; known:"),
        (('name = "ncsn"', 'name = "nscn"'), "unknown objective 'nscn'; known:"),
        (("steps = 60", "steps = 0"), "[train] steps must be >= 1"),
        (("steps = 60", 'steps = "many"'), "[train] steps = 'many' has the wrong type"),
        (("sigma_min = 0.1", "sigma_min = -0.1"), "[noise] sigma_min must be > 0"),
        (("hidden = 32", "hidden = 32\nwidth = 3"), "[model] unknown key 'width'; allowed:"),
        (("n_levels = 5", "n_levels = 1"), "[noise] n_levels must be >= 2"),
        (('conditioning = "sigma"', 'conditioning = "none"'), "conditioning must be 'sigma'"),
    ],
)
def test_bad_configs_are_rejected_before_any_work(tmp_path, edit, message):
    text = TINY.format(out=tmp_path / "runs", data='target = "seed001_fig3"')
    assert edit[0] in text
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text.replace(edit[0], edit[1], 1))
    _one_line_error(_run_cli("train", str(cfg)), message)
    assert not (tmp_path / "runs").exists()  # nothing was started


@pytest.mark.parametrize(
    "content, message",
    [
        ("1,2\n3\n", "rows of different lengths"),
        ("1,2\nnan,4\n", "1 of 2 rows hold NaN or inf"),
        ("", "is empty"),
    ],
)
def test_bad_user_data_is_one_line_and_nonzero(tmp_path, content, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    cfg = tmp_path / "c.toml"
    cfg.write_text(TINY.format(out=tmp_path / "runs", data=f'path = "{bad}"'))
    _one_line_error(_run_cli("train", str(cfg)), message)


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo", "-n", "0"], "expected a positive integer"),
        (["demo", "-n", "5"], "at least 10 chains"),
        (["nope"], "invalid choice"),
        (["train", "missing.toml"], "config file missing.toml does not exist"),
        (["sample", "no/such/run"], "run folder no/such/run does not exist"),
        (["report", "no/such/run"], "does not exist"),
        (["experiment", "fig99"], "unknown experiment 'fig99'; known:"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(tmp_path, args, message):
    proc = _run_cli(*args, cwd=tmp_path)
    assert proc.returncode == 2
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_sampler_settings_are_rejected(tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.format(out=tmp_path / "runs", data='target = "seed001_fig3"\nn = 200'))
    assert _run_cli("train", str(cfg)).returncode == 0
    (run,) = list((tmp_path / "runs").iterdir())
    _one_line_error(
        _run_cli("sample", str(run), "--set", "step_size=-1"),
        "[sample] step_size must be a positive number",
    )
    _one_line_error(
        _run_cli("sample", str(run), "--set", "stepsize=1"),
        "[sample] unknown key 'stepsize' for annealed_langevin; allowed:",
    )
    _one_line_error(_run_cli("sample", str(run), "--sampler", "mala"), "has no log-density")


def test_unwritable_output_folder_is_a_clean_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("user data")
    proc = _run_cli("demo", "--out", str(blocker), "-n", "20")
    _one_line_error(proc, "scorelab: error:")
    assert blocker.read_text() == "user data"


def test_experiment_list_names_every_reproduction(capsys):
    assert main(["experiment", "--list"]) == 0
    out = capsys.readouterr().out
    assert "seed001-fig3" in out and "seed000" in out
