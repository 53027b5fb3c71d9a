"""Image datasets and I/O: digits split, IDX/npz/PNG readers, dequantisation, PNG grids."""

from __future__ import annotations

import gzip
import math
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from scorelab._utils import ScorelabError
from scorelab.images import (
    ImageData,
    dequantize,
    dequantize_scaled,
    discretize,
    load_digits,
    load_idx,
    load_images,
    load_npz,
    load_png_folder,
    quantize,
    save_png_grid,
    tile_images,
    to_uint8,
)


def one_line_error(excinfo, *words: str) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)
    return msg


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits():
    return {s: load_digits(s) for s in ("train", "test", "all")}


def test_digits_shapes_range_levels(digits):
    d = digits["all"]
    assert isinstance(d, ImageData)
    assert d.images.shape == (1797, 1, 8, 8) and d.images.dtype == torch.float32
    assert d.labels is not None and d.labels.dtype == torch.int64
    assert float(d.images.min()) == 0.0 and float(d.images.max()) == 1.0
    assert d.levels == 17
    # stored as v/16: every value is an exact multiple of 1/16
    v = d.images * 16
    assert torch.equal(v, torch.round(v))


def test_digits_split_sizes_disjoint_stratified(digits):
    from scorelab.images import split_indices

    tr, te, al = digits["train"], digits["test"], digits["all"]
    counts = torch.bincount(al.labels, minlength=10)
    assert len(te) == sum(round(0.2 * int(c)) for c in counts) == 359  # per-class rounding
    assert len(tr) + len(te) == 1797
    i_tr = split_indices(al.labels, 1797, "train", 0.2, 0)
    i_te = split_indices(al.labels, 1797, "test", 0.2, 0)
    assert len(set(i_tr.tolist()) & set(i_te.tolist())) == 0
    assert sorted(i_tr.tolist() + i_te.tolist()) == list(range(1797))
    assert torch.equal(tr.images, al.images[i_tr]) and torch.equal(te.labels, al.labels[i_te])
    for d in (tr, te):
        assert set(d.labels.tolist()) == set(range(10))
    frac = torch.bincount(te.labels, minlength=10).double() / counts.double()
    assert float((frac - 0.2).abs().max()) < 0.01


def test_digits_split_seeded():
    a, b, c = load_digits("test", seed=0), load_digits("test", seed=0), load_digits("test", seed=1)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert load_images("digits", split="test").images.equal(a.images)


def test_bad_split_name():
    with pytest.raises(ScorelabError) as e:
        load_digits("validation")
    one_line_error(e, "validation")


# --------------------------------------------------------------------------- IDX


def write_idx(path, arr: np.ndarray, magic: int | None = None, cut: int = 0, gz: bool = False):
    arr = np.asarray(arr, dtype=np.uint8)
    magic = (0x0800 | arr.ndim) if magic is None else magic
    data = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    if cut:
        data = data[:-cut]
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.fixture
def idx_arrays():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8), np.array([3, 1, 4, 1, 5])


@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, idx_arrays, gz):
    x, y = idx_arrays
    suf = ".gz" if gz else ""
    ip = write_idx(tmp_path / f"train-images-idx3-ubyte{suf}", x, gz=gz)
    lp = write_idx(tmp_path / f"train-labels-idx1-ubyte{suf}", y, gz=gz)
    d = load_idx(ip, lp)
    assert d.images.shape == (5, 1, 4, 3) and d.levels == 256
    assert np.array_equal(quantize(d.images, 256)[:, 0].numpy(), x)
    assert np.array_equal(to_uint8(d.images)[:, 0], x)
    assert d.labels.tolist() == y.tolist()
    # dispatch finds the labels beside the images file
    auto = load_images(ip, split="all")
    assert auto.labels is not None and auto.labels.tolist() == y.tolist()
    assert torch.equal(auto.images, d.images)


def test_idx_without_labels(tmp_path, idx_arrays):
    x, _ = idx_arrays
    d = load_images(write_idx(tmp_path / "imgs.idx3-ubyte", x), split="all")
    assert d.labels is None and len(d) == 5


def test_idx_bad_magic(tmp_path, idx_arrays):
    x, _ = idx_arrays
    p = write_idx(tmp_path / "a-images-idx3-ubyte", x, magic=0x00000802)
    with pytest.raises(ScorelabError) as e:
        load_idx(p)
    one_line_error(e, str(p), "0x00000802", "0x00000803")


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated(tmp_path, idx_arrays, gz):
    x, _ = idx_arrays
    p = write_idx(tmp_path / ("t-images-idx3-ubyte" + (".gz" if gz else "")), x, cut=7, gz=gz)
    with pytest.raises(ScorelabError) as e:
        load_idx(p)
    one_line_error(e, str(p), "truncated")


def test_idx_truncated_gzip_stream(tmp_path, idx_arrays):
    x, _ = idx_arrays
    p = write_idx(tmp_path / "g-images-idx3-ubyte.gz", x, gz=True)
    p.write_bytes(p.read_bytes()[:-12])  # cut the gzip stream itself
    with pytest.raises(ScorelabError) as e:
        load_idx(p)
    one_line_error(e, str(p))


def test_idx_empty_file(tmp_path):
    p = tmp_path / "e-images-idx3-ubyte"
    p.write_bytes(b"")
    with pytest.raises(ScorelabError) as e:
        load_idx(p)
    one_line_error(e, str(p), "empty")


def test_idx_count_mismatch(tmp_path, idx_arrays):
    x, y = idx_arrays
    ip = write_idx(tmp_path / "m-images-idx3-ubyte", x)
    lp = write_idx(tmp_path / "m-labels-idx1-ubyte", y[:4])
    with pytest.raises(ScorelabError) as e:
        load_idx(ip, lp)
    one_line_error(e, str(lp), "4 labels", "5 images")


def test_idx_labels_file_as_images(tmp_path, idx_arrays):
    _, y = idx_arrays
    p = write_idx(tmp_path / "l-labels-idx1-ubyte", y)
    with pytest.raises(ScorelabError) as e:
        load_idx(p)
    one_line_error(e, "0x00000801", "expected 0x00000803")


# --------------------------------------------------------------------------- npz


@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NCHW"])
def test_npz_layouts(tmp_path, layout):
    rng = np.random.default_rng(1)
    chw = rng.integers(0, 256, size=(6, 3, 5, 7), dtype=np.uint8)
    if layout == "NHW":
        chw = chw[:, :1]
        arr = chw[:, 0]
    elif layout == "NHWC":
        arr = np.moveaxis(chw, 1, 3)
    else:
        arr = chw
    y = np.arange(6) % 2
    p = tmp_path / f"{layout}.npz"
    np.savez(p, images=arr, labels=y)
    d = load_npz(p)
    assert d.images.shape == chw.shape and d.levels == 256
    assert np.array_equal(to_uint8(d.images), chw)
    assert d.labels.tolist() == y.tolist()


def test_npz_float_and_y_key(tmp_path):
    x = np.linspace(0, 1, 2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    p = tmp_path / "f.npz"
    np.savez(p, x=x, y=np.array([0, 1]))
    d = load_npz(p)
    assert d.levels is None and torch.equal(d.images[:, 0], torch.from_numpy(x))
    assert d.labels.tolist() == [0, 1]
    assert dequantize_scaled(d.images, d.levels, None) is d.images  # continuous: untouched


@pytest.mark.parametrize(
    "arr, words",
    [
        (np.full((2, 4, 4), np.nan, np.float32), ["NaN"]),
        (np.full((2, 4, 4), 2.0, np.float32), ["[0, 1]"]),
        (np.full((2, 4, 4), 300, np.int32), ["0..255"]),
        (np.zeros((2, 4), np.uint8), ["shape"]),
        (np.zeros((0, 4, 4), np.uint8), ["no images"]),
        (np.full((2, 4, 4), "a"), ["dtype"]),
        (np.zeros((2, 5, 4, 4), np.uint8), ["channel"]),
    ],
)
def test_npz_bad_arrays(tmp_path, arr, words):
    p = tmp_path / "bad.npz"
    np.savez(p, images=arr)
    with pytest.raises(ScorelabError) as e:
        load_npz(p)
    one_line_error(e, str(p), *words)


def test_npz_bad_labels_and_key(tmp_path):
    p = tmp_path / "l.npz"
    np.savez(p, images=np.zeros((3, 4, 4), np.uint8), labels=np.zeros(2, np.int64))
    with pytest.raises(ScorelabError) as e:
        load_npz(p)
    one_line_error(e, "labels")
    with pytest.raises(ScorelabError) as e:
        load_npz(p, key="nope")
    one_line_error(e, "nope")
    q = tmp_path / "not.npz"
    q.write_bytes(b"garbage")
    with pytest.raises(ScorelabError) as e:
        load_npz(q)
    one_line_error(e, str(q))


# --------------------------------------------------------------------------- PNG folders


def test_png_folder_gray_pixel_exact(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.integers(0, 256, size=(4, 6, 5), dtype=np.uint8)
    for i, a in enumerate(x):
        Image.fromarray(a, mode="L").save(tmp_path / f"img{i:02d}.png")
    (tmp_path / "notes.txt").write_text("ignored")
    d = load_png_folder(tmp_path)
    assert d.images.shape == (4, 1, 6, 5) and d.levels == 256 and d.labels is None
    assert np.array_equal(to_uint8(d.images)[:, 0], x)
    assert torch.equal(load_images(tmp_path, split="all").images, d.images)


def test_png_folder_rgba_drops_alpha_and_mixed_promotes(tmp_path):
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, size=(4, 4, 4), dtype=np.uint8)
    gray = rng.integers(0, 256, size=(4, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    Image.fromarray(gray, mode="L").save(tmp_path / "b.png")
    d = load_png_folder(tmp_path)
    assert d.images.shape == (2, 3, 4, 4)
    u = to_uint8(d.images)
    assert np.array_equal(u[0], np.moveaxis(rgba[..., :3], 2, 0))
    assert all(np.array_equal(u[1, c], gray) for c in range(3))


def test_png_folder_size_mismatch_names_file(tmp_path):
    for name, shape in [("a.png", (4, 4)), ("b.png", (4, 4)), ("c.png", (5, 4)), ("d.png", (6, 6))]:
        Image.fromarray(np.zeros(shape, np.uint8), mode="L").save(tmp_path / name)
    with pytest.raises(ScorelabError) as e:
        load_png_folder(tmp_path)
    msg = one_line_error(e, "c.png", "a.png")
    assert "d.png" not in msg


def test_png_folder_empty_and_corrupt(tmp_path):
    with pytest.raises(ScorelabError) as e:
        load_png_folder(tmp_path)
    one_line_error(e, "no .png")
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(ScorelabError) as e:
        load_png_folder(tmp_path)
    one_line_error(e, "x.png")


def test_load_images_unknown(tmp_path):
    with pytest.raises(ScorelabError) as e:
        load_images(tmp_path / "missing.npz")
    one_line_error(e, "missing.npz")
    p = tmp_path / "data.csv"
    p.write_text("1,2\n")
    with pytest.raises(ScorelabError) as e:
        load_images(p)
    one_line_error(e, "data.csv")


# --------------------------------------------------------------------------- dequantisation


def test_dequantize_cells_mean_and_determinism():
    levels, n = 17, 20000
    v = torch.arange(levels).repeat(n, 1)  # (n, 17): n draws per value
    x = dequantize(v, levels, torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32
    lo = (v.double() / levels).float()
    hi = ((v.double() + 1) / levels).float()
    assert bool((x >= lo).all()) and bool((x < hi).all())
    assert torch.equal(discretize(x, levels), v)
    # mean of n uniforms on a cell of width 1/L: s.e. = (1/L)/√(12n) ≈ 1.2e-4; 5 s.e. is a
    # false-alarm rate of ~6e-7 per value, and a biased formula (v/L or v/(L−1)) is off by
    # ≥ 0.5/L ≈ 0.03, far outside.
    se = (1 / levels) / math.sqrt(12 * n)
    err = x.double().mean(0) - (torch.arange(levels).double() + 0.5) / levels
    assert float(err.abs().max()) < 5 * se
    again = dequantize(v, levels, torch.Generator().manual_seed(0))
    other = dequantize(v, levels, torch.Generator().manual_seed(1))
    assert torch.equal(x, again) and not torch.equal(x, other)


def test_dequantize_half_open_at_float32_edge():
    # (v + u)/L with u just below 1 rounds up to (v+1)/L in float32 (for v = 255, when
    # u > 1 − 2⁻¹⁷: ~15 of 2e6 draws); the result must stay below the cell's top.
    n, g = 2_000_000, torch.Generator().manual_seed(0)
    v = torch.full((n,), 255)
    y = dequantize(v, 256, g)
    u = torch.rand(n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    naive = ((255 + u) / 256).float()
    assert int((naive >= 1.0).sum()) > 0  # the edge case occurs in this draw
    assert float(y.max()) < 1.0 and bool((discretize(y, 256) == 255).all())


def test_dequantize_scaled_round_trip_digits(digits):
    d = digits["test"]
    g = torch.Generator().manual_seed(0)
    x = dequantize_scaled(d.images, d.levels, g)
    assert float(x.min()) >= 0.0 and float(x.max()) < 1.0
    assert torch.equal(discretize(x, d.levels), quantize(d.images, d.levels))


def test_dequantize_rejects_bad_values():
    with pytest.raises(ScorelabError):
        dequantize(torch.tensor([0.5]), 17, None)
    with pytest.raises(ScorelabError):
        dequantize(torch.tensor([17]), 17, None)
    with pytest.raises(ScorelabError):
        to_uint8(torch.tensor([float("nan")]))
    with pytest.raises(ScorelabError):
        discretize(torch.tensor([float("inf")]), 17)


def test_to_uint8_rounds_and_clamps():
    x = torch.tensor([-0.1, 0.0, 0.5, 127.4 / 255, 1.0, 1.2])
    assert to_uint8(x).tolist() == [0, 0, 128, 127, 255, 255]


# --------------------------------------------------------------------------- grids


def test_tile_images_layout():
    x = torch.stack([torch.full((1, 2, 3), i / 4) for i in range(5)])
    g = tile_images(x, nrow=3, padding=1, pad_value=0.0)
    assert g.shape == (2 * 2 + 3, 3 * 3 + 4, 1)
    assert g[1, 1, 0] == 0.0 and g[1, 5, 0] == 0.25 and g[4, 1, 0] == 0.75 and g[4, 5, 0] == 1.0
    assert g[4, 9, 0] == 0.0  # the sixth cell is padding


def test_save_png_grid_size_and_no_overwrite(tmp_path, digits):
    x = digits["test"].images[:10]
    p = save_png_grid(x, tmp_path / "sub" / "grid.png", nrow=4, scale=3)
    with Image.open(p) as im:
        # 3 rows × 4 cols of 8×8, padding 1, then ×3
        assert im.size == ((4 * 8 + 5) * 3, (3 * 8 + 4) * 3) and im.mode == "L"
        a = np.asarray(im)
    assert np.array_equal(a[3:27:3, 3:27:3], to_uint8(x[0, 0]))
    before = p.read_bytes()
    with pytest.raises(ScorelabError) as e:
        save_png_grid(x[:4], p)
    one_line_error(e, "grid.png", "overwrite")
    assert p.read_bytes() == before
    save_png_grid(x[:4], p, overwrite=True)
    with Image.open(p) as im:
        assert im.size == (2 * 8 + 3, 2 * 8 + 3)
    assert sorted(q.name for q in p.parent.iterdir()) == ["grid.png"]  # no temp files left


def test_save_png_grid_rgb(tmp_path):
    x = torch.rand(3, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    p = save_png_grid(x, tmp_path / "rgb.png", nrow=3, padding=0)
    with Image.open(p) as im:
        assert im.mode == "RGB" and im.size == (12, 4)
        a = np.asarray(im)
    assert np.array_equal(a[:, 4:8], np.moveaxis(to_uint8(x[1]), 0, 2))


def test_plots_image_grid(digits):
    import matplotlib.pyplot as plt

    from scorelab.plots import image_grid

    fig = image_grid(digits["train"].images[:16], title="digits")
    ax = fig.axes[0]
    assert ax.get_title() == "digits"
    arr = ax.get_images()[0].get_array()
    assert arr.shape == (4 * 8 + 5, 4 * 8 + 5)
    plt.close(fig)
