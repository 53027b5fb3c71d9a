"""Image datasets and I/O: sklearn digits, MNIST IDX, .npz arrays, PNG folders; dequantisation.

Nothing is downloaded. Loaded images are (N, C, H, W) float32 in [0, 1], stored as v/(L−1) for
raw integer values v ∈ {0, …, L−1}: deterministic, for classifiers and display. Training batches
are dequantised per batch (`dequantize_scaled`), x = (v + u)/L with u ~ U(0, 1) (Theis, van den
Oord & Bethge 2016). See docs/images.md.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from scorelab._utils import ScorelabError

IDX_IMAGES_MAGIC = 0x00000803  # uint8, 3 dims (N, rows, cols)
IDX_LABELS_MAGIC = 0x00000801  # uint8, 1 dim (N,)
SPLITS = ("train", "test", "all")


@dataclass(frozen=True)
class ImageData:
    """Images (N, C, H, W) float32 in [0, 1] = v/(levels−1), optional int64 labels (N,).

    levels: number of intensity levels of the raw data (17 for digits, 256 for 8-bit files),
    or None for float data that was continuous on disk (then there is nothing to dequantise).
    """

    images: Tensor
    labels: Tensor | None
    levels: int | None
    source: str

    def __post_init__(self) -> None:
        x = self.images
        if x.ndim != 4 or x.dtype != torch.float32:
            raise ScorelabError(
                f"{self.source}: images must be float32 (N, C, H, W), got "
                f"{x.dtype} {tuple(x.shape)}"
            )
        if self.labels is not None and (
            self.labels.shape != (x.shape[0],) or self.labels.dtype != torch.int64
        ):
            raise ScorelabError(
                f"{self.source}: labels must be int64 of shape ({x.shape[0]},), got "
                f"{self.labels.dtype} {tuple(self.labels.shape)}"
            )
        if self.levels is not None and self.levels < 2:
            raise ScorelabError(f"{self.source}: levels must be ≥ 2, got {self.levels}")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def subset(self, index: Tensor, tag: str = "") -> ImageData:
        """The images (and labels) at `index`; `tag` is appended to the source name."""
        return replace(
            self,
            images=self.images[index],
            labels=None if self.labels is None else self.labels[index],
            source=f"{self.source}{tag}",
        )


# --------------------------------------------------------------------------- checks


def check_images(arr, name: str, *, levels: int | None = None) -> tuple[np.ndarray, int | None]:
    """(N, C, H, W) float32 in [0, 1] and the level count, from an (N, C, H, W) numeric array.

    Integer arrays hold raw values 0..levels−1 (levels defaults to 256, 8-bit) and are scaled
    by 1/(levels−1); float arrays must already lie in [0, 1] (levels None, unless given, in which
    case every x·(levels−1) must be an integer). Anything else is a one-line ScorelabError.
    """
    a = np.asarray(arr)
    if a.dtype.kind not in "fiu":
        raise ScorelabError(f"{name}: images must be numbers, got dtype {a.dtype}")
    if a.ndim != 4:
        raise ScorelabError(f"{name}: images must have 4 dims (N, C, H, W), got shape {a.shape}")
    if a.size == 0:
        raise ScorelabError(f"{name}: no images (shape {a.shape})")
    if a.dtype.kind in "iu":
        top = (levels or 256) - 1
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > top:
            raise ScorelabError(
                f"{name}: integer pixel values must lie in 0..{top}, got {lo}..{hi}"
            )
        return (a.astype(np.float32) / np.float32(top)), (levels or 256)
    bad = ~np.isfinite(a)
    if bad.any():
        first = np.unravel_index(int(np.flatnonzero(bad)[0]), a.shape)[0]
        raise ScorelabError(
            f"{name}: {int(bad.sum())} pixel values are NaN or inf (first in image {first})"
        )
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > 1.0:
        raise ScorelabError(
            f"{name}: float pixel values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]; "
            "rescale them or store raw integers (uint8)"
        )
    if levels is not None:
        v = a.astype(np.float64) * (levels - 1)
        if np.abs(v - np.round(v)).max() > 1e-4:
            raise ScorelabError(f"{name}: values are not multiples of 1/{levels - 1}")
    return a.astype(np.float32), levels


def check_labels(arr, n: int, name: str) -> np.ndarray:
    """(n,) non-negative integer labels as int64; otherwise a one-line ScorelabError."""
    y = np.asarray(arr)
    if y.dtype.kind not in "iu":
        raise ScorelabError(f"{name}: labels must be integers, got dtype {y.dtype}")
    if y.shape != (n,):
        raise ScorelabError(f"{name}: {y.shape} labels for {n} images (expected ({n},))")
    if n and int(y.min()) < 0:
        raise ScorelabError(f"{name}: labels must be ≥ 0, got {int(y.min())}")
    return y.astype(np.int64)


def _make(images: np.ndarray, labels, levels, source: str) -> ImageData:
    y = None if labels is None else torch.from_numpy(check_labels(labels, len(images), source))
    return ImageData(torch.from_numpy(np.ascontiguousarray(images)), y, levels, source)


# --------------------------------------------------------------------------- splits


def split_indices(
    labels: Tensor | None, n: int, split: str, test_fraction: float, seed: int
) -> Tensor:
    """Sorted indices of a seeded split: per class (stratified) when labels are given.

    Within each class c (or over all n items without labels), a torch.randperm seeded with
    `seed` orders the items and the first round(test_fraction·n_c) go to the test split.
    """
    if split not in SPLITS:
        raise ScorelabError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split == "all":
        return torch.arange(n)
    if not 0.0 < test_fraction < 1.0:
        raise ScorelabError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    g = torch.Generator().manual_seed(int(seed))
    groups = (
        [torch.arange(n)]
        if labels is None
        else [torch.nonzero(labels == c).flatten() for c in torch.unique(labels)]
    )
    test = []
    for idx in groups:
        k = round(test_fraction * len(idx))
        test.append(idx[torch.randperm(len(idx), generator=g)[:k]])
    is_test = torch.zeros(n, dtype=torch.bool)
    is_test[torch.cat(test)] = True
    return torch.nonzero(is_test if split == "test" else ~is_test).flatten()


def split_images(
    data: ImageData, split: str = "train", test_fraction: float = 0.2, seed: int = 0
) -> ImageData:
    """The train, test or all part of `data` (seeded, stratified by label when there are labels)."""
    idx = split_indices(data.labels, len(data), split, test_fraction, seed)
    if split == "all":
        return data
    if len(idx) == 0:
        raise ScorelabError(f"{data.source}: the {split} split is empty ({len(data)} images)")
    return data.subset(idx, f":{split}")


# --------------------------------------------------------------------------- sources


def load_digits(split: str = "train", test_fraction: float = 0.2, seed: int = 0) -> ImageData:
    """scikit-learn's 8×8 handwritten digits (1797 images, values 0..16, levels 17), no download.

    split: "train", "test" (held out: classifier accuracy and the FD floor use it) or "all";
    stratified by digit and seeded (see `split_indices`).
    """
    from sklearn.datasets import load_digits as _sk_digits

    d = _sk_digits()
    raw = np.rint(d.images).astype(np.int64)[:, None]  # (1797, 1, 8, 8), 0..16
    x, levels = check_images(raw, "digits", levels=17)
    return split_images(_make(x, d.target, levels, "digits"), split, test_fraction, seed)


def _read_bytes(path: Path) -> bytes:
    if not path.is_file():
        raise ScorelabError(f"{path}: file does not exist")
    try:
        if path.suffix.lower() == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise ScorelabError(f"{path}: cannot read ({err})") from None


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """A uint8 IDX array (MNIST format, big-endian header) from a plain or .gz file."""
    path = Path(path)
    buf = _read_bytes(path)
    if len(buf) == 0:
        raise ScorelabError(f"{path}: file is empty")
    if len(buf) < 4:
        raise ScorelabError(f"{path}: truncated IDX header ({len(buf)} bytes)")
    (got,) = struct.unpack(">I", buf[:4])
    if got != magic:
        raise ScorelabError(
            f"{path}: magic number 0x{got:08X}, expected 0x{magic:08X} "
            f"(IDX uint8 {'images' if magic == IDX_IMAGES_MAGIC else 'labels'})"
        )
    ndim = magic & 0xFF
    head = 4 + 4 * ndim
    if len(buf) < head:
        raise ScorelabError(f"{path}: truncated IDX header ({len(buf)} of {head} bytes)")
    dims = struct.unpack(f">{ndim}I", buf[4:head])
    if any(d == 0 for d in dims):
        raise ScorelabError(f"{path}: IDX dims {dims} hold a zero")
    need = head + int(np.prod(dims, dtype=np.int64))
    if len(buf) != need:
        what = "truncated" if len(buf) < need else "has trailing bytes"
        raise ScorelabError(f"{path}: {what}: {len(buf)} bytes, dims {dims} need {need}")
    return np.frombuffer(buf, dtype=np.uint8, offset=head).reshape(dims)


def idx_labels_path(images_path: str | Path) -> Path | None:
    """The labels file beside an IDX images file, if present: 'images'→'labels', 'idx3'→'idx1'.

    train-images-idx3-ubyte[.gz] → train-labels-idx1-ubyte[.gz] (either compression).
    """
    p = Path(images_path)
    name = p.name.removesuffix(".gz")
    if "images" not in name:
        return None
    stem = name.replace("images", "labels").replace("idx3", "idx1")
    for cand in (p.with_name(stem), p.with_name(stem + ".gz")):
        if cand.is_file():
            return cand
    return None


def load_idx(images_path: str | Path, labels_path: str | Path | None = None) -> ImageData:
    """MNIST-format IDX images (magic 0x803, (N, rows, cols) uint8, levels 256), optional labels."""
    x = read_idx(images_path, IDX_IMAGES_MAGIC)
    y = None
    if labels_path is not None:
        y = read_idx(labels_path, IDX_LABELS_MAGIC)
        if len(y) != len(x):
            raise ScorelabError(
                f"{labels_path}: {len(y)} labels for {len(x)} images in {images_path}"
            )
    imgs, levels = check_images(x[:, None], str(images_path))
    return _make(imgs, y, levels, str(images_path))


def _channels_first(a: np.ndarray, name: str) -> np.ndarray:
    if a.ndim == 3:
        return a[:, None]
    if a.ndim != 4:
        raise ScorelabError(
            f"{name}: images must have shape (N, H, W), (N, H, W, C) or (N, C, H, W), got {a.shape}"
        )
    if a.shape[1] in (1, 3):
        return a  # channels-first wins a tie, e.g. (N, 3, 8, 3)
    if a.shape[3] in (1, 3):
        return np.moveaxis(a, 3, 1)
    raise ScorelabError(f"{name}: no channel axis of size 1 or 3 in shape {a.shape}")


def load_npz(path: str | Path, key: str | None = None) -> ImageData:
    """Images from a .npz: (N, H, W), (N, H, W, C) or (N, C, H, W), C ∈ {1, 3}; never unpickles.

    The image array is `key`, else 'images', 'x', 'X' or 'data', else the only non-label array.
    Labels come from 'labels' or 'y' when present. uint8 (or any integers in 0..255) → levels
    256; floats must lie in [0, 1] → levels None.
    """
    path = Path(path)
    if not path.is_file():
        raise ScorelabError(f"{path}: file does not exist")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = list(f.keys())
            label_keys = [k for k in ("labels", "y") if k in keys]
            if key is None:
                named = [k for k in ("images", "x", "X", "data") if k in keys]
                rest = [k for k in keys if k not in label_keys]
                if named:
                    key = named[0]
                elif len(rest) == 1:
                    key = rest[0]
                else:
                    raise ScorelabError(
                        f"{path}: holds arrays {keys}; name the images 'images' or pass key="
                    )
            if key not in keys:
                raise ScorelabError(f"{path}: no array {key!r} (it holds {keys})")
            a = f[key]
            y = f[label_keys[0]] if label_keys else None
    except (OSError, ValueError, EOFError, zlib.error) as err:
        raise ScorelabError(f"{path}: cannot read ({err})") from None
    name = f"{path}[{key}]"
    x, levels = check_images(_channels_first(a, name), name)
    return _make(x, y, levels, str(path))


def load_png_folder(path: str | Path) -> ImageData:
    """Every *.png in a folder (sorted by name), read with Pillow; all must share one size.

    Grayscale (L, 1-bit, LA) gives C = 1; RGB, RGBA (alpha dropped) and palette give C = 3;
    if the folder mixes both, grayscale images are repeated to 3 channels. 8-bit → levels 256.
    """
    from PIL import Image, UnidentifiedImageError

    folder = Path(path)
    if not folder.is_dir():
        raise ScorelabError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise ScorelabError(f"{folder}: no .png files")
    arrays: list[np.ndarray] = []
    for p in files:
        try:
            with Image.open(p) as im:
                mode = im.mode
                if mode in ("1", "L", "LA"):
                    a = np.asarray(im.convert("L"))
                elif mode in ("RGB", "RGBA", "P", "PA"):
                    a = np.asarray(im.convert("RGB"))
                else:
                    raise ScorelabError(f"{p}: PNG mode {mode} is not 8-bit grayscale or RGB(A)")
        except (OSError, UnidentifiedImageError, SyntaxError) as err:
            raise ScorelabError(f"{p}: cannot read PNG ({err})") from None
        if arrays and a.shape[:2] != arrays[0].shape[:2]:
            raise ScorelabError(
                f"{p}: size {a.shape[1]}×{a.shape[0]} differs from {files[0].name} "
                f"({arrays[0].shape[1]}×{arrays[0].shape[0]})"
            )
        arrays.append(a)
    if any(a.ndim == 3 for a in arrays):
        arrays = [a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a in arrays]
        stack = np.moveaxis(np.stack(arrays), 3, 1)
    else:
        stack = np.stack(arrays)[:, None]
    x, levels = check_images(stack, str(folder))
    return _make(x, None, levels, str(folder))


def load_images(
    spec: str | Path = "digits",
    *,
    split: str = "train",
    test_fraction: float = 0.2,
    seed: int = 0,
    key: str | None = None,
) -> ImageData:
    """Images from a spec: "digits", a .npz, a folder of PNGs, or an IDX file (.gz or not).

    An IDX images file picks up its labels file beside it (see `idx_labels_path`). Every source
    is then split as `split_images` does ("all" keeps everything, e.g. for MNIST's own
    train and t10k files).
    """
    s = str(spec)
    if s == "digits":
        return load_digits(split, test_fraction, seed)
    p = Path(s)
    if p.is_dir():
        data = load_png_folder(p)
    elif not p.exists():
        raise ScorelabError(f"{s}: no such file or folder (or use 'digits')")
    elif p.suffix.lower() == ".npz":
        data = load_npz(p, key)
    elif "idx" in p.name.lower() or "ubyte" in p.name.lower():
        data = load_idx(p, idx_labels_path(p))
    else:
        raise ScorelabError(
            f"{s}: not 'digits', a .npz, a folder of PNGs or an IDX file (*idx3-ubyte[.gz])"
        )
    return split_images(data, split, test_fraction, seed)


# --------------------------------------------------------------------------- dequantisation


def quantize(x: Tensor, levels: int) -> Tensor:
    """Raw integer values v = round(x·(levels−1)) (int64) of images stored as v/(levels−1)."""
    if not bool(torch.isfinite(x).all()) or float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise ScorelabError("quantize: images must be finite and lie in [0, 1]")
    return torch.round(x * (levels - 1)).long()


def dequantize(v: Tensor, levels: int, generator: torch.Generator | None) -> Tensor:
    """Uniform dequantisation x = (v + u)/levels, u ~ U(0, 1) per pixel (Theis et al. 2016).

    v holds integers in 0..levels−1; x (float32) lies in [v/levels, (v+1)/levels) ⊂ [0, 1).
    """
    if v.numel() and (
        float(v.min()) < 0 or float(v.max()) > levels - 1 or bool((v != torch.round(v)).any())
    ):
        raise ScorelabError(f"dequantize: values must be integers in 0..{levels - 1}")
    u = torch.rand(v.shape, generator=generator, dtype=torch.float64, device=v.device)
    x = ((v.double() + u) / levels).float()
    # float32 rounding can land exactly on (v+1)/levels; keep the cell half-open.
    top = torch.nextafter(((v.double() + 1) / levels).float(), torch.zeros((), device=v.device))
    return torch.minimum(x, top)


def dequantize_scaled(x: Tensor, levels: int | None, generator: torch.Generator | None) -> Tensor:
    """A training batch: images stored as v/(levels−1) → (v + u)/levels; x itself if levels None."""
    return x if levels is None else dequantize(quantize(x, levels), levels, generator)


def discretize(x: Tensor, levels: int) -> Tensor:
    """Inverse of `dequantize`: v = ⌊x·levels⌋ clamped to 0..levels−1 (int64), for model samples."""
    if not bool(torch.isfinite(x).all()):
        raise ScorelabError("discretize: samples hold NaN or inf")
    return torch.floor(x.double() * levels).clamp_(0, levels - 1).long()


def to_uint8(x) -> np.ndarray:
    """Images in [0, 1] (tensor or array) as uint8 round(255·x), clamped; NaN is an error."""
    a = x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x, float)
    if not np.isfinite(a).all():
        raise ScorelabError("to_uint8: images hold NaN or inf")
    return np.rint(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------- grids and PNGs


def tile_images(
    images, nrow: int | None = None, *, padding: int = 1, pad_value: float = 0.5
) -> np.ndarray:
    """(N, C, H, W) or (N, H, W) images in [0, 1] tiled into one (H', W', C) float array.

    nrow is the number of images per row (as in torchvision's make_grid), default ⌈√N⌉;
    H' = rows·H + (rows+1)·padding, W' = nrow·W + (nrow+1)·padding. Values are clamped to [0, 1].
    """
    a = images.detach().cpu().double().numpy() if isinstance(images, Tensor) else images
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or a.shape[0] == 0 or a.shape[1] not in (1, 3):
        raise ScorelabError(f"images must be (N, C, H, W) with C 1 or 3, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ScorelabError("images hold NaN or inf")
    n, c, h, w = a.shape
    ncol = int(nrow) if nrow else int(np.ceil(np.sqrt(n)))
    if ncol < 1:
        raise ScorelabError(f"nrow must be ≥ 1, got {nrow}")
    ncol = min(ncol, n)
    rows = -(-n // ncol)
    p = int(padding)
    grid = np.full((rows * h + (rows + 1) * p, ncol * w + (ncol + 1) * p, c), float(pad_value))
    for i in range(n):
        r, q = divmod(i, ncol)
        top, left = p + r * (h + p), p + q * (w + p)
        grid[top : top + h, left : left + w] = np.moveaxis(a[i], 0, 2)
    return np.clip(grid, 0.0, 1.0)


def save_png_grid(
    images,
    path: str | Path,
    nrow: int | None = None,
    *,
    scale: int = 1,
    padding: int = 1,
    pad_value: float = 0.5,
    overwrite: bool = False,
) -> Path:
    """Write a pixel-exact PNG of `tile_images(...)` (each pixel repeated scale×scale) atomically.

    Written with Pillow to a hidden temp file in the same folder, then hard-linked (no
    overwrite) or os.replace'd (overwrite=True) into place. An existing file is an error
    unless overwrite=True.
    """
    from PIL import Image

    path = Path(path)
    if path.exists() and not overwrite:
        raise ScorelabError(f"{path} exists; pass overwrite=True to replace it")
    if int(scale) < 1:
        raise ScorelabError(f"scale must be ≥ 1, got {scale}")
    grid = to_uint8(tile_images(images, nrow, padding=padding, pad_value=pad_value))
    grid = np.repeat(np.repeat(grid, int(scale), axis=0), int(scale), axis=1)
    img = Image.fromarray(grid[..., 0] if grid.shape[2] == 1 else grid)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        img.save(tmp, format="PNG")
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if path appeared meanwhile: never clobbers
            except FileExistsError:
                raise ScorelabError(f"{path} exists; pass overwrite=True to replace it") from None
            except OSError:  # no hard links on this file system
                if path.exists():
                    raise ScorelabError(f"{path} exists; pass overwrite=True") from None
                os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
