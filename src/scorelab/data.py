"""Datasets: built-in targets by name, user arrays (.npy / .npz / .csv of shape (N, d)), and
images with a held-out split (`load_image_data`, over scorelab.images).

Nothing is downloaded: targets are sampled, user files are read from disk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from scorelab._utils import ScorelabError, make_generator


def load_array(path: str | Path) -> Tensor:
    """A user data file as a finite float32 tensor of shape (N, d); never unpickles.

    .npy: one array; .npz: the array named `data`, `x` or `samples`, or the only array;
    .csv: comma-separated numbers, one point per row (a header row of names is skipped).
    """
    path = Path(path)
    if not path.is_file():
        raise ScorelabError(f"data file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as f:
                keys = list(f.keys())
                named = [k for k in ("data", "x", "samples") if k in keys]
                if named:
                    arr = f[named[0]]
                elif len(keys) == 1:
                    arr = f[keys[0]]
                else:
                    raise ScorelabError(
                        f"{path} holds arrays {keys}; name the data array 'data', 'x' or 'samples'"
                    )
        elif suffix == ".csv":
            arr = _read_csv(path)
        else:
            raise ScorelabError(f"data file {path} must be .npy, .npz or .csv")
    except (OSError, ValueError, EOFError) as err:  # EOFError: an empty or cut-off .npy
        raise ScorelabError(f"cannot read {path}: {err or 'the file is empty'}") from None
    return check_data(arr, str(path))


def _read_csv(path: Path) -> np.ndarray:
    rows = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        raise ScorelabError(f"{path} is empty")
    parsed = []
    for i, line in enumerate(rows):
        cells = [c.strip() for c in line.split(",")]
        try:
            parsed.append([float(c) for c in cells])
        except ValueError:
            if i == 0:
                continue  # a header row
            raise ScorelabError(f"{path} line {i + 1}: not a number in '{line[:60]}'") from None
    if not parsed:
        raise ScorelabError(f"{path} has no numeric rows")
    widths = {len(r) for r in parsed}
    if len(widths) != 1:
        raise ScorelabError(f"{path} has rows of different lengths {sorted(widths)}")
    return np.asarray(parsed, dtype=np.float64)


def check_data(arr, name: str) -> Tensor:
    """(N, d) finite numbers with N ≥ 1, as float32; otherwise a one-line ScorelabError."""
    a = np.asarray(arr)
    if a.dtype.kind not in "fiu":
        raise ScorelabError(f"{name}: data must be numbers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ScorelabError(f"{name}: data must have shape (N, d), got {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ScorelabError(f"{name}: data is empty (shape {a.shape})")
    bad = ~np.isfinite(a).all(axis=1)
    if bad.any():
        raise ScorelabError(
            f"{name}: {int(bad.sum())} of {a.shape[0]} rows hold NaN or inf (first: row "
            f"{int(np.flatnonzero(bad)[0])})"
        )
    return torch.as_tensor(a, dtype=torch.float32)


def load_training_data(data_cfg, seed: int):
    """(data (N, d), target or None): samples of a named target, or a user file."""
    from scorelab.distributions import TARGETS

    if data_cfg.target is not None:
        target = TARGETS.build(data_cfg.target, **data_cfg.params)
        g = make_generator(seed)
        return target.sample(data_cfg.n, generator=g).float(), target
    return load_array(data_cfg.path), None


def load_image_data(data_cfg):
    """(train, held-out or None) ImageData of an image config (`[data] images = ...`).

    Without test_images the source is split by `images.split_images` (seeded with
    split_seed, stratified by label): split = "train" trains on the train part and holds out
    the rest; split = "all" trains on everything and holds nothing out.  With test_images,
    that file (taken whole) is the held-out set; it must hold images of the training shape.
    """
    from scorelab.images import load_images

    split = data_cfg.image_split()
    kw = {"test_fraction": data_cfg.test_fraction, "seed": data_cfg.split_seed}
    train = load_images(data_cfg.images, split=split, **kw)
    if data_cfg.test_images is not None:
        test = load_images(data_cfg.test_images, split="all")
    elif split == "train":
        test = load_images(data_cfg.images, split="test", **kw)
    else:
        test = None
    if test is not None and test.shape != train.shape:
        c, h, w = train.shape
        raise ScorelabError(
            f"{test.source}: held-out images have shape {'×'.join(map(str, test.shape))}, the "
            f"training images {c}×{h}×{w}"
        )
    return train, test
