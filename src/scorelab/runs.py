"""Run folders: where every command writes, and how (fresh folders, atomic files).

Layout of a run folder (train / sample / evaluate / report / experiment / demo):

    config.toml        the config as given (train only)
    config.json        the resolved config: every default and heuristic value filled in
    metrics.jsonl      training losses (scorelab.train.fit)
    checkpoints/       weights and optimiser state (scorelab.checkpoint)
    samples/NAME.npz   samples (+ nfe, info as JSON) from `scorelab sample`
    evaluation.json    numbers from `scorelab evaluate`
    results.json       numbers from an experiment or the demo
    figures/*.png      every figure
    report.html        one self-contained page (images embedded)
"""

from __future__ import annotations

import json
import math
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scorelab._utils import ScorelabError


def fresh_run_dir(root: str | Path, prefix: str) -> Path:
    """A new, empty folder root/prefix-YYYYmmdd-HHMMSS[-k]; never reuses an existing one."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ScorelabError(f"{root} exists and is not a folder")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        path = root / (f"{prefix}-{stamp}" + (f"-{k}" if k else ""))
        try:
            path.mkdir(parents=True, exist_ok=False)
            return path
        except FileExistsError:
            continue
    raise ScorelabError(f"could not create a fresh run folder under {root}")


def _jsonable(obj: Any) -> Any:
    """Tensors, arrays and non-finite floats as JSON (non-finite → null)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (np.floating, np.integer)):
        return _jsonable(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    """Write JSON atomically: a temp file in the same folder, then os.replace."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_jsonable(obj), indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ScorelabError(f"{path} does not exist") from None
    except json.JSONDecodeError as err:
        raise ScorelabError(f"{path} is not valid JSON: {err.msg} at line {err.lineno}") from None


def figures_dir(run_dir: str | Path) -> Path:
    path = Path(run_dir) / "figures"
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_samples(path: str | Path, samples: torch.Tensor, **meta: Any) -> Path:
    """samples as an .npz (array `samples`, and `meta` as a JSON string), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, samples=samples.detach().cpu().numpy(), meta=json.dumps(_jsonable(meta)))
    os.replace(tmp, path)
    return path


def load_samples(path: str | Path) -> tuple[np.ndarray, dict]:
    """(samples, meta) from a file written by save_samples; never unpickles."""
    try:
        with np.load(path, allow_pickle=False) as f:
            return f["samples"], json.loads(str(f["meta"]))
    except (OSError, KeyError, ValueError) as err:
        raise ScorelabError(f"{path} is not a scorelab samples file: {err}") from None
