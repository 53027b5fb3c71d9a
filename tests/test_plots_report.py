"""Figures (scorelab.plots) and the self-contained HTML report (scorelab.report)."""

import base64
import json
import math
import re

import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.quiver import Quiver

from scorelab import plots
from scorelab._utils import ScorelabError
from scorelab.report import build_report
from scorelab.runs import save_samples, write_json

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LIM = (-3.0, 3.0)


def gauss_log_prob(x):
    return -0.5 * (x**2).sum(-1)


def gauss_score(x):
    return -x


def test_score_fields_one_quiver_per_panel_and_grid_layout(tmp_path):
    panels = [(f"p{i}", lambda x, i=i: -(i + 1) * x) for i in range(4)]
    fig = plots.score_fields(panels, xlim=LIM, ylim=LIM, n=9, log_prob_fn=gauss_log_prob, ncols=2)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 4
    for ax in fig.axes:
        quivers = [c for c in ax.collections if isinstance(c, Quiver)]
        assert len(quivers) == 1 and quivers[0].N == 81
    # 2 × 2 layout: two distinct column positions and two row positions
    xs = {round(ax.get_position().x0, 3) for ax in fig.axes}
    ys = {round(ax.get_position().y0, 3) for ax in fig.axes}
    assert len(xs) == 2 and len(ys) == 2
    path = tmp_path / "sub" / "fields.png"
    plots.save(fig, path)
    assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 1000
    assert [p.name for p in path.parent.iterdir()] == ["fields.png"]  # no temp left


def test_score_fields_spare_cells_removed():
    fig = plots.score_fields([("a", gauss_score)] * 3, xlim=LIM, ylim=LIM, n=5, ncols=2)
    assert len(fig.axes) == 3


def test_score_fields_arrows_normalised_title_shows_max_norm():
    n = 7
    small = plots.score_fields([("s", gauss_score)], xlim=LIM, ylim=LIM, n=n)
    big = plots.score_fields([("s", lambda x: 1000.0 * gauss_score(x))], xlim=LIM, ylim=LIM, n=n)
    q_small = next(c for c in small.axes[0].collections if isinstance(c, Quiver))
    q_big = next(c for c in big.axes[0].collections if isinstance(c, Quiver))
    np.testing.assert_allclose(q_small.U, q_big.U, rtol=1e-9)
    np.testing.assert_allclose(q_small.V, q_big.V, rtol=1e-9)
    # the longest arrow spans 1.5 grid cells in data units
    cell = (LIM[1] - LIM[0]) / (n - 1)
    assert np.hypot(q_small.U, q_small.V).max() == pytest.approx(1.5 * cell)
    max_norm = 3.0 * math.sqrt(2.0)  # at the corners of the grid
    assert small.axes[0].get_title() == f"s\nmax ‖s‖ = {max_norm:.3g}"  # 4.24
    assert big.axes[0].get_title() == f"s\nmax ‖s‖ = {1000 * max_norm:.3g}"  # 4.24e+03


def test_trajectories_draws_n_chains_lines_with_start_and_end_markers(gen):
    traj = torch.cumsum(0.1 * torch.randn(30, 20, 2, generator=gen), dim=0)
    fig = plots.trajectories(traj, gauss_log_prob, xlim=LIM, ylim=LIM, n_chains=5, title="t")
    (ax,) = fig.axes
    assert len(ax.lines) == 5
    np.testing.assert_allclose(ax.lines[2].get_xydata(), traj[:, 2].numpy(), rtol=1e-6)
    markers = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(markers) == 2  # starts, ends
    np.testing.assert_allclose(markers[0].get_offsets(), traj[0, :5].numpy(), rtol=1e-6)
    np.testing.assert_allclose(markers[1].get_offsets(), traj[-1, :5].numpy(), rtol=1e-6)
    few = plots.trajectories(traj[:, :3].numpy(), xlim=LIM, ylim=LIM, n_chains=8)
    assert len(few.axes[0].lines) == 3
    with pytest.raises(ScorelabError, match="shape"):
        plots.trajectories(traj[0], xlim=LIM, ylim=LIM)


def test_norm_vs_sigma_panels_and_sigma_times_norm():
    sigmas = torch.logspace(1, -2, 6)
    curves = {"exact": 1.25 / sigmas, "net": np.asarray(1.1 / sigmas.numpy())}
    fig = plots.norm_vs_sigma(sigmas, curves, dim=2)
    assert len(fig.axes) == 2
    a0, a1 = fig.axes
    assert a0.get_xscale() == "log" and a0.get_yscale() == "log"
    assert len(a0.lines) == 2 and len(a1.lines) == 3  # + the E‖z‖ reference line
    np.testing.assert_allclose(a1.lines[0].get_ydata(), 1.25, rtol=1e-6)
    assert a1.lines[2].get_ydata()[0] == pytest.approx(math.sqrt(math.pi / 2))  # E‖z‖, d = 2
    assert len(plots.norm_vs_sigma(sigmas, curves, times_sigma=False).axes) == 1


def test_metric_vs_nfe_and_loss_curve_and_histogram(tmp_path, gen):
    fig = plots.metric_vs_nfe({"a": ([10, 100, 1000], [0.3, 0.1, 0.01]), "b": ([10], [0.5])})
    (ax,) = fig.axes
    assert len(ax.lines) == 2 and ax.get_xscale() == "log" and ax.get_ylabel() == "MMD²"
    assert plots.metric_vs_nfe({"a": ([1, 2], [1, 2])}, logx=False).axes[0].get_xscale() == "linear"

    steps = np.arange(1, 201)
    losses = list(1.0 + np.sin(steps / 5.0))
    losses[7] = None  # a non-finite loss logged as null
    fig = plots.loss_curve(steps, losses, smooth=10)
    (ax,) = fig.axes
    assert len(ax.lines) == 2
    smooth = ax.lines[1].get_ydata()
    assert np.isfinite(smooth).all()
    assert smooth[100] == pytest.approx(np.mean(1.0 + np.sin(steps[91:101] / 5.0)))

    x = torch.randn(2000, generator=gen)
    fig = plots.histogram_1d(
        [("a", x), ("b", x.numpy())],
        density_fn=lambda t: torch.exp(-0.5 * t**2) / math.sqrt(2 * math.pi),
    )
    assert len(fig.axes) == 2 and all(len(ax.lines) == 1 for ax in fig.axes)
    plots.save(fig, tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes()[:8] == PNG_MAGIC


EVIL = "<script>alert(1)</script>"


def make_run(tmp_path, gen):
    run = tmp_path / "train-20250101-000000"
    (run / "figures").mkdir(parents=True)
    write_json(run / "config.json", {"model": {"name": "mlp", "hidden": 128}, "note": EVIL})
    lines = [{"step": 10 * (i + 1), "loss": 2.0 / (i + 1), "seconds": 0.1 * i} for i in range(6)]
    lines.append({"step": 70, "loss": None, "skipped": True})
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"step": 80, "lo'  # torn last line
    (run / "metrics.jsonl").write_text(text)
    write_json(
        run / "results.json",
        {
            "title": f"Seed 001 Fig. 3 {EVIL}",
            "seed_ref": "001 §2.2.2",
            "summary": ["annealed Langevin recovers 0.2 / 0.8", "plain Langevin gives ~0.5"],
            "tables": {
                "weights": {
                    "columns": ["sampler", "w1", "mmd"],
                    "rows": [["annealed", 0.2012345678, 1.23456e-5], [EVIL, 0.5, 7]],
                }
            },
        },
    )
    write_json(run / "evaluation.json", {"mmd": 0.0123456, "per_mode": {"a": 1, "b": 2}})
    plots.save(plots.loss_curve([1, 2, 3], [3.0, 2.0, 1.0]), run / "figures" / "a.png")
    save_samples(run / "samples" / "x.npz", torch.randn(50, 2, generator=gen), nfe=123)
    return run


def test_build_report_contents(tmp_path, gen):
    run = make_run(tmp_path, gen)
    path = build_report(run)
    assert path == run / "report.html"
    page = path.read_text()
    assert "Seed 001 Fig. 3" in page and run.name in page and "001 §2.2.2" in page
    for line in ["annealed Langevin recovers 0.2 / 0.8", "plain Langevin gives ~0.5"]:
        assert line in page
    assert ">0.2012<" in page and ">1.235e-05<" in page and ">sampler<" in page
    assert ">0.01235<" in page and ">per_mode<" in page  # evaluation.json, nested
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    imgs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(imgs) == 2  # figures/a.png + the loss curve
    assert all(base64.b64decode(b)[:8] == PNG_MAGIC for b in imgs)
    assert (run / "figures" / "loss.png").read_bytes()[:8] == PNG_MAGIC
    assert base64.b64encode((run / "figures" / "loss.png").read_bytes()).decode() in imgs
    assert "a.png" in page and "&quot;hidden&quot;: 128" in page  # config in a <pre>
    assert "x.npz" in page and "(50, 2)" in page and "&quot;nfe&quot;: 123" in page
    assert "http://" not in page and "https://" not in page
    assert page.index("Summary") < page.index("Tables") < page.index("<img")
    assert page.index("<img") < page.index("Resolved config") < page.index("x.npz")


def test_build_report_rebuild_touches_only_report(tmp_path, gen):
    run = make_run(tmp_path, gen)
    build_report(run)

    def snapshot():
        return {
            p.relative_to(run): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in run.rglob("*")
            if p.is_file()
        }

    before = snapshot()
    (run / "report.html").write_text("stale")
    build_report(run)
    after = snapshot()
    report = run.joinpath("report.html").relative_to(run)
    assert after.keys() == before.keys()
    assert {k for k in after if after[k] != before[k]} == {report}  # bytes or mtime
    assert after[report][0] == before[report][0]  # same page as the first build


def test_build_report_partial_and_empty(tmp_path):
    with pytest.raises(ScorelabError, match="does not exist"):
        build_report(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ScorelabError, match="nothing to report"):
        build_report(empty)
    assert list(empty.iterdir()) == []
    only = tmp_path / "only-figure"
    plots.save(plots.metric_vs_nfe({"a": ([1, 2], [1, 2])}), only / "figures" / "m.png")
    page = build_report(only).read_text()
    assert page.count("data:image/png;base64,") == 1 and "Summary" not in page
    assert not (only / "figures" / "loss.png").exists()
