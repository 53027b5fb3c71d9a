"""Binary denoising MRF (seed 002): energy, ICM, annealing, and the seed002-mrf experiment."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from scorelab._utils import ScorelabError
from scorelab.ebm.mrf import (
    denoise_binary,
    eta_from_flip_rate,
    flip_pixels,
    geometric_temperatures,
    local_field,
    mrf_energy,
    pixel_accuracy,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def random_binary(shape, gen, q=0.5):
    return (torch.rand(shape, generator=gen) < q).long()


def energy_by_loops(y, x, beta, eta, h):
    """E(y; x) of one (H, W) image, one pixel and one edge at a time."""
    hh, ww = y.shape
    s = [[2 * int(y[i, j]) - 1 for j in range(ww)] for i in range(hh)]
    t = [[2 * int(x[i, j]) - 1 for j in range(ww)] for i in range(hh)]
    e = 0.0
    for i in range(hh):
        for j in range(ww):
            e -= eta * s[i][j] * t[i][j] + h * s[i][j]
            if i + 1 < hh:
                e -= beta * s[i][j] * s[i + 1][j]
            if j + 1 < ww:
                e -= beta * s[i][j] * s[i][j + 1]
    return e


def all_labelings(hh, ww):
    """(2^(hh·ww), hh, ww) every binary image of that size."""
    bits = list(itertools.product((0, 1), repeat=hh * ww))
    return torch.tensor(bits).reshape(-1, hh, ww)


def exact_energies(x1, beta, eta, h):
    """E(y; x) of every labeling y of the single (H, W) image x1."""
    ys = all_labelings(*x1.shape)
    return ys, mrf_energy(ys, x1.expand_as(ys), beta=beta, eta=eta, h=h)


def upscaled_digits(n, scale=4):
    from scorelab.images import load_digits

    y = (load_digits("train").images[:n, 0] > 0.5).long()
    return y.repeat_interleave(scale, 1).repeat_interleave(scale, 2)


# ---- energy and parameterisation ---------------------------------------------------------------
def test_energy_matches_double_loop_over_pixels_and_edges(gen):
    y, x = random_binary((3, 4, 5), gen), random_binary((3, 4, 5), gen)
    beta, eta, h = 0.7, 1.3, -0.4
    got = mrf_energy(y, x, beta=beta, eta=eta, h=h)
    want = torch.tensor(
        [energy_by_loops(y[n], x[n], beta, eta, h) for n in range(3)], dtype=torch.float64
    )
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert got.dtype == torch.float64 and got.shape == (3,)


@pytest.mark.parametrize("p", [0.01, 0.1, 0.3, 0.49])
def test_eta_is_the_exact_flip_log_likelihood(p):
    # log p(x|y) = η·s·t + ½log(p(1−p)): log(1−p) when x = y (st = 1), log p when not (st = −1).
    eta = eta_from_flip_rate(p)
    c = 0.5 * math.log(p * (1 - p))
    assert eta + c == pytest.approx(math.log(1 - p), abs=1e-12)
    assert -eta + c == pytest.approx(math.log(p), abs=1e-12)


def test_flip_pixels_flips_at_rate_p_and_is_seeded(gen):
    y = random_binary((50, 40, 50), gen)
    x = flip_pixels(y, 0.2, generator=torch.Generator().manual_seed(3))
    rate = 1.0 - float(pixel_accuracy(x, y).mean())
    # 100 000 Bernoulli(0.2) draws: s.e. √(0.16/1e5) ≈ 0.0013; 4 s.e. ≈ 0.005
    assert abs(rate - 0.2) < 0.005
    assert torch.equal(x, flip_pixels(y, 0.2, generator=torch.Generator().manual_seed(3)))
    assert x.dtype == y.dtype
    xb = flip_pixels(y.bool(), 0.2, generator=torch.Generator().manual_seed(3))
    assert xb.dtype == torch.bool and torch.equal(xb.long(), x)  # same bits for bool images


def test_beta_zero_returns_x_for_both_methods(gen):
    # β = 0, h = 0: the sites decouple and fᵢ = η tᵢ, so the MAP is x itself.
    x = random_binary((4, 6, 7), gen)
    for method in ("icm", "anneal"):
        res = denoise_binary(x, method=method, beta=0.0, eta=0.8, sweeps=20, generator=gen)
        assert torch.equal(res.images, x)
        assert bool(res.converged.all())
    assert int(denoise_binary(x, beta=0.0, eta=0.8).sweeps.sum()) == 0


def test_eta_zero_drives_toward_constant_images(gen):
    # η = 0, β > 0, h = 0: the two ground states are the constant images (E = −β·#edges).
    x = random_binary((8, 5, 5), gen)
    res = denoise_binary(
        x, method="anneal", beta=1.0, eta=0.0, sweeps=300, schedule=(3.0, 0.05), generator=gen
    )
    flat = res.images.flatten(1)
    assert bool(((flat == 0).all(1) | (flat == 1).all(1)).all())
    torch.testing.assert_close(res.energies[-1], torch.full((8,), -40.0, dtype=torch.float64))
    # ICM only goes downhill: disagreeing edges never grow, and majority votes shrink them here
    icm = denoise_binary(x, method="icm", beta=1.0, eta=0.0)
    assert bool((icm.energies[-1] < icm.energies[0]).all())


# ---- ICM ---------------------------------------------------------------------------------------
def test_icm_never_raises_the_energy_and_stops_at_a_fixed_point(gen):
    for beta, eta, h in [(0.6, 0.5, 0.0), (1.2, 0.3, -0.2), (0.3, 1.0, 0.15)]:
        x = random_binary((6, 7, 6), gen)
        res = denoise_binary(x, method="icm", beta=beta, eta=eta, h=h)
        steps = res.energies[1:] - res.energies[:-1]
        assert bool((steps <= 1e-12).all())
        assert bool(res.converged.all()) and res.energies.shape[0] - 1 <= 100
        # brute force: no single-pixel flip of the result lowers E
        e0 = mrf_energy(res.images, x, beta=beta, eta=eta, h=h)
        for i in range(7):
            for j in range(6):
                y = res.images.clone()
                y[:, i, j] = 1 - y[:, i, j]
                assert bool((mrf_energy(y, x, beta=beta, eta=eta, h=h) >= e0 - 1e-9).all())


def test_icm_energy_never_rises_per_sweep_checked_with_mrf_energy(gen):
    # ICM is deterministic, so the image after k sweeps is denoise_binary(..., sweeps=k)'s.
    beta, eta, h = 0.9, 0.45, 0.05
    x = flip_pixels(upscaled_digits(3, scale=2), 0.25, generator=gen)  # (3, 16, 16)
    full = denoise_binary(x, beta=beta, eta=eta, h=h)
    n = full.energies.shape[0] - 1
    assert n >= 3  # several sweeps, or the check would be empty
    e = torch.stack(
        [
            mrf_energy(denoise_binary(x, beta=beta, eta=eta, h=h, sweeps=k).images, x,
                       beta=beta, eta=eta, h=h)
            for k in range(n + 1)
        ]
    )  # fmt: skip
    assert bool((e[1:] <= e[:-1] + 1e-12).all())
    assert bool((e[-1] < e[0]).all())  # and it did go down
    torch.testing.assert_close(e, full.energies, rtol=0, atol=1e-9)


def test_local_field_is_half_the_energy_change_of_a_flip(gen):
    y, x = random_binary((2, 4, 5), gen), random_binary((2, 4, 5), gen)
    beta, eta, h = 0.7, 1.1, -0.3
    f = local_field(y, x, beta=beta, eta=eta, h=h)
    e0 = mrf_energy(y, x, beta=beta, eta=eta, h=h)
    s = 2.0 * y.double() - 1.0
    for i in range(4):
        for j in range(5):
            z = y.clone()
            z[:, i, j] = 1 - z[:, i, j]
            de = mrf_energy(z, x, beta=beta, eta=eta, h=h) - e0
            torch.testing.assert_close(de, 2.0 * s[:, i, j] * f[:, i, j], rtol=0, atol=1e-12)


def _sequential_sweep(y, x, beta, eta, h, order, u=None, temp=None):
    """One sweep site by site in `order`, each decision from mrf_energy of the two candidates:
    ICM keeps the lower (ties keep yᵢ); Gibbs sets yᵢ = 1 when u < σ((E(yᵢ=0) − E(yᵢ=1))/T)."""
    y = y.clone()
    for i, j in order:
        y1, y0 = y.clone(), y.clone()
        y1[:, i, j], y0[:, i, j] = 1, 0
        e1 = mrf_energy(y1, x, beta=beta, eta=eta, h=h)
        e0 = mrf_energy(y0, x, beta=beta, eta=eta, h=h)
        if u is None:
            cur = y[:, i, j].clone()
            y[:, i, j] = torch.where(e1 < e0, 1, torch.where(e0 < e1, 0, cur))
        else:
            y[:, i, j] = (u[:, i, j].double() < torch.sigmoid((e0 - e1) / temp)).long()
    return y


def _colour_order(hh, ww, reverse):
    black = [(i, j) for i in range(hh) for j in range(ww) if (i + j) % 2 == 0]
    white = [(i, j) for i in range(hh) for j in range(ww) if (i + j) % 2 == 1]
    if reverse:  # within a colour no two sites touch, so their order cannot matter
        black, white = black[::-1], white[::-1]
    return black + white


@pytest.mark.parametrize("reverse", [False, True])
def test_checkerboard_icm_sweep_equals_a_sequential_brute_force_sweep(gen, reverse):
    beta, eta, h = 0.8, 0.5, 0.1
    x = random_binary((4, 5, 6), gen)
    y = x
    for k in range(1, 4):  # sweeps 2 and 3 start from states other than x
        y = _sequential_sweep(y, x, beta, eta, h, _colour_order(5, 6, reverse))
        got = denoise_binary(x, beta=beta, eta=eta, h=h, sweeps=k).images
        assert torch.equal(got, y), k


def test_checkerboard_gibbs_sweeps_equal_sequential_brute_force_sweeps(gen):
    # Same uniforms: the heat bath draws one (N, H, W) field per colour, black first.
    beta, eta, h, temp, shape = 0.6, 0.7, -0.2, 1.3, (4, 5, 6)
    x = random_binary(shape, gen)
    res = denoise_binary(
        x, method="anneal", beta=beta, eta=eta, h=h, schedule=torch.full((2,), temp),
        polish=False, keep_best=False, generator=torch.Generator().manual_seed(5),
    )  # fmt: skip
    g = torch.Generator().manual_seed(5)
    y = x
    for _ in range(2):
        u_black, u_white = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
        y = _sequential_sweep(y, x, beta, eta, h, _colour_order(5, 6, False)[:15], u_black, temp)
        y = _sequential_sweep(y, x, beta, eta, h, _colour_order(5, 6, False)[15:], u_white, temp)
    assert torch.equal(res.images, y)
    assert not torch.equal(y, x)  # the sweeps moved the chain


def test_icm_batch_equals_one_image_at_a_time(gen):
    x = random_binary((5, 6, 6), gen)
    batch = denoise_binary(x, beta=0.9, eta=0.4)
    for n in range(5):
        one = denoise_binary(x[n : n + 1], beta=0.9, eta=0.4)
        assert torch.equal(one.images[0], batch.images[n])
        assert int(one.sweeps[0]) == int(batch.sweeps[n])


# ---- annealing against the exact MAP -----------------------------------------------------------
def test_annealing_finds_the_exact_map_of_3x3_images_and_icm_does_not_beat_it(gen):
    beta, eta, h = 0.8, 0.6, 0.1
    x = random_binary((6, 3, 3), gen)
    ann = denoise_binary(
        x, method="anneal", beta=beta, eta=eta, h=h, sweeps=400, schedule=(3.0, 0.02),
        generator=gen,
    )  # fmt: skip
    icm = denoise_binary(x, method="icm", beta=beta, eta=eta, h=h)
    for n in range(6):
        ys, e = exact_energies(x[n], beta, eta, h)
        e_min = float(e.min())
        assert float(ann.energies[-1, n]) == pytest.approx(e_min, abs=1e-9)
        if int((e < e_min + 1e-9).sum()) == 1:  # unique MAP: the images agree, not just E
            assert torch.equal(ann.images[n], ys[int(e.argmin())])
        assert float(icm.energies[-1, n]) >= e_min - 1e-9


def test_icm_sticks_where_annealing_reaches_the_minimum():
    # x = a bright left column: every pixel already agrees with its local field (ICM's start is
    # a fixed point, E = −9η − 6β = −18), while the all-dark image has E = −3η − 12β = −21.
    x = torch.zeros(1, 3, 3, dtype=torch.long)
    x[0, :, 0] = 1
    beta, eta = 1.5, 1.0
    _, e = exact_energies(x[0], beta, eta, 0.0)
    icm = denoise_binary(x, beta=beta, eta=eta)
    ann = denoise_binary(
        x, method="anneal", beta=beta, eta=eta, sweeps=300,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert torch.equal(icm.images, x) and float(icm.energies[-1, 0]) == pytest.approx(-18.0)
    assert float(e.min()) <= -21.0
    assert float(ann.energies[-1, 0]) == pytest.approx(float(e.min()), abs=1e-9)


def test_heat_bath_samples_the_boltzmann_law_at_fixed_temperature():
    # Constant-T "annealing" without polish is Gibbs sampling of p_T ∝ exp(−E/T): 20 000 chains
    # of one 2×3 image against the exact law over its 64 labelings.
    beta, eta, h, temp, n = 0.5, 0.4, 0.1, 1.5, 20_000
    x1 = torch.tensor([[1, 0, 1], [0, 0, 1]])
    ys, e = exact_energies(x1, beta, eta, h)
    p = torch.softmax(-e / temp, dim=0)
    res = denoise_binary(
        x1.expand(n, 2, 3), method="anneal", beta=beta, eta=eta, h=h,
        schedule=torch.full((30,), temp), polish=False, keep_best=False,
        generator=torch.Generator().manual_seed(1),
    )  # fmt: skip
    code = (res.images.flatten(1) * (2 ** torch.arange(5, -1, -1))).sum(1)
    freq = torch.bincount(code, minlength=64).double() / n
    # ys enumerates itertools.product order = binary code order, so freq[k] ↔ ys[k]
    tv = 0.5 * float((freq - p).abs().sum())
    # exact draws of the same size have E TV ≈ ½Σ√(2pₖ(1−pₖ)/(πn)); 2× leaves room for chance
    floor = 0.5 * float(torch.sqrt(2 * p * (1 - p) / (math.pi * n)).sum())
    assert tv < 2.0 * floor, (tv, floor)
    # per-pixel marginals P(yᵢ = 1) from the enumeration; 20 000 independent chains:
    # s.e. ≤ √(0.25/20 000) ≈ 0.0035, so 4 s.e. ≈ 0.014
    marg = (p[:, None, None] * ys.double()).sum(0)
    emp = res.images.double().mean(0)
    assert float((emp - marg).abs().max()) < 4 * math.sqrt(0.25 / n), (emp, marg)


def test_annealing_is_reproducible_from_the_generator(gen):
    x = random_binary((3, 8, 8), gen)
    a, b = (
        denoise_binary(x, method="anneal", beta=0.7, eta=0.5, sweeps=30,
                       generator=torch.Generator().manual_seed(9))
        for _ in range(2)
    )  # fmt: skip
    assert torch.equal(a.images, b.images) and torch.equal(a.energies, b.energies)
    assert a.energies.shape[0] == 1 + a.info["sweeps_run"] and a.info["sweeps_run"] >= 30
    assert bool((a.sweeps >= 30).all()) and bool(a.converged.all())  # the polish ran to the end


def test_geometric_schedule_runs_from_t0_to_tmin():
    temps = geometric_temperatures(4.0, 0.1, 5)
    torch.testing.assert_close(temps, 4.0 * (0.025 ** (torch.arange(5.0) / 4)).double())


# ---- denoising digits --------------------------------------------------------------------------
def test_both_methods_improve_pixel_accuracy_of_a_corrupted_upscaled_digit():
    y = upscaled_digits(4)  # (4, 32, 32)
    p, beta = 0.2, 0.7
    x = flip_pixels(y, p, generator=torch.Generator().manual_seed(0))
    before = float(pixel_accuracy(x, y).mean())
    eta = eta_from_flip_rate(p)
    icm = denoise_binary(x, beta=beta, eta=eta)
    anns = [
        denoise_binary(
            x, method="anneal", beta=beta, eta=eta, generator=torch.Generator().manual_seed(k)
        )
        for k in range(3)
    ]
    for name, res in [("icm", icm), *(("anneal", a) for a in anns)]:
        after = float(pixel_accuracy(res.images, y).mean())
        # ~820 flipped pixels of 4096; the smoothing prior must repair more than half of them
        assert after > before + 0.1, (name, before, after)
    # both minimise one energy; annealing escapes ICM's local minima (≈ 20 lower per image here,
    # not on every image: the mean over 3 seeds × 4 images is the claim)
    e_ann = torch.stack([a.energies[-1] for a in anns]).mean()
    assert float(e_ann) < float(icm.energies[-1].mean()), (e_ann, icm.energies[-1])


# ---- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, match",
    [
        (lambda x: denoise_binary(x * 0.5, beta=1.0, eta=1.0), "binary"),
        (lambda x: denoise_binary(x[0], beta=1.0, eta=1.0), "shape"),
        (lambda x: denoise_binary(x[None], beta=1.0, eta=1.0), "shape"),
        (lambda x: denoise_binary(x, beta=1.0, eta=1.0, sweeps=-1), "sweeps"),
        (lambda x: denoise_binary(x, method="anneal", beta=1.0, eta=1.0, sweeps=-3), "sweeps"),
        (lambda x: denoise_binary(x, method="gibbs", beta=1.0, eta=1.0), "method"),
        (lambda x: denoise_binary(x, beta=-1.0, eta=1.0), "beta"),
        (lambda x: denoise_binary(x, beta=1.0, eta=math.inf), "eta"),
        (lambda x: denoise_binary(x, method="anneal", beta=1, eta=1, schedule=(0.1, 1.0)), "T₀"),
        (lambda x: mrf_energy(x, x[:, :2], beta=1.0, eta=1.0), "shape"),
        (lambda x: flip_pixels(x, 0.0, generator=None), "flip rate"),
        (lambda x: flip_pixels(x, 0.5, generator=None), "flip rate"),
        (lambda x: flip_pixels(x, -0.1, generator=None), "flip rate"),
        (lambda x: eta_from_flip_rate(0.7), "flip rate"),
        (lambda x: pixel_accuracy(x + 1, x), "binary"),
        (lambda x: denoise_binary(x.tolist(), beta=1.0, eta=1.0), "Tensor"),
        (lambda x: denoise_binary(x, beta=1.0, eta=1.0, sweeps=True), "sweeps"),
        (lambda x: denoise_binary(x, beta=1.0, eta=1.0, polish_sweeps=-1), "polish_sweeps"),
        (lambda x: denoise_binary(x, beta=1.0, eta=1.0, h=math.nan), "h"),
        (lambda x: denoise_binary(x, method="anneal", beta=1, eta=1, schedule=(3.0,)), "schedule"),
        (
            lambda x: denoise_binary(x, method="anneal", beta=1, eta=1, schedule=("a", 1)),
            "schedule",
        ),
        (
            lambda x: denoise_binary(
                x, method="anneal", beta=1, eta=1, schedule=torch.tensor([1.0, 0.0])
            ),
            "temperatures",
        ),
        (
            lambda x: denoise_binary(
                x, method="anneal", beta=1, eta=1, sweeps=3, schedule=torch.ones(5)
            ),
            "sweeps",
        ),
        (lambda x: local_field(x, x[:, :, :3], beta=1.0, eta=1.0), "shape"),
    ],
)
def test_bad_input_is_a_one_line_scorelab_error(call, match):
    x = torch.ones(2, 4, 4)  # binary; x·0.5 and x + 1 are not
    with pytest.raises(ScorelabError, match=match) as err:
        call(x)
    assert "\n" not in str(err.value)


# ---- the experiment ----------------------------------------------------------------------------
def test_experiment_small_writes_tables_and_figures(tmp_path):
    from scorelab.experiments import get_experiment

    exp = get_experiment("seed002-mrf")
    res = exp.run(tmp_path, size="small", seed=0)
    assert res["title"] == exp.title and res["seed_ref"] == exp.seed_ref
    assert res["summary"] and all(isinstance(line, str) for line in res["summary"])
    json.dumps(res, allow_nan=False)
    for tab in res["tables"].values():
        assert tab["rows"] and all(len(r) == len(tab["columns"]) for r in tab["rows"])
    names = {p.name for p in (tmp_path / "figures").glob("*.png")}
    assert names == {f"seed002-mrf_{w}.png" for w in ("examples", "accuracy", "energy")}
    assert all((tmp_path / "figures" / n).read_bytes()[:8] == PNG_MAGIC for n in names)
    acc = res["tables"]["accuracy"]
    col = acc["columns"].index
    for row in acc["rows"]:
        if row[col("size")] == "32×32":  # smooth regions: both solvers must repair pixels
            assert row[col("ICM")] > row[col("corrupted")]
            assert row[col("annealing")] > row[col("corrupted")]
