"""A small digits classifier that stands in for Inception: digits-FD, label spread, memorisation.

There is no pretrained Inception network offline, so image samples are measured with a CNN
trained here on the training digits (docs/metrics.md, "Image quality: digits-FD"):

- digits-FD: the Fréchet distance (`metrics.frechet_distance`) between Gaussian fits of the
  classifier's penultimate features of samples and of held-out reference images;
- the classifier's label histogram over samples (entropy, classes present, confidence);
- a nearest-neighbour memorisation check in pixel space against the training images.

Weights are stored as safetensors plus one JSON record (the commit point); nothing unpickles.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save as safetensors_bytes
from torch import Tensor, nn

from scorelab._utils import ScorelabError, make_generator
from scorelab.checkpoint import atomic_write, read_weights, scorelab_version
from scorelab.metrics import frechet_distance

__all__ = [
    "CLASSIFIER_JSON",
    "CLASSIFIER_WEIGHTS",
    "DigitsClassifier",
    "ImageQuality",
    "accuracy",
    "cached_classifier",
    "data_hash",
    "embed",
    "image_quality",
    "load_classifier",
    "matched_floor",
    "nearest_distances",
    "save_classifier",
    "train_classifier",
]

CLASSIFIER_JSON = "classifier.json"
CLASSIFIER_WEIGHTS = "classifier.safetensors"
FORMAT = "scorelab-classifier"
FORMAT_VERSION = 1
DEFAULT_STEPS = 600
_POOLED = 4  # the conv trunk ends in a 4×4 grid whatever the image size


class DigitsClassifier(nn.Module):
    """conv3×3(C→16) → ReLU → conv3×3(16→32) → ReLU → maxpool 2 → 4×4 pool → FC(512→64) → ELU
    → FC(64→classes). `features` is the 64-d penultimate layer (after the ELU).

    ELU rather than ReLU at the feature layer: with ReLU a third of the 64 units died in
    training, leaving a rank-deficient feature covariance for the Fréchet distance.
    """

    def __init__(
        self,
        image_size: Sequence[int] = (8, 8),
        channels: int = 1,
        n_classes: int = 10,
        feature_dim: int = 64,
    ) -> None:
        super().__init__()
        h, w = (int(s) for s in image_size)
        if h < 2 or w < 2 or channels < 1 or n_classes < 2 or feature_dim < 1:
            raise ScorelabError(
                f"DigitsClassifier needs images ≥ 2×2, ≥ 1 channel, ≥ 2 classes, got "
                f"size {h}×{w}, {channels} channel(s), {n_classes} classes"
            )
        self.image_size, self.channels = (h, w), int(channels)
        self.n_classes, self.feature_dim = int(n_classes), int(feature_dim)
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d(_POOLED),  # identity for 8×8 digits; makes any size fit
            nn.Flatten(),
            nn.Linear(32 * _POOLED * _POOLED, feature_dim),
            nn.ELU(),
        )
        self.head = nn.Linear(feature_dim, n_classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.image_size)

    def check_images(self, x: Tensor) -> None:
        """One-line ScorelabError unless x is (N, C, H, W) with this network's C, H, W."""
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ScorelabError(
                f"the classifier takes images of shape (N, {', '.join(map(str, self.image_shape))}"
                f"), got {tuple(x.shape)}"
            )

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations (N, feature_dim) of images in [0, 1]."""
        self.check_images(x)
        return self.trunk(x - 0.5)  # centred input: images are in [0, 1]

    def forward(self, x: Tensor) -> Tensor:
        """Class logits (N, n_classes)."""
        return self.head(self.features(x))


# ---------------------------------------------------------------------------------------------
# data checks and training


def _images(x: Any, name: str, *, min_n: int = 1) -> Tensor:
    """x as a finite float32 (N, C, H, W) tensor with N ≥ min_n; ScorelabError otherwise."""
    t = torch.as_tensor(x).detach()
    if t.ndim != 4 or t.shape[0] < min_n:
        raise ScorelabError(
            f"{name} must have shape (N, C, H, W) with N ≥ {min_n}, got {tuple(t.shape)}"
        )
    if t.is_complex() or t.dtype == torch.bool:
        raise ScorelabError(f"{name} must be real numbers, got dtype {t.dtype}")
    t = t.to("cpu", torch.float32)
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).flatten(1).any(dim=1).sum())
        raise ScorelabError(f"{name}: {bad} of {t.shape[0]} images contain NaN or inf values")
    return t


def _labels(y: Any, n: int, n_classes: int) -> Tensor:
    lab = torch.as_tensor(y).detach().cpu()
    if lab.shape != (n,) or lab.is_floating_point() or lab.is_complex() or lab.dtype == torch.bool:
        raise ScorelabError(
            f"labels must be {n} integers, got {lab.dtype} of shape {tuple(lab.shape)}"
        )
    lab = lab.long()
    if int(lab.min()) < 0 or int(lab.max()) >= n_classes:
        raise ScorelabError(
            f"labels must lie in [0, {n_classes}), got {int(lab.min())}..{int(lab.max())}"
        )
    return lab


def data_hash(images: Any, labels: Any | None = None) -> str:
    """sha256 of the images (as float32, with their shape) and labels (as int64): a cache key."""
    x = _images(images, "images").contiguous()
    h = hashlib.sha256(repr(tuple(x.shape)).encode())
    h.update(x.numpy().tobytes())
    if labels is not None:
        h.update(torch.as_tensor(labels).detach().cpu().long().contiguous().numpy().tobytes())
    return h.hexdigest()


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Each image translated by its own integer (dy, dx) ∈ [−s, s]², zero filled (batched)."""
    if max_shift <= 0:
        return x
    n, c, h, w = x.shape
    s = int(max_shift)
    padded = nn.functional.pad(x, (s, s, s, s))
    off = torch.randint(0, 2 * s + 1, (2, n), generator=generator)
    rows = (off[0, :, None] + torch.arange(h))[:, None, :, None].expand(n, c, h, w + 2 * s)
    cols = (off[1, :, None] + torch.arange(w))[:, None, None, :].expand(n, c, h, w)
    return padded.gather(2, rows).gather(3, cols)


def train_classifier(
    images: Any,
    labels: Any,
    *,
    steps: int = DEFAULT_STEPS,
    batch_size: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
    max_shift: int = 1,
    n_classes: int = 10,
    feature_dim: int = 64,
) -> DigitsClassifier:
    """Adam with cosine-decayed lr on cross-entropy, random ±max_shift pixel shifts as
    augmentation; same seed → same weights (initialisation, batches and shifts all seeded).

    Returns the network in eval mode.
    """
    x = _images(images, "images")
    y = _labels(labels, x.shape[0], n_classes)
    if steps < 1 or batch_size < 1 or not lr > 0:
        raise ScorelabError(
            f"need steps ≥ 1, batch_size ≥ 1, lr > 0; got {steps}, {batch_size}, {lr}"
        )
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
        torch.manual_seed(int(seed))
        model = DigitsClassifier(x.shape[2:], x.shape[1], n_classes, feature_dim)
    gen = make_generator(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda k: 0.5 * (1.0 + math.cos(math.pi * k / steps))
    )
    model.train()
    batch = min(batch_size, x.shape[0])
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen)
        xb = random_shift(x[idx], max_shift, gen)
        loss = nn.functional.cross_entropy(model(xb), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def embed(model: DigitsClassifier, images: Any, batch_size: int = 2048) -> tuple[Tensor, Tensor]:
    """(features, probabilities) of images as float64 CPU tensors: eval mode, on the model's
    device, in chunks of batch_size."""
    x = _images(images, "images")
    model.check_images(x)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    feats, probs = [], []
    for chunk in x.split(batch_size):
        f = model.features(chunk.to(device))
        feats.append(f.double().cpu())
        probs.append(torch.softmax(model.head(f).double(), dim=1).cpu())
    model.train(was_training)
    return torch.cat(feats), torch.cat(probs)


def accuracy(model: DigitsClassifier, images: Any, labels: Any) -> float:
    """Fraction of images whose argmax class equals the label."""
    _, probs = embed(model, images)
    y = _labels(labels, probs.shape[0], model.n_classes)
    return float((probs.argmax(dim=1) == y).double().mean())


# ---------------------------------------------------------------------------------------------
# storage


def save_classifier(
    model: DigitsClassifier, folder: str | Path, meta: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Write classifier.safetensors, then classifier.json (the commit point), atomically.

    `meta` (accuracy, data hashes, training settings, ...) is stored in the JSON record next to
    the architecture; returns the record.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {
        k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()
    }
    data = safetensors_bytes(tensors, metadata={"format": FORMAT})
    atomic_write(folder / CLASSIFIER_WEIGHTS, data)
    record = {
        **dict(meta or {}),
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "file": {"name": CLASSIFIER_WEIGHTS, "bytes": len(data)},
        "image_size": list(model.image_size),
        "channels": model.channels,
        "n_classes": model.n_classes,
        "feature_dim": model.feature_dim,
        "scorelab_version": scorelab_version(),
        "torch_version": torch.__version__,
    }
    text = json.dumps(record, indent=2, allow_nan=False) + "\n"
    atomic_write(folder / CLASSIFIER_JSON, text.encode())
    return record


def _read_record(folder: Path) -> dict[str, Any]:
    path = folder / CLASSIFIER_JSON
    if not path.is_file():
        raise ScorelabError(f"no classifier in {folder} (no {CLASSIFIER_JSON})")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ScorelabError(f"{path}: not a readable classifier record ({e})") from e
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ScorelabError(f"{path}: not a scorelab classifier (no format '{FORMAT}')")
    if record.get("format_version") != FORMAT_VERSION:
        raise ScorelabError(
            f"{path}: classifier format version {record.get('format_version')} is not "
            f"supported (this scorelab reads version {FORMAT_VERSION})"
        )
    missing = [
        k for k in ("file", "image_size", "channels", "n_classes", "feature_dim") if k not in record
    ]
    if missing:
        raise ScorelabError(f"{path}: incomplete classifier record (no '{missing[0]}')")
    return record


def load_classifier(
    folder: str | Path, *, image_shape: Sequence[int] | None = None
) -> tuple[DigitsClassifier, dict[str, Any]]:
    """The stored classifier (eval mode) and its JSON record.

    image_shape=(C, H, W): the images it will measure; a classifier trained for another size or
    channel count is refused with a one-line ScorelabError.
    """
    folder = Path(folder)
    record = _read_record(folder)
    stored = (int(record["channels"]), *(int(s) for s in record["image_size"]))
    if image_shape is not None and tuple(int(s) for s in image_shape) != stored:
        raise ScorelabError(
            f"{folder / CLASSIFIER_JSON}: classifier was trained on images of shape "
            f"{stored}, but these images have shape {tuple(image_shape)}; train one for them"
        )
    path = folder / record["file"]["name"]
    if not path.is_file():
        raise ScorelabError(f"{folder / CLASSIFIER_JSON} names {path.name}, which is missing")
    if path.stat().st_size != record["file"]["bytes"]:
        raise ScorelabError(
            f"{path}: {path.stat().st_size} bytes, but {CLASSIFIER_JSON} recorded "
            f"{record['file']['bytes']}"
        )
    model = DigitsClassifier(
        record["image_size"], record["channels"], record["n_classes"], record["feature_dim"]
    )
    model.load_state_dict(read_weights(path, model))
    return model.eval(), record


def cached_classifier(
    folder: str | Path,
    train_images: Any,
    train_labels: Any,
    test_images: Any,
    test_labels: Any,
    *,
    seed: int = 0,
    steps: int = DEFAULT_STEPS,
) -> tuple[DigitsClassifier, dict[str, Any]]:
    """The classifier stored in `folder` if it was trained on these data with these settings;
    otherwise train one, measure its held-out accuracy and the floor FD(test vs train), save.

    The record holds accuracy, fd_floor, train/test data hashes, seed, steps and seconds.
    """
    folder = Path(folder)
    train_hash = data_hash(train_images, train_labels)
    test_hash = data_hash(test_images, test_labels)
    if (folder / CLASSIFIER_JSON).is_file():
        model, record = load_classifier(folder)
        wanted = {"train_hash": train_hash, "test_hash": test_hash, "seed": seed, "steps": steps}
        if all(record.get(k) == v for k, v in wanted.items()):
            return model, record
    t0 = time.perf_counter()
    model = train_classifier(train_images, train_labels, seed=seed, steps=steps)
    seconds = time.perf_counter() - t0
    train_feats, _ = embed(model, train_images)
    test_feats, _ = embed(model, test_images)
    meta = {
        "accuracy": accuracy(model, test_images, test_labels),
        "train_accuracy": accuracy(model, train_images, train_labels),
        "fd_floor": frechet_distance(test_feats, train_feats),
        "n_train": int(train_feats.shape[0]),
        "n_test": int(test_feats.shape[0]),
        "train_hash": train_hash,
        "test_hash": test_hash,
        "seed": seed,
        "steps": steps,
        "seconds": seconds,
    }
    return model, save_classifier(model, folder, meta)


# ---------------------------------------------------------------------------------------------
# measuring samples


def nearest_distances(x: Any, bank: Any, block: int = 1024) -> Tensor:
    """For each image of x, the L2 pixel distance (float64) to its nearest image in `bank`."""
    a = _images(x, "images").flatten(1).double()
    b = _images(bank, "bank").flatten(1).double()
    if a.shape[1] != b.shape[1]:
        raise ScorelabError(f"images have {a.shape[1]} pixels, the bank {b.shape[1]}")
    # the direct (non-matmul) form gives exactly 0 for an exact copy
    mode = "donot_use_mm_for_euclid_dist"
    return torch.cat(
        [torch.cdist(chunk, b, compute_mode=mode).min(dim=1).values for chunk in a.split(block)]
    )


def matched_floor(ref_feats: Tensor, train_feats: Tensor, n: int, max_subsets: int = 8) -> float:
    """Mean FD(reference vs train subset of min(n, n_train)) over k = min(n_train // n,
    max_subsets) disjoint strided subsets train[j::⌊n_train/n⌋][:n], j < k: deterministic, and
    the average of k subsets has a smaller spread than one (std ≈ 23% of the mean at n = 360)."""
    n_train = train_feats.shape[0]
    if n >= n_train:
        return frechet_distance(ref_feats, train_feats)
    stride = n_train // n
    subsets = [train_feats[j::stride][:n] for j in range(min(stride, max_subsets))]
    return float(sum(frechet_distance(ref_feats, s) for s in subsets) / len(subsets))


@dataclass(frozen=True)
class ImageQuality:
    """Image-sample measurements against a trained digits classifier (docs/metrics.md)."""

    n_samples: int
    fd: float  # digits-FD(samples vs reference images)
    fd_floor: float  # digits-FD(reference vs all train images): what held-out real data scores
    fd_floor_matched: float  # the same with train subsets of min(n_samples, n_train) images
    fd_ratio: float | None  # fd / fd_floor_matched (None if 0); the goal for an NCSN: ≤ 3
    label_histogram: list[float]  # fraction of samples per predicted class
    label_entropy: float  # nats; log(n_classes) for a perfectly balanced label spread
    max_entropy: float  # log(n_classes)
    classes_present: float  # fraction of classes predicted for at least one sample
    mean_confidence: float  # mean max-softmax probability
    nn_median: float  # median L2 distance sample → nearest training image
    reference_nn_median: float  # the same for the reference (held-out) images
    nn_ratio: float | None  # nn_median / reference_nn_median; ≪ 1 suggests copying
    memorisation_threshold: float  # 1st percentile of reference → train distances
    memorised_fraction: float  # fraction of samples with distance ≤ that threshold

    def as_dict(self) -> dict[str, Any]:
        """The measurements as a plain JSON-serialisable dict."""
        return asdict(self)


def image_quality(
    samples: Any,
    *,
    classifier: DigitsClassifier,
    train_images: Any,
    reference_images: Any,
    clip: bool = True,
) -> ImageQuality:
    """digits-FD, label spread and nearest-neighbour memorisation of image samples.

    The floor FD(reference vs train) is computed here with the same classifier (one forward
    pass), so fd_ratio is self-contained. FD is biased upwards by O(d/N) per set, so fd_ratio
    divides by `matched_floor`, the floor with train subsets as large as the sample set:
    a sampler that draws fresh images of the data law scores fd_ratio ≈ 1 at any n_samples
    (draw n_samples ≥ n_train for fd_floor_matched = fd_floor). clip=True clamps samples to
    [0, 1], the range the classifier was trained on and the one images are shown in. Samples
    with NaN or inf are refused with a one-line ScorelabError.
    """
    x = _images(samples, "samples", min_n=2)
    if clip:
        x = x.clamp(0.0, 1.0)
    train = _images(train_images, "train_images", min_n=2)
    ref = _images(reference_images, "reference_images", min_n=2)
    for t in (x, train, ref):
        classifier.check_images(t)
    fx, px = embed(classifier, x)
    ftrain, _ = embed(classifier, train)
    fref, _ = embed(classifier, ref)
    fd, floor = frechet_distance(fx, fref), frechet_distance(fref, ftrain)
    matched = matched_floor(fref, ftrain, x.shape[0])

    k = classifier.n_classes
    hist = torch.bincount(px.argmax(dim=1), minlength=k).double() / x.shape[0]
    nz = hist[hist > 0]
    entropy = float(-(nz * nz.log()).sum())

    d_sample = nearest_distances(x, train)
    d_ref = nearest_distances(ref, train)
    threshold = float(torch.quantile(d_ref, 0.01))
    sample_med, ref_med = float(d_sample.median()), float(d_ref.median())
    return ImageQuality(
        n_samples=int(x.shape[0]),
        fd=fd,
        fd_floor=floor,
        fd_floor_matched=matched,
        fd_ratio=fd / matched if matched > 0 else None,
        label_histogram=hist.tolist(),
        label_entropy=entropy,
        max_entropy=math.log(k),
        classes_present=float((hist > 0).double().mean()),
        mean_confidence=float(px.max(dim=1).values.mean()),
        nn_median=sample_med,
        reference_nn_median=ref_med,
        nn_ratio=sample_med / ref_med if ref_med > 0 else None,
        memorisation_threshold=threshold,
        memorised_fraction=float((d_sample <= threshold).double().mean()),
    )
