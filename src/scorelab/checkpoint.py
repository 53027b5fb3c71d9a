"""Crash-safe training checkpoints: safetensors for tensors, one JSON file as the commit point.

Layout of ``run_dir/checkpoints/`` (see docs/training.md):

- ``weights-000100.safetensors``: the model's state dict, and the EMA copy under ``ema.``;
- ``state-000100.safetensors``: Adam's per-parameter tensors (``optim.<i>.<name>``), the
  batch generator's state (``rng.generator``) and torch's global RNG state (``rng.torch``);
- ``checkpoint.json``: step, file names and sizes, hyper-parameters, config, versions.

Tensor files are written first (temp name, fsync, ``os.replace``); replacing ``checkpoint.json``
commits them; older tensor files are deleted only after that. Nothing here unpickles.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import Tensor, nn

from scorelab._utils import ScorelabError

CHECKPOINT_DIR = "checkpoints"
CHECKPOINT_JSON = "checkpoint.json"
FORMAT = "scorelab-checkpoint"
FORMAT_VERSION = 1
EMA_PREFIX = "ema."
_OURS = re.compile(r"^(weights|state)-\d+\.safetensors$|^\..+\.tmp-\d+$")


def scorelab_version() -> str:
    try:
        return version("scorelab")
    except PackageNotFoundError:
        return "0.0.0+unknown"


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR


def _fsync_dir(folder: Path) -> None:
    # makes the rename itself durable; not every platform can open a directory
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a folder; the file fsyncs already happened
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that a crash leaves either the old file or the new one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _plain(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    # clone: safetensors refuses views and tensors that share storage (tied weights)
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()}


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict]:
    """Split an optimizer state dict into flat tensors and JSON-able hyper-parameters."""
    sd = optimizer.state_dict()
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, pstate in sd["state"].items():
        for name, value in pstate.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    groups = [
        {k: list(v) if isinstance(v, tuple) else v for k, v in g.items()}
        for g in sd["param_groups"]
    ]
    return tensors, {"class": type(optimizer).__name__, "param_groups": groups, "scalars": scalars}


def optimizer_state_dict(tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> dict:
    """Rebuild an optimizer state dict from `optimizer_tensors`' two halves."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for idx, extra in meta.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(extra)
    groups = [
        {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
        for g in meta["param_groups"]
    ]
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    *,
    model: nn.Module,
    ema: nn.Module | None,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    meta: Mapping[str, Any],
) -> dict[str, Any]:
    """Write a checkpoint atomically, then delete the previous one's files; returns its JSON."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    weights = _plain(model.state_dict())
    if ema is not None:
        clash = [k for k in weights if k.startswith(EMA_PREFIX)]
        if clash:
            raise ScorelabError(
                f"cannot store EMA weights: model tensor '{clash[0]}' already uses the "
                f"'{EMA_PREFIX}' prefix"
            )
        weights.update({EMA_PREFIX + k: v for k, v in _plain(ema.state_dict()).items()})
    opt_tensors, opt_meta = optimizer_tensors(optimizer)
    state = _plain(opt_tensors)
    state["rng.generator"] = generator.get_state()
    state["rng.torch"] = torch.get_rng_state()

    # one metadata key: safetensors writes its metadata map in hash order, which varies from
    # process to process, and two keys would make equal checkpoints differ byte for byte
    header = {"format": f"{FORMAT}; step {step}"}
    files: dict[str, dict[str, Any]] = {}
    for kind, tensors in (("weights", weights), ("state", state)):
        name = f"{kind}-{step:06d}.safetensors"
        data = safetensors_bytes(tensors, metadata=header)
        atomic_write(folder / name, data)
        files[kind] = {"name": name, "bytes": len(data)}
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "step": step,
        "files": files,
        "has_ema": ema is not None,
        "optimizer": opt_meta,
        **meta,
        "scorelab_version": scorelab_version(),
        "torch_version": torch.__version__,
    }
    text = json.dumps(record, indent=2, allow_nan=False) + "\n"
    atomic_write(folder / CHECKPOINT_JSON, text.encode())  # the commit point
    keep = {f["name"] for f in files.values()}
    for path in folder.iterdir():
        if path.name not in keep and _OURS.match(path.name):
            with contextlib.suppress(OSError):
                path.unlink()
    return record


def read_checkpoint_json(run_dir: str | Path) -> dict[str, Any] | None:
    """The committed checkpoint's metadata, checked against its files; None if there is none."""
    folder = checkpoint_dir(run_dir)
    path = folder / CHECKPOINT_JSON
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ScorelabError(f"{path}: not a readable checkpoint file ({e})") from e
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ScorelabError(f"{path}: not a scorelab checkpoint (no format '{FORMAT}')")
    if record.get("format_version") != FORMAT_VERSION:
        raise ScorelabError(
            f"{path}: checkpoint format version {record.get('format_version')} is not "
            f"supported (this scorelab reads version {FORMAT_VERSION})"
        )
    missing = [k for k in ("step", "files", "has_ema", "optimizer") if k not in record]
    missing += [f"files.{k}" for k in ("weights", "state") if k not in record.get("files", {})]
    if missing:
        raise ScorelabError(f"{path}: incomplete checkpoint record (no '{missing[0]}')")
    for entry in record["files"].values():
        file = folder / entry["name"]
        if not file.exists():
            raise ScorelabError(f"{path} names {entry['name']}, which is missing")
        if file.stat().st_size != entry["bytes"]:
            raise ScorelabError(
                f"{file}: {file.stat().st_size} bytes, but {path.name} recorded {entry['bytes']}"
            )
    return record


def _read(path: Path, keys: Mapping[str, str]) -> dict[str, Tensor]:
    """Tensors `keys[name]` of a safetensors file, as `name`; missing keys name the file."""
    out = {}
    with _open(path) as f:
        present = set(f.keys())
        for name, key in keys.items():
            if key not in present:
                raise ScorelabError(f"{path}: no tensor '{key}'")
            out[name] = f.get_tensor(key)
    return out


@contextlib.contextmanager
def _open(path: Path):
    """safe_open(path), with a damaged file (safetensors' own error: a header that does not
    parse, a body shorter than it says) turned into one ScorelabError naming the file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            yield f
    except ScorelabError:
        raise
    except Exception as err:  # SafetensorError, OSError
        raise ScorelabError(f"{path}: not a readable safetensors file ({err})") from None


def read_weights(path: Path, module: nn.Module, prefix: str = "") -> dict[str, Tensor]:
    """`module`'s state dict from `path` (keys under `prefix`), shape-checked before any copy."""
    expected = module.state_dict()
    with _open(path) as f:
        present = set(f.keys())
        unexpected = sorted(
            k
            for k in present
            if k.startswith(prefix)
            and (prefix or not k.startswith(EMA_PREFIX))
            and k[len(prefix) :] not in expected
        )
        if unexpected:
            raise ScorelabError(
                f"{path}: tensor '{unexpected[0]}' has no counterpart in the model "
                "(was the checkpoint written for a different architecture?)"
            )
        for name, value in expected.items():
            key = prefix + name
            if key not in present:
                raise ScorelabError(f"{path}: the model's tensor '{key}' is missing")
            shape = tuple(f.get_slice(key).get_shape())
            if shape != tuple(value.shape):
                raise ScorelabError(
                    f"{path}: tensor '{key}' has shape {shape} in the checkpoint but "
                    f"{tuple(value.shape)} in the model"
                )
    return _read(path, {name: prefix + name for name in expected})


def read_state(path: Path) -> dict[str, Tensor]:
    """All tensors of a state file (optimizer and RNG states)."""
    with _open(path) as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def load_checkpoint(run_dir: str | Path, model: nn.Module, *, ema: bool = False) -> dict[str, Any]:
    """Load a run's last committed weights into `model` (its EMA weights if ema=True and stored).

    Returns the checkpoint's JSON metadata, with "loaded_weights" set to "ema" or "model".
    """
    record = read_checkpoint_json(run_dir)
    if record is None:
        raise ScorelabError(f"no checkpoint in {checkpoint_dir(run_dir)} (no {CHECKPOINT_JSON})")
    path = checkpoint_dir(run_dir) / record["files"]["weights"]["name"]
    use_ema = ema and record.get("has_ema", False)
    model.load_state_dict(read_weights(path, model, EMA_PREFIX if use_ema else ""))
    return {**record, "loaded_weights": "ema" if use_ema else "model"}
