"""Malformed configs and data files, generated (hypothesis): each is refused by `scorelab train`
with one line `scorelab: error: …`, exit status 2, no traceback, and no run folder."""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from test_cli import TINY

from scorelab.cli import main

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True, database=None)


def _toml(v) -> str:
    """A TOML literal for v (floats include nan and ±inf, which TOML spells so)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return (
            "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
        )
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return str(v)


def _nonpositive_int():
    return st.integers(-(10**6), 0)


def _bad_positive_float():
    """Values a positive, finite float setting must refuse."""
    return st.one_of(
        st.floats(max_value=0.0, allow_nan=False, allow_infinity=True),
        st.just(math.nan),
        st.just(math.inf),
        st.text(max_size=5),
        st.booleans(),
    )


def _bad_count():
    """Values an integer ≥ 1 setting must refuse."""
    return st.one_of(
        _nonpositive_int(), st.floats(allow_nan=True), st.text(max_size=5), st.booleans()
    )


# (table, key) → strategy of values that table's key must refuse
BAD = {
    ("train", "steps"): _bad_count(),
    ("train", "batch_size"): _bad_count(),
    ("train", "lr"): _bad_positive_float(),
    ("train", "log_every"): _bad_count(),
    ("noise", "sigma_min"): _bad_positive_float(),
    ("noise", "step_size"): _bad_positive_float(),
    ("noise", "n_steps_each"): _bad_count(),
    ("sample", "n"): _bad_count(),
    ("model", "hidden"): _bad_count(),
    ("model", "depth"): _bad_count(),
}


def _set(text: str, table: str, key: str, value: str) -> str:
    """text with `key = value` in [table] (replacing the key's line where it is there)."""
    lines = text.splitlines()
    start = lines.index(f"[{table}]")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    for i in range(start + 1, end):
        if lines[i].split("=")[0].strip() == key:
            lines[i] = f"{key} = {value}"
            return "\n".join(lines)
    lines.insert(start + 1, f"{key} = {value}")
    return "\n".join(lines)


@st.composite
def bad_configs(draw):
    base = TINY.format(out="{out}", data='target = "seed001_fig3"\nn = 300')
    kind = draw(st.sampled_from(["value", "unknown key", "unordered sigmas", "bad toml"]))
    if kind == "value":
        table, key = draw(st.sampled_from(sorted(BAD)))
        return _set(base, table, key, _toml(draw(BAD[(table, key)])))
    if kind == "unknown key":
        table = draw(st.sampled_from(["train", "noise", "model", "sample", "objective"]))
        key = "x_" + draw(st.text("abcdefgh_", min_size=1, max_size=8))
        return _set(base, table, key, "1")
    if kind == "unordered sigmas":  # σ_max at or below σ_min
        lo = draw(st.floats(0.01, 1.0))
        text = _set(base, "noise", "sigma_min", repr(lo))
        return _set(text, "noise", "sigma_max", repr(lo * draw(st.floats(0.0, 1.0))))
    cut = draw(st.integers(1, len(base) - 1))  # a config cut off mid-way
    return base[:cut] + draw(st.sampled_from(['"', "[", "= ", "[train"]))


def _refused(tmp_path, cfg_text: str) -> None:
    out = tmp_path / "runs"
    before = set(out.iterdir()) if out.exists() else set()
    cfg = tmp_path / "bad.toml"
    cfg.write_text(cfg_text.replace("{out}", str(out)))
    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        code = main(["train", str(cfg)])
    err = buf.getvalue()
    assert code == 2, (code, cfg_text, err)
    lines = [v for v in err.splitlines() if v.strip()]
    assert lines and lines[-1].startswith("scorelab: error: "), err
    assert "Traceback" not in err
    after = set(out.iterdir()) if out.exists() else set()
    assert after == before, "a refused config left a run folder"


@SETTINGS
@given(bad_configs())
def test_malformed_configs_are_refused_cleanly(tmp_path_factory, text):
    _refused(tmp_path_factory.mktemp("cfg"), text)


@st.composite
def bad_data_files(draw):
    """(file name, bytes) of a points file train must refuse."""
    kind = draw(
        st.sampled_from(
            ["nonfinite", "1-d", "3-d", "empty rows", "empty file", "strings", "complex", "csv"]
        )
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    n, d = draw(st.integers(2, 30)), draw(st.integers(1, 4))
    x = rng.normal(size=(n, d))
    if kind == "nonfinite":
        x[draw(st.integers(0, n - 1)), draw(st.integers(0, d - 1))] = draw(
            st.sampled_from([np.nan, np.inf, -np.inf])
        )
    elif kind == "1-d":
        x = x[:, 0]
    elif kind == "3-d":
        x = x[:, :, None]
    elif kind == "empty rows":
        x = x[:0]
    elif kind == "empty file":
        return "points.npy", b""
    elif kind == "strings":
        x = np.array([["a"] * d] * n)
    elif kind == "complex":
        x = x.astype(np.complex64)
    else:  # a CSV whose rows differ in length
        rows = [",".join("1.0" for _ in range(d + (i == n // 2))) for i in range(n)]
        return "points.csv", ("\n".join(rows) + "\n").encode()
    buf = io.BytesIO()
    np.save(buf, x)
    return "points.npy", buf.getvalue()


@SETTINGS
@given(bad_data_files())
def test_malformed_data_files_are_refused_cleanly(tmp_path_factory, file):
    tmp = tmp_path_factory.mktemp("data")
    name, data = file
    (tmp / name).write_bytes(data)
    text = TINY.format(out="{out}", data=f'path = "{tmp / name}"')
    _refused(tmp, text)
