"""The `scorelab` command.  User errors print one line and exit 2; never a traceback."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from scorelab import __version__
from scorelab._utils import ScorelabError
from scorelab.config import SAMPLER_NAMES


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where the model runs (default auto: cuda if torch sees a GPU, else cpu); "
        "checkpoints and samples are device-independent",
    )


def _add_compile(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile the score network (the first calls take seconds to compile)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scorelab",
        description="Score-based generative modelling: learn ∇ log p from data, sample, measure.",
    )
    parser.add_argument("--version", action="version", version=f"scorelab {__version__}")
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch CPU threads (default 1: the small ops of toy models run fastest on one)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "train",
        help="train a score model from a TOML config into a run folder",
        description="Runs unchanged under `torchrun --nproc_per_node=N` (docs/scaling.md).",
    )
    p.add_argument("config", nargs="?", help="a TOML config (see configs/)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.steps=500 (repeatable)",
    )
    p.add_argument(
        "--resume",
        metavar="RUN",
        help="continue RUN from its last checkpoint (with any number of processes) instead",
    )
    p.add_argument(
        "--steps",
        type=_positive_int,
        help="with --resume: train to this many steps in all (default: the run's train.steps)",
    )
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: the objective under torch.autocast(bfloat16), for GPUs (default fp32)",
    )
    _add_compile(p)
    _add_device(p)

    p = sub.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run", help="a run folder written by `scorelab train`")
    p.add_argument(
        "--sampler",
        choices=SAMPLER_NAMES,
        help="Langevin family for noise-ladder runs, SDE family (reverse_sde, ancestral, "
        "predictor_corrector, probability_flow) for [sde] runs; default: the config's",
    )
    p.add_argument("-n", type=_positive_int, help="number of samples")
    p.add_argument("--seed", type=int, help="random seed (default: the run's seed + 1)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="sampler setting, e.g. --set step_size=1e-4 --set init=data (Langevin) or "
        "--set n_steps=1000 --set snr=0.1 (SDE)",
    )
    _add_compile(p)
    _add_device(p)

    p = sub.add_parser(
        "evaluate",
        help="measure a run's samples and score against the truth (image runs: digits-FD)",
    )
    p.add_argument("run")
    _add_device(p)

    p = sub.add_parser(
        "classifier",
        help="train (once, cached) the digits classifier that measures an image run's samples",
        description="Trains the small CNN of scorelab.classifier on an image run's training "
        "images (or, without RUN, on the default digits split), caches it in RUN/classifier/ "
        "(OUT/classifier-digits/), and prints its held-out accuracy and the FD floor.",
    )
    p.add_argument("run", nargs="?", help="an image run folder (default: the digits split)")
    p.add_argument(
        "--steps",
        type=_positive_int,
        help="training steps (default: those of the cached classifier, else 600)",
    )
    p.add_argument("--seed", type=int, help="seed (default: the cached classifier's, else 0)")
    p.add_argument("--out", default="runs", help="cache folder parent without RUN (default: runs)")

    p = sub.add_parser("report", help="write RUN/report.html, one self-contained page")
    p.add_argument("run")

    p = sub.add_parser("experiment", help="run a reproduction of a seed figure or table")
    p.add_argument("name", nargs="?", help="experiment name (see --list)")
    p.add_argument("--list", action="store_true", help="list the experiments")
    p.add_argument(
        "--size",
        choices=("small", "full"),
        default="full",
        help="full: the documented run; small: a seconds-long smoke run",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs", help="folder for run folders (default: runs)")

    p = sub.add_parser(
        "demo",
        help="train an NCSN on the seed 001 Fig. 3 mixture and sample it three ways",
        description="Trains a noise-conditional score model on samples of a 0.2/0.8 "
        "two-Gaussian mixture, then samples it with plain Langevin, annealed Langevin and "
        "Langevin from the data, beside the same samplers with the exact score.",
    )
    p.add_argument("--out", default="runs", help="folder for run folders (default: runs)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("-n", type=_positive_int, default=5000, help="chains per sampler")
    p.add_argument("--steps", type=_positive_int, default=None, help="training steps")
    return parser


def _job(device_name: str):
    """(device, Dist): under torchrun each process joins the job and takes its own GPU."""
    import torch

    from scorelab.distributed import from_env
    from scorelab.pipeline import resolve_device

    device = resolve_device(device_name)
    dist = from_env(device)
    if dist.enabled and device.type == "cuda":
        device = torch.device(f"cuda:{dist.local_rank}")
    return device, dist


def _train(args) -> int:
    from scorelab.config import load_config
    from scorelab.pipeline import resume, train

    if (args.config is None) == (args.resume is None):
        raise ScorelabError("give a config to train, or --resume RUN to continue a run (not both)")
    if args.resume is None and args.steps is not None:
        raise ScorelabError("--steps goes with --resume; for a new run use --set train.steps=N")
    if args.resume is not None and args.set:
        raise ScorelabError("--set changes a new run's config; --resume continues the run's own")
    device, dist = _job(args.device)
    options = {"device": device, "dist": dist, "precision": args.precision}
    options["compile_model"] = args.compile
    try:
        if args.resume is not None:
            run_dir = resume(args.resume, steps=args.steps, **options)
        else:
            cfg = load_config(args.config, args.set)
            run_dir = train(cfg, Path(args.config).read_text(), **options)
    except BaseException:
        dist.close(wait=False)
        raise
    dist.close()
    if dist.is_main:
        print(f"trained: {run_dir}")
        print(f"next: scorelab sample {run_dir}")
    return 0


def _sample(args) -> int:
    from scorelab.pipeline import grid_path, sample

    device, dist = _job(args.device)
    try:
        path = sample(
            args.run,
            sampler=args.sampler,
            n=args.n,
            overrides=args.set,
            seed=args.seed,
            device=device,
            dist=dist,
            compile_model=args.compile,
        )
    except BaseException:
        dist.close(wait=False)
        raise
    dist.close()
    if path is None:  # another rank wrote the file
        return 0
    print(f"wrote {path}")
    if grid_path(path).is_file():
        print(f"wrote {grid_path(path)}")
    return 0


def _classifier(args) -> int:
    from scorelab.pipeline import run_classifier

    _, record, folder, cached = run_classifier(
        args.run, out=args.out, steps=args.steps, seed=args.seed
    )
    how = "cached" if cached else f"trained in {record['seconds']:.1f} s"
    print(f"classifier: {folder} ({how}; {record['steps']} steps, seed {record['seed']})")
    print(
        f"held-out accuracy: {record['accuracy']:.4f} on {record['n_test']} images "
        f"(train accuracy {record['train_accuracy']:.4f} on {record['n_train']})"
    )
    print(f"FD floor (held-out vs train images): {record['fd_floor']:.4g}")
    return 0


def _print_image_evaluation(out: dict) -> None:
    c = out["classifier"]
    print(
        f"reference: {out['reference']}; classifier accuracy {c['accuracy']:.4f}, "
        f"FD floor {c['fd_floor']:.4g} ({'cached' if c['cached'] else 'trained now'})"
    )
    for name, r in out["samples"].items():
        ratio = "—" if r["fd_ratio"] is None else f"{r['fd_ratio']:.3g}"
        print(
            f"{name}: n {r['n_samples']}  fd {r['fd']:.4g}  fd_floor_matched "
            f"{r['fd_floor_matched']:.4g}  fd_ratio {ratio}  classes_present "
            f"{r['classes_present']:.2f}  label_entropy {r['label_entropy']:.4f}/"
            f"{r['max_entropy']:.4f}  mean_confidence {r['mean_confidence']:.3f}  "
            f"memorised_fraction {r['memorised_fraction']:.4f}  NFE {r['nfe']}"
        )


def _evaluate(args) -> int:
    from scorelab.pipeline import evaluate, resolve_device

    out = evaluate(args.run, device=resolve_device(args.device))
    if "classifier" in out:
        _print_image_evaluation(out)
        print(f"wrote {Path(args.run) / 'evaluation.json'}")
        return 0
    print(f"reference: {out['reference']}")
    for name, row in out["samples"].items():
        w = row.get("weights")
        extra = f"  weights {[round(v, 3) for v in w['estimated']]} (TV {w['tv']:.3f})" if w else ""
        print(f"{name}: MMD² {row['mmd']:.3g}  SW₂ {row['sliced_w2']:.3g}  NFE {row['nfe']}{extra}")
    if "fisher_divergence" in out:
        print(f"Fisher divergence of the model: {out['fisher_divergence']}")
    ll = out.get("log_likelihood")
    if ll:
        exact = f" (exact: {ll['exact']:.4g})" if "exact" in ll else ""
        print(
            f"log-likelihood (PF-ODE, nats per point, {ll['points']}): "
            f"{ll['model']:.4g}{exact}, NFE {ll['nfe']}"
        )
    print(f"wrote {Path(args.run) / 'evaluation.json'}")
    return 0


def _report(args) -> int:
    from scorelab.report import build_report

    print(f"wrote {build_report(args.run)}")
    return 0


def _experiment(args) -> int:
    from scorelab.experiments import get_experiment, list_experiments
    from scorelab.report import build_report
    from scorelab.runs import fresh_run_dir, write_json

    if args.list or args.name is None:
        for name, doc in list_experiments().items():
            print(f"{name:22s} {doc}")
        return 0
    exp = get_experiment(args.name)
    run_dir = fresh_run_dir(args.out, f"experiment-{exp.name}")
    results = exp.run(run_dir, size=args.size, seed=args.seed)
    results.setdefault("title", exp.title)
    results.setdefault("seed_ref", exp.seed_ref)
    results["size"], results["seed"] = args.size, args.seed
    write_json(run_dir / "results.json", results)
    for line in results.get("summary", []):
        print(line)
    print(f"wrote {run_dir}/results.json and {build_report(run_dir)}")
    return 0


def _demo(args) -> int:
    from scorelab.experiments.demo import DemoSettings, format_table, run_demo

    settings = DemoSettings(n=args.n, seed=args.seed)
    if args.steps is not None:
        settings = DemoSettings(n=args.n, seed=args.seed, train_steps=args.steps)
    metrics = run_demo(args.out, settings)
    print(format_table(metrics))
    print(f"wrote {metrics['run_dir']}/report.html")
    return 0


_COMMANDS = {
    "train": _train,
    "sample": _sample,
    "evaluate": _evaluate,
    "classifier": _classifier,
    "report": _report,
    "experiment": _experiment,
    "demo": _demo,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    import torch

    torch.set_num_threads(args.threads)
    try:
        return _COMMANDS[args.command](args)
    except ScorelabError as err:
        print(f"scorelab: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        where = f": {err.filename}" if err.filename else ""
        print(f"scorelab: error: {err.strerror or err}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scorelab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
