"""fit(): it learns, resumes bit for bit, survives crashes mid-checkpoint, rejects bad input."""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from scorelab._utils import DivergenceError, ScorelabError
from scorelab.models import ScoreMLP
from scorelab.train import FitResult, fit, load_checkpoint


def dsm(sigma: float):
    """Denoising score matching at one σ (Vincent 2011): ½‖s(x + σz) + z/σ‖² per sample."""

    def objective(model, x, *, generator=None):
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
        return 0.5 * ((model(x + sigma * z, None) + z / sigma) ** 2).sum(dim=1)

    return objective


def dsm_global_rng(model, x, *, generator=None):
    """DSM that also draws from torch's global RNG (as dropout would): resume must restore it."""
    sigma = 0.5 * (1 + 0.2 * torch.rand(x.shape[0], 1))
    z = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return 0.5 * ((model(x + sigma * z, None) + z / sigma) ** 2).sum(dim=1)


class SimulatedCrash(Exception):
    pass


def crash_at(objective, call: int):
    """The objective, raising SimulatedCrash on its `call`-th call (i.e. during step `call`)."""
    calls = [0]

    def wrapped(model, x, *, generator=None):
        calls[0] += 1
        if calls[0] == call:
            raise SimulatedCrash
        return objective(model, x, generator=generator)

    return wrapped


def small_model() -> ScoreMLP:
    return ScoreMLP(2, hidden=16, depth=2)


def gaussian_data(n: int = 512) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(7))


# one configuration for every resume test: 40 steps, EMA, clipping; metrics lines every 4 steps,
# so checkpoints every 10 steps fall between lines (the pending loss mean must survive a resume)
RUN = dict(steps=40, batch_size=64, lr=3e-3, ema_decay=0.9, grad_clip=5.0, seed=3, log_every=4)


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def columns(run_dir: Path) -> list[tuple]:
    return [(m["step"], m["loss"], m.get("skipped", False)) for m in metrics(run_dir)]


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> tuple[FitResult, Path]:
    """Run A: 40 steps in one call, checkpoint every 10 steps."""
    run_dir = tmp_path_factory.mktemp("A")
    torch.manual_seed(0)
    result = fit(
        small_model(),
        dsm_global_rng,
        gaussian_data(),
        **RUN,
        run_dir=run_dir,
        checkpoint_every=10,
        config={"name": "A", "nested": {"sigmas": [1.0, 0.5]}},
    )
    return result, run_dir


def assert_matches_uninterrupted(result: FitResult, run_dir: Path, uninterrupted) -> None:
    ref, ref_dir = uninterrupted
    assert result.step == ref.step == 40
    assert_same_weights(result.model, ref.model)
    assert_same_weights(result.ema, ref.ema)
    assert result.losses == ref.losses[result.start_step :]
    assert columns(run_dir) == columns(ref_dir)


# ---------------------------------------------------------------- it learns


def test_learns_the_score_of_a_gaussian():
    """N(0, I) noised at σ has score −x/(1+σ²); DSM's minimum is d/(2σ²) − d/(2(1+σ²))."""
    sigma, d = 0.3, 2
    data = torch.randn(4096, d, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    model = ScoreMLP(d, hidden=64, depth=2)

    def exact(x, s=None):
        return -x / (1 + sigma**2)

    # losses on one fixed batch and noise (common random numbers), minus the exact score's:
    # E[L(s) − L(s*)] = ½E‖s − s*‖², so this is the model's excess loss, free of the floor
    def excess(m) -> float:
        with torch.no_grad():
            obj, x = dsm(sigma), data[:2048]
            return float(
                obj(m, x, generator=torch.Generator().manual_seed(5)).mean()
                - obj(exact, x, generator=torch.Generator().manual_seed(5)).mean()
            )

    before = excess(model)
    result = fit(model, dsm(sigma), data, steps=400, lr=3e-3, ema_decay=0.99, seed=0)
    after = excess(result.best_model())
    assert before > 0.5
    assert after < 0.1 * before
    floor = d / (2 * sigma**2) - d / (2 * (1 + sigma**2))
    assert abs(np.mean(result.losses[-100:]) / floor - 1) < 0.02
    assert np.mean(result.losses[:10]) > np.mean(result.losses[-100:]) + 0.1

    # learned score within 0.2 (Euclidean) of −x/(1+σ²) in the bulk of the data
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.7, 0.7], [-1.0, 1.0]])
    with torch.no_grad():
        err = (result.best_model()(pts) - exact(pts)).norm(dim=1)
    assert err.max() < 0.2, err


# ---------------------------------------------------------------- resume


def test_resume_in_two_calls_equals_one_call(tmp_path, uninterrupted):
    data = gaussian_data()
    torch.manual_seed(0)  # the same initial weights as run A
    first = fit(small_model(), dsm_global_rng, data, **{**RUN, "steps": 20}, run_dir=tmp_path)
    assert first.step == 20 and len(first.losses) == 20
    torch.manual_seed(1)  # another global RNG state: the checkpoint must restore it
    second = fit(small_model(), dsm_global_rng, data, **RUN, run_dir=tmp_path, resume=True)
    assert second.start_step == 20 and len(second.losses) == 20
    assert_matches_uninterrupted(second, tmp_path, uninterrupted)


def test_resume_after_a_crash_between_checkpoints(tmp_path, uninterrupted):
    data = gaussian_data()
    torch.manual_seed(0)
    with pytest.raises(SimulatedCrash):  # dies during step 27; last checkpoint is step 20
        fit(
            small_model(),
            crash_at(dsm_global_rng, 27),
            data,
            **RUN,
            run_dir=tmp_path,
            checkpoint_every=10,
        )
    assert [m["step"] for m in metrics(tmp_path)][-1] == 24  # a line past the checkpoint
    assert load_checkpoint(tmp_path, small_model())["step"] == 20
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 26, "lo')  # a line torn by the crash
    resumed = fit(
        small_model(),
        dsm_global_rng,
        data,
        **RUN,
        run_dir=tmp_path,
        checkpoint_every=10,
        resume=True,
    )
    assert resumed.start_step == 20
    assert_matches_uninterrupted(resumed, tmp_path, uninterrupted)


def test_resume_without_a_checkpoint_starts_fresh_and_existing_run_needs_resume(tmp_path):
    data = gaussian_data()
    torch.manual_seed(0)
    a = fit(small_model(), dsm(0.5), data, steps=5, seed=1, run_dir=tmp_path / "a", resume=True)
    torch.manual_seed(0)
    b = fit(small_model(), dsm(0.5), data, steps=5, seed=1)
    assert a.start_step == 0
    assert_same_weights(a.model, b.model)
    with pytest.raises(ScorelabError, match="already holds a checkpoint at step 5.*resume=True"):
        fit(small_model(), dsm(0.5), data, steps=10, run_dir=tmp_path / "a")
    done = fit(small_model(), dsm(0.5), data, steps=5, run_dir=tmp_path / "a", resume=True)
    assert done.start_step == 5 and done.losses == []
    assert_same_weights(done.model, a.model)
    with pytest.raises(ScorelabError, match="step 5, past steps=3"):
        fit(small_model(), dsm(0.5), data, steps=3, run_dir=tmp_path / "a", resume=True)
    with pytest.raises(ScorelabError, match="has no EMA weights but ema_decay=0.9"):
        fit(
            small_model(),
            dsm(0.5),
            data,
            steps=9,
            ema_decay=0.9,
            run_dir=tmp_path / "a",
            resume=True,
        )


def test_resume_with_a_different_model_shape_names_file_and_tensor(tmp_path):
    data = gaussian_data()
    fit(small_model(), dsm(0.5), data, steps=3, run_dir=tmp_path)
    model = ScoreMLP(2, hidden=8, depth=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(
        ScorelabError, match=r"weights-000003\.safetensors.*'trunk\.layers\.0\.weight'"
    ):
        fit(model, dsm(0.5), data, steps=6, run_dir=tmp_path, resume=True)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched


# ---------------------------------------------------------------- files


def test_checkpoint_folder_holds_exactly_the_committed_files(uninterrupted):
    result, run_dir = uninterrupted
    folder = run_dir / "checkpoints"
    record = json.loads((folder / "checkpoint.json").read_text())
    named = {f["name"] for f in record["files"].values()}
    assert sorted(p.name for p in folder.iterdir()) == sorted({"checkpoint.json"} | named)
    assert named == {"weights-000040.safetensors", "state-000040.safetensors"}
    assert record["step"] == 40 and record["has_ema"] is True
    assert record["config"] == {"name": "A", "nested": {"sigmas": [1.0, 0.5]}}
    for key in ("lr", "seed", "batch_size", "ema_decay"):
        assert record[key] == RUN[key]
    assert record["scorelab_version"] and record["optimizer"]["class"] == "Adam"
    # metrics: every log_every steps, loss = mean of the steps since the previous line
    lines = metrics(run_dir)
    assert [m["step"] for m in lines] == list(range(4, 41, 4))
    for m in lines:
        assert m["loss"] == pytest.approx(np.mean(result.losses[m["step"] - 4 : m["step"]]))
    assert all(a["seconds"] <= b["seconds"] for a, b in zip(lines, lines[1:], strict=False))


def test_crash_before_the_json_commit_keeps_the_previous_checkpoint(
    tmp_path, monkeypatch, uninterrupted
):
    real_replace = os.replace
    commits = []

    def replace(src, dst):
        if Path(dst).name == "checkpoint.json":
            commits.append(dst)
            if len(commits) == 2:  # the step-20 commit: its tensor files are already written
                raise OSError("simulated power cut")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    data = gaussian_data()
    torch.manual_seed(0)
    with pytest.raises(OSError, match="power cut"):
        fit(small_model(), dsm_global_rng, data, **RUN, run_dir=tmp_path, checkpoint_every=10)
    monkeypatch.setattr(os, "replace", real_replace)

    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == [
        "checkpoint.json",
        "state-000010.safetensors",
        "state-000020.safetensors",  # written, never committed
        "weights-000010.safetensors",
        "weights-000020.safetensors",
    ]
    assert load_checkpoint(tmp_path, small_model())["step"] == 10
    resumed = fit(
        small_model(),
        dsm_global_rng,
        data,
        **RUN,
        run_dir=tmp_path,
        checkpoint_every=10,
        resume=True,
    )
    assert resumed.start_step == 10
    assert_matches_uninterrupted(resumed, tmp_path, uninterrupted)
    assert {p.name for p in folder.iterdir()} == {
        "checkpoint.json",
        "weights-000040.safetensors",
        "state-000040.safetensors",
    }


def test_load_checkpoint_restores_weights_without_unpickling(monkeypatch, uninterrupted):
    result, run_dir = uninterrupted

    def no_pickle(*args, **kwargs):
        raise AssertionError("torch.load must not be used")

    monkeypatch.setattr(torch, "load", no_pickle)
    model = small_model()
    meta = load_checkpoint(run_dir, model)
    assert meta["step"] == 40 and meta["loaded_weights"] == "model"
    assert_same_weights(model, result.model)
    ema = small_model()
    assert load_checkpoint(run_dir, ema, ema=True)["loaded_weights"] == "ema"
    assert_same_weights(ema, result.ema)
    with pytest.raises(
        ScorelabError, match=r"'trunk\.layers\.0\.weight' has shape \(16, 2\).*\(16, 3\)"
    ):
        load_checkpoint(run_dir, ScoreMLP(3, hidden=16, depth=2))
    with pytest.raises(ScorelabError, match=r"'trunk\.layers\.1\.bias' has no counterpart"):
        load_checkpoint(run_dir, ScoreMLP(2, hidden=16, depth=1))


def test_load_checkpoint_without_a_checkpoint_or_with_a_missing_file(tmp_path):
    with pytest.raises(ScorelabError, match="no checkpoint"):
        load_checkpoint(tmp_path, small_model())
    fit(small_model(), dsm(0.5), gaussian_data(), steps=2, run_dir=tmp_path)
    (tmp_path / "checkpoints" / "weights-000002.safetensors").unlink()
    with pytest.raises(ScorelabError, match="weights-000002.safetensors, which is missing"):
        load_checkpoint(tmp_path, small_model())


# ---------------------------------------------------------------- bad input, divergence


@pytest.mark.parametrize(
    ("data", "kwargs", "match"),
    [
        (torch.tensor([[0.0, 1.0], [math.nan, 0.0], [1.0, math.inf]]), {}, "2 of 3 rows"),
        (torch.tensor(1.0), {}, r"shape \(M, \.\.\.\)"),
        (torch.ones(5), {}, r"shape \(M, \.\.\.\)"),
        (torch.ones(0, 2), {}, "empty"),
        (torch.ones(4, 2, dtype=torch.long), {}, "floating point"),
        ([[0.0, 1.0]], {}, "tensor or numpy array"),
        (None, {"steps": 0}, "steps"),
        (None, {"batch_size": 0}, "batch_size"),
        (None, {"lr": 0.0}, "lr"),
        (None, {"lr": -1e-3}, "lr"),
        (None, {"ema_decay": 1.0}, "ema_decay"),
        (None, {"ema_decay": 0.0}, "ema_decay"),
        (None, {"grad_clip": 0.0}, "grad_clip"),
        (None, {"log_every": 0}, "log_every"),
        (None, {"resume": True}, "resume=True needs a run_dir"),
        (None, {"checkpoint_every": 5}, "checkpoint_every needs a run_dir"),
        (None, {"config": {"f": object()}}, "config must be JSON"),
    ],
)
def test_bad_input_is_a_one_line_scorelab_error(data, kwargs, match):
    data = gaussian_data(8) if data is None else data
    args = {"steps": 3, **kwargs}
    with pytest.raises(ScorelabError, match=match) as info:
        fit(small_model(), dsm(0.5), data, **args)
    assert "\n" not in str(info.value)


def test_objective_must_return_per_sample_losses():
    with pytest.raises(ScorelabError, match=r"shape \(4,\), got \(\)"):
        fit(
            small_model(),
            lambda m, x, generator=None: dsm(0.5)(m, x).mean(),
            gaussian_data(),
            steps=2,
            batch_size=4,
        )


def nan_at(steps: set[int], *, in_gradient: bool = False):
    calls = [0]

    def objective(model, x, *, generator=None):
        calls[0] += 1
        loss = dsm(0.5)(model, x, generator=generator)
        if calls[0] in steps:
            if in_gradient:  # finite loss (0), NaN gradient: d√u/du = ∞ at u = 0, times 0
                return loss + torch.sqrt((model(x) ** 2).sum(dim=1) * 0)
            return loss * math.nan
        return loss

    return objective


@pytest.mark.parametrize(("in_gradient", "what"), [(False, "loss"), (True, "gradient")])
def test_divergence_names_the_step_and_lr(in_gradient, what):
    with pytest.raises(DivergenceError, match=rf"step 3: the {what} is not finite.*smaller lr"):
        fit(small_model(), nan_at({3}, in_gradient=in_gradient), gaussian_data(), steps=5)


def test_skip_nonfinite_skips_counts_and_logs(tmp_path):
    torch.manual_seed(0)
    model = small_model()
    result = fit(
        model,
        nan_at({2, 5}),
        gaussian_data(),
        steps=8,
        log_every=4,
        ema_decay=0.5,
        run_dir=tmp_path,
        skip_nonfinite=True,
    )
    assert result.skipped == [2, 5]
    assert len(result.losses) == 8 and math.isnan(result.losses[1])
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert all(torch.isfinite(p).all() for p in result.ema.parameters())
    assert columns(tmp_path) == [
        (2, None, True),
        (4, pytest.approx(np.mean([result.losses[i] for i in (0, 2, 3)])), False),
        (5, None, True),
        (8, pytest.approx(np.mean([result.losses[i] for i in (5, 6, 7)])), False),
    ]
    # a skipped step leaves the weights (and Adam's state) alone
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(model, nan_at({1}), gaussian_data(), steps=1, skip_nonfinite=True)
    assert result.skipped == [1]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_grad_clip_bounds_the_gradients_adam_sees(tmp_path):
    """Adam's v = Σ_t (1−β₂)β₂^(T−t) g_t², so Σ v ≤ max_t ‖g_t‖² ≤ grad_clip² when clipping."""

    def huge(model, x, *, generator=None):
        return 1e4 * dsm(0.5)(model, x, generator=generator)

    def second_moment(run_dir: Path, clip: float | None) -> float:
        fit(small_model(), huge, gaussian_data(), steps=3, grad_clip=clip, run_dir=run_dir)
        state = load_file(run_dir / "checkpoints" / "state-000003.safetensors")
        return float(sum(v.sum() for k, v in state.items() if k.endswith(".exp_avg_sq")))

    assert second_moment(tmp_path / "clipped", 0.5) <= 0.5**2
    assert second_moment(tmp_path / "free", None) > 1e3


# ---------------------------------------------------------------- determinism


def test_same_seed_same_bits_different_seed_different_bits():
    data = gaussian_data()

    def run(seed, data=data):
        torch.manual_seed(0)
        return fit(small_model(), dsm(0.5), data, steps=15, batch_size=32, seed=seed).model

    a, b, c = run(1), run(1), run(2)
    assert_same_weights(a, b)
    assert_same_weights(run(1, data.numpy()), a)  # numpy input: the same run
    assert not torch.equal(a.head.weight, c.head.weight)


def test_with_the_library_dsm_objective():
    from scorelab.objectives import DSM

    torch.manual_seed(0)
    obj = DSM(sigma=0.5)
    result = fit(ScoreMLP(2, hidden=32, depth=2), obj, gaussian_data(2048), steps=150, lr=3e-3)
    floor = 2 / (2 * 0.5**2) - 2 / (2 * (1 + 0.5**2))  # DSM's minimum for N(0, I) data: 3.2
    assert abs(np.mean(result.losses[-50:]) / floor - 1) < 0.05
    assert np.mean(result.losses[:10]) > floor + 0.3


def test_batch_transform_sees_each_batch_and_resumes_exactly(tmp_path):
    """The transform's output is what the objective gets; its draws come from fit's generator."""
    data = gaussian_data()
    seen = []

    def jitter(batch, g):
        out = batch + 0.01 * torch.rand(batch.shape, generator=g, dtype=batch.dtype)
        seen.append((batch, out))
        return out

    def spy(model, batch, generator=None):
        assert any(batch is out for _, out in seen[-1:])
        return dsm(0.5)(model, batch, generator=generator)

    torch.manual_seed(0)
    full = fit(small_model(), spy, data, steps=12, seed=3, batch_transform=jitter)
    assert len(seen) == 12 and all(not torch.equal(b, o) for b, o in seen)
    torch.manual_seed(0)
    plain = fit(small_model(), dsm(0.5), data, steps=12, seed=3)
    assert full.losses != plain.losses  # the jitter changed what was trained on
    torch.manual_seed(0)
    fit(small_model(), dsm(0.5), data, steps=6, seed=3, run_dir=tmp_path, batch_transform=jitter)
    resumed = fit(
        small_model(), dsm(0.5), data, steps=12, seed=3, run_dir=tmp_path, resume=True,
        batch_transform=jitter,
    )  # fmt: skip
    assert resumed.losses == full.losses[6:]
    assert_same_weights(resumed.model, full.model)


# ---------------------------------------------------------------- equal to the plain loop


def test_fit_equals_a_hand_written_loop_bit_for_bit():
    """fit's fast paths (multi-tensor Adam, fused EMA and gradient check) change no bits.

    The reference is the plain per-tensor PyTorch loop fit used to be: torch.optim.Adam with
    foreach=False, e ← decay·e + (1 − decay)·θ one tensor at a time, the same draws in the same
    order. benchmarks/train_step.py times the two.
    """
    data, decay, lr = gaussian_data(), 0.9, 3e-3
    torch.manual_seed(0)
    init = ScoreMLP(2, hidden=16, depth=2, conditioning="sigma")
    from scorelab.objectives import NCSN

    objective = NCSN([2.0, 0.5, 0.1])
    model, ref = copy.deepcopy(init), copy.deepcopy(init)
    result = fit(model, objective, data, steps=25, batch_size=32, lr=lr, ema_decay=decay, seed=4)

    ema = copy.deepcopy(ref).requires_grad_(False)
    opt = torch.optim.Adam(ref.parameters(), lr=lr, foreach=False)
    g = torch.Generator().manual_seed(4)
    losses = []
    for _ in range(25):
        loss = objective(ref, data[torch.randint(0, len(data), (32,), generator=g)], generator=g)
        loss = loss.mean()
        losses.append(float(loss.detach()))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for e, p in zip(ema.parameters(), ref.parameters(), strict=True):
                e.mul_(decay).add_(p, alpha=1 - decay)
    assert result.losses == losses
    assert_same_weights(result.model, ref)
    assert_same_weights(result.ema, ema)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_gradient_check_flags_inf_and_nan_and_leaves_gradients_alone(dtype):
    from scorelab.train import _GradCheck

    params = [torch.nn.Parameter(torch.zeros(4, 3, dtype=dtype)) for _ in range(2)]
    params.append(torch.nn.Parameter(torch.zeros(5, dtype=dtype)))  # no gradient: ignored
    for p in params[:2]:
        p.grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    params[0].grad[0, 0] = -0.0
    params[0].grad[0, 1] = torch.finfo(dtype).tiny / 4  # subnormal
    params[0].grad[0, 2] = torch.finfo(dtype).max
    before = [p.grad.clone() for p in params[:2]]
    for fused in (True, False):
        check = _GradCheck()
        check.fused = fused
        assert check(params)
        for b, p in zip(before, params[:2], strict=True):  # the same bits, -0.0 included
            assert torch.equal(b.view(torch.int8), p.grad.view(torch.int8))
        for bad in (math.inf, -math.inf, math.nan):
            params[1].grad[2, 1] = bad
            assert not check(params)
            params[1].grad[2, 1] = before[1][2, 1]
            assert check(params)
    assert _GradCheck()([torch.nn.Parameter(torch.zeros(2))])  # no gradients at all
