"""The `scorelab` command: version, help, the demo's run folder, and clean errors."""

import json
import subprocess
import sys

import pytest

from scorelab import __version__
from scorelab.cli import main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"scorelab {__version__}"
    assert main([]) == 0
    assert "demo" in capsys.readouterr().out


def test_demo_writes_a_fresh_run_folder(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "-n", "2000", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    (run,) = list(tmp_path.iterdir())
    metrics = json.loads((run / "metrics.json").read_text())
    assert (run / "samples.png").stat().st_size > 10_000
    rows = metrics["samplers"]
    assert set(rows) == {
        "langevin (uniform start)",
        "annealed langevin",
        "langevin from data (early stop)",
    }
    for row in rows.values():
        assert set(row) >= {"weights", "weight_tv", "mmd", "nfe", "seconds"}
        assert sum(row["weights"]) == pytest.approx(1.0)
    # s.e. of a 0.2 weight with 2000 chains is 0.009: 0.05 is > 5 s.e. of slack
    assert rows["langevin (uniform start)"]["weight_tv"] > 0.1
    assert rows["annealed langevin"]["weight_tv"] < 0.05
    assert rows["langevin from data (early stop)"]["weight_tv"] < 0.05
    assert rows["annealed langevin"]["nfe"] == 20 * 200 + 1
    assert "annealed langevin" in out and str(run) in out
    # a second run never touches the first
    before = (run / "metrics.json").read_bytes()
    assert main(["demo", "--out", str(tmp_path), "-n", "50"]) == 0
    assert len(list(tmp_path.iterdir())) == 2
    assert (run / "metrics.json").read_bytes() == before


def _run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "scorelab.cli", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["demo", "-n", "0"], "expected a positive integer"),
        (["demo", "-n", "abc"], "expected a positive integer"),
        (["demo", "-n", "5"], "at least 10 chains"),
        (["nope"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message):
    proc = _run_cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unwritable_output_folder_is_a_clean_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("user data")
    proc = _run_cli("demo", "--out", str(blocker), "-n", "20")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.startswith("scorelab: error:")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert blocker.read_text() == "user data"
