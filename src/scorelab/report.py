"""One self-contained HTML page per run folder: what ran, what came out, every figure.

The page needs no other file and no network: figures are embedded as base64 data URIs and
the CSS is inline, so report.html can be mailed or archived on its own. Every string read
from the run folder is HTML-escaped. See scorelab.runs for the folder layout.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from pathlib import Path
from typing import Any

from scorelab._utils import ScorelabError
from scorelab.runs import load_samples, read_json

REPORT_FILE = "report.html"
LOSS_FIGURE = "loss.png"
_MAX_CELL = 600  # characters of a table cell shown before "…"

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.1em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.sub{color:#666;margin-top:0}.note{color:#a40}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f5f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
table table{margin:0;font-size:1em}
figure{margin:1em 0;display:inline-block;max-width:100%}
figure img{max-width:100%;border:1px solid #eee}figcaption{color:#555;font-size:.9em}
pre{background:#f6f8fa;padding:.8em;overflow:auto;font-size:.85em}
"""


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(v: Any) -> str:
    """A scalar as text: floats to 4 significant digits, null as an em dash."""
    if v is None:
        return "—"
    if isinstance(v, bool) or isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    if isinstance(v, list) and all(not isinstance(x, (dict, list)) for x in v):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def _cell(v: Any, depth: int) -> str:
    """A <td> for any JSON value; dicts nest as tables (a few levels deep)."""
    if isinstance(v, dict) and v and depth < 4:
        return f"<td>{_dict_table(v, depth + 1)}</td>"
    num = isinstance(v, (int, float)) and not isinstance(v, bool)
    text = _fmt(v)
    text = text if len(text) <= _MAX_CELL else text[:_MAX_CELL] + "…"  # long arrays
    return f"<td{' class=num' if num else ''}>{_esc(text)}</td>"


def _grid(columns: list, rows: list, depth: int = 0) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(_cell(v, depth) for v in (r if isinstance(r, list) else [r])) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _dict_table(d: dict, depth: int = 0) -> str:
    """A dict of same-keyed flat dicts as a grid (rows × keys); anything else as key/value."""
    inner = list(d.values())
    if inner and all(isinstance(v, dict) and v for v in inner):
        keys = list(dict.fromkeys(k for v in inner for k in v))
        if all(not isinstance(x, dict) for v in inner for x in v.values()) and len(keys) <= 12:
            rows = [[name] + [v.get(k) for k in keys] for name, v in d.items()]
            return _grid([""] + keys, rows, depth)
    rows = "".join(f"<tr><th>{_esc(k)}</th>{_cell(v, depth)}</tr>" for k, v in d.items())
    return f"<table>{rows}</table>"


def _img(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_esc(caption)}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _read(path: Path, notes: list[str]) -> Any:
    """JSON from path, or None (missing, or unreadable: then a note on the page says so)."""
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except ScorelabError as err:
        notes.append(str(err))
        return None


def _metrics(path: Path) -> tuple[list[float], list[float]]:
    """(steps, losses) from metrics.jsonl; bad lines (a crash mid-write) are skipped."""
    steps, losses = [], []
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                step = float(rec["step"])
            except (ValueError, KeyError, TypeError):
                continue
            loss = rec.get("loss")
            steps.append(step)
            losses.append(float(loss) if isinstance(loss, (int, float)) else math.nan)
    return steps, losses


def _loss_png(run: Path, steps: list[float], losses: list[float]) -> bytes:
    """Render the loss curve; write figures/loss.png only if its bytes changed."""
    import matplotlib.pyplot as plt

    from scorelab.plots import loss_curve

    fig = loss_curve(steps, losses, smooth=max(1, min(50, len(steps) // 10)))
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    finally:
        plt.close(fig)
    png = buf.getvalue()
    path = run / "figures" / LOSS_FIGURE
    if not (path.is_file() and path.read_bytes() == png):
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{LOSS_FIGURE}.tmp")
        tmp.write_bytes(png)
        os.replace(tmp, path)
    return png


def build_report(run_dir: str | Path) -> Path:
    """Write run_dir/report.html from whatever the run folder holds; return its path."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ScorelabError(f"{run} is not a run folder: it does not exist or is not a folder")
    notes: list[str] = []
    results = _read(run / "results.json", notes)
    evaluation = _read(run / "evaluation.json", notes)
    config_path = run / "config.json"
    steps, losses = _metrics(run / "metrics.jsonl")
    fig_dir = run / "figures"
    figures = sorted(
        p
        for p in (fig_dir.rglob("*.png") if fig_dir.is_dir() else [])
        if not p.name.startswith(".") and p.relative_to(fig_dir) != Path(LOSS_FIGURE)
    )
    samples = sorted(p for p in (run / "samples").glob("*.npz") if not p.name.startswith("."))
    if not (results or evaluation or steps or figures or samples or config_path.is_file()):
        raise ScorelabError(
            f"{run} holds nothing to report (no results.json, evaluation.json, metrics.jsonl, "
            "figures/*.png, config.json or samples/*.npz)"
        )
    results = results if isinstance(results, dict) else {}
    title = str(results.get("title") or run.name)
    out = [f"<h1>{_esc(title)}</h1>"]
    sub = [run.name] if title != run.name else []
    if results.get("seed_ref"):
        sub.append(f"reproduces: {results['seed_ref']}")
    if sub:
        out.append(f'<p class="sub">{" · ".join(_esc(s) for s in sub)}</p>')
    out += [f'<p class="note">{_esc(n)}</p>' for n in notes]

    summary = results.get("summary")
    if summary:
        lines = [summary] if isinstance(summary, str) else list(summary)
        out.append("<h2>Summary</h2><ul>")
        out += [f"<li>{_esc(line)}</li>" for line in lines]
        out.append("</ul>")

    tables = results.get("tables") if isinstance(results.get("tables"), dict) else {}
    rest = {k: v for k, v in results.items() if k not in ("title", "seed_ref", "summary", "tables")}
    if tables or rest or evaluation is not None:
        out.append("<h2>Tables</h2>")
    for name, t in tables.items():
        out.append(f"<h3>{_esc(name)}</h3>")
        if isinstance(t, dict) and "rows" in t:
            out.append(_grid(list(t.get("columns") or []), list(t["rows"])))
        else:
            out.append(_dict_table(t) if isinstance(t, dict) else f"<p>{_esc(_fmt(t))}</p>")
    if rest:
        out.append("<h3>Other results</h3>" + _dict_table(rest))
    if evaluation is not None:
        out.append("<h3>evaluation.json</h3>")
        ev = evaluation
        out.append(_dict_table(ev) if isinstance(ev, dict) else f"<pre>{_esc(_fmt(ev))}</pre>")

    if steps or figures:
        out.append("<h2>Figures</h2>")
    if steps:
        out.append(_img(_loss_png(run, steps, losses), f"figures/{LOSS_FIGURE} (training loss)"))
    for p in figures:
        out.append(_img(p.read_bytes(), str(p.relative_to(fig_dir))))

    if config_path.is_file():
        text = config_path.read_text()
        try:
            text = json.dumps(json.loads(text), indent=2)
        except json.JSONDecodeError:
            pass  # show the file as it is
        out.append(f"<h2>Resolved config</h2><pre>{_esc(text)}</pre>")

    if samples:
        rows = []
        for p in samples:
            try:
                arr, meta = load_samples(p)
                rows.append([p.name, str(tuple(arr.shape)), str(arr.dtype), json.dumps(meta)])
            except ScorelabError as err:
                rows.append([p.name, "—", "—", f"unreadable: {err}"])
        out.append("<h2>Samples</h2>" + _grid(["file", "shape", "dtype", "meta"], rows))

    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(out)
        + "\n</body></html>\n"
    )
    path = run / REPORT_FILE
    tmp = run / f".{REPORT_FILE}.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path
