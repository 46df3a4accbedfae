"""The `mstar` command line: prepare data and models, run M-STaR, evaluate a checkpoint."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from mstar_ray.config import MStarConfig
from mstar_ray.config.io import config_to_yaml, load_config
from mstar_ray.telemetry.report import results_table as _results_table  # cmd_run prints the test results with it
from mstar_ray.telemetry.report import write_report
from mstar_ray.toy.synthetic import QUICKSTART_TASK, STEP_ORDERS, SUMS

log = logging.getLogger("mstar")


def cmd_run(args: argparse.Namespace) -> int:
    from mstar_ray.loop.launch import run_mstar

    if (args.config is None) == (args.resume is None):
        raise ValueError("give either --config (a new run) or --resume RUN_DIR (continue a stopped run)")
    config = args.config or Path(args.resume) / "config.yaml"
    if args.resume and not Path(config).is_file():
        raise FileNotFoundError(f"{args.resume} is not a run directory (no config.yaml)")
    cfg = load_config(config, args.overrides)
    run_dir = Path(args.resume or Path(cfg.run.output_dir) / cfg.run.name)
    print(config_to_yaml(cfg), flush=True)
    print(f"resolved config above; saved as {run_dir / 'config.yaml'}", flush=True)
    summary = run_mstar(cfg, resume=args.resume, overrides=args.overrides if args.resume else ())
    print(_results_table(summary))
    if (run_dir / "benchmark_table.md").is_file():
        print((run_dir / "benchmark_table.md").read_text())
    print(f"wall time {summary['wall_seconds']} s; run directory {run_dir}:")
    print(f"  metrics.jsonl, summary.json, dynamics.png; `mstar report {run_dir}` writes the report")
    print("  checkpoints/ (pre_evolved, final, best); logs/ (each actor's output)")
    return 0


def _benchmark_overrides(args: argparse.Namespace) -> list[str]:
    """`eval.benchmarks.NAME=PATH` overrides from --benchmarks, then the key.sub=value overrides (argparse hands
    overrides that follow --benchmarks to it; benchmark names have no dot)."""
    specs = [s for s in args.benchmarks or [] if "." not in s.partition("=")[0]]
    overrides = [s for s in args.benchmarks or [] if s not in specs] + args.overrides
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--benchmarks {spec!r}: give NAME=PATH, e.g. mathvista=/data/MathVista")
        overrides.append(f"eval.benchmarks.{name}={json.dumps(path)}")  # quoted: any path is a YAML string
    return overrides


def _eval_benchmarks(cfg: MStarConfig, args: argparse.Namespace) -> int:
    from mstar_ray.eval.benchmarks.runner import benchmark_cache, benchmark_params, evaluate_benchmarks, load_benchmarks
    from mstar_ray.groups.cluster import connect_ray
    from mstar_ray.groups.rollout import RolloutGroup

    e = cfg.eval
    out = Path(args.out) if args.out else Path(cfg.run.output_dir) / "eval" / cfg.run.name
    if (out / "benchmarks.json").exists() and not cfg.run.overwrite:
        raise ValueError(f"{out} holds an evaluation already: give another --out (or run.overwrite=true)")
    loaded = load_benchmarks(e.benchmarks, benchmark_cache(cfg), cfg.data.on_bad_row, e.limit)  # before Ray
    connect_ray(cfg, with_trainers=False)
    params = benchmark_params(cfg)
    evaluate_benchmarks(RolloutGroup(cfg, cfg.model.path), loaded, params, out, cfg.model.path, args.stage)
    print((out / "benchmark_table.md").read_text())
    print(f"summaries in {out / 'benchmarks.json'}; predictions in {out / 'benchmark_predictions'}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Greedy accuracy and Pass@K on a data split, or accuracy on the paper's benchmarks (--benchmarks or
    eval.benchmarks)."""
    from mstar_ray.core.sampling import SamplingParams
    from mstar_ray.core.seeds import derive_seed
    from mstar_ray.eval.validation import evaluate
    from mstar_ray.groups.cluster import connect_ray
    from mstar_ray.groups.prm import PRMGroup
    from mstar_ray.groups.rollout import RolloutGroup
    from mstar_ray.loop.datasets import load_datasets

    if args.split and args.benchmarks:
        raise ValueError("give either --split or --benchmarks, not both")
    cfg = load_config(args.config, _benchmark_overrides(args))
    if cfg.eval.benchmarks and not args.split:
        return _eval_benchmarks(cfg, args)
    split = args.split or "test"
    data = load_datasets(cfg)
    prompts = getattr(data, split)
    connect_ray(cfg, with_trainers=False)
    r = cfg.rollout
    seed = derive_seed(cfg.run.seed, split)  # the draws of a run's own evaluation of the split, at rollout.temperature
    params = SamplingParams(r.samples_per_prompt, r.temperature, r.top_p, r.top_k, r.max_new_tokens, seed)
    prm = PRMGroup(cfg, cfg.prm.path) if cfg.prm.enabled and cfg.prm.path else None  # Reward-Pass@2, PRM pairwise
    result = evaluate(RolloutGroup(cfg, cfg.model.path), prompts, params, prm, cfg.prm.aggregation)
    payload = {"model": cfg.model.path, "prm": prm.prm_path if prm else None, "split": split} | result.to_dict()
    print(json.dumps(payload, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(payload, indent=2))
    return 0


def cmd_prm_label(args: argparse.Namespace) -> int:
    from mstar_ray.groups.cluster import connect_ray
    from mstar_ray.groups.rollout import RolloutGroup
    from mstar_ray.loop.datasets import load_datasets
    from mstar_ray.loop.prm_stage import label_prompts

    cfg = load_config(args.config, args.overrides)
    data = load_datasets(cfg)
    connect_ray(cfg, with_trainers=False)
    policy = cfg.prm.label.policy or cfg.model.path
    report = label_prompts(cfg, RolloutGroup(cfg, policy), data.labeled, args.out)
    print(json.dumps(report | {"policy": policy}, indent=2))
    return 0


def cmd_prm_train(args: argparse.Namespace) -> int:
    from mstar_ray.groups.cluster import connect_ray
    from mstar_ray.loop.prm_stage import train_prm
    from mstar_ray.prm.labeling import read_step_labels

    cfg = load_config(args.config, args.overrides)
    examples = read_step_labels(args.labels)
    connect_ray(cfg, prm_training_only=True)
    backbone = args.backbone or cfg.prm.label.policy or cfg.model.path
    report = train_prm(cfg, examples, backbone, args.out, str(args.labels))
    print(json.dumps(report, indent=2))
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from mstar_ray.loop.ablate import Ablation, load_spec

    spec = load_spec(args.spec)
    if args.seeds:
        spec = spec.model_copy(update={"seeds": args.seeds})
    results = Ablation(spec, args.out).run()
    print(Path(args.out, "ablation.md").read_text())
    print(f"{sum(len(r['runs']) for t in results['tables'] for r in t['rows'])} cells; tables in {args.out}")
    return 0


def cmd_make_data(args: argparse.Namespace) -> int:
    from mstar_ray.toy.synthetic import TaskSpec, write_synthetic_dataset

    spec = TaskSpec(
        seed_size=args.seed_size,
        labeled_size=args.labeled,
        validation_size=args.validation,
        test_size=args.test,
        unlabeled_size=args.unlabeled,
        colors=args.colors,
        kinds=tuple(args.kinds),
        max_weight=args.max_weight,
        sums=args.sums,
        false_step_share=args.false_step_share,
        irrelevant_step_share=args.irrelevant_step_share,
        step_order=args.step_order,
    )
    paths = write_synthetic_dataset(args.out, spec, seed=args.seed)
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    """Split one source dataset into labeled, unlabeled, validation and test sets and print the config to use."""
    from mstar_ray.config import DataColumnsConfig, OnBadRow
    from mstar_ray.data.paper_split import SplitSizes, config_overrides, split_dataset

    pairs = [pair.partition("=") for pair in args.column or []]
    if not all(sep and name for _, sep, name in pairs):
        raise ValueError("--column takes FIELD=NAME, e.g. --column question=problem")
    columns = DataColumnsConfig(**{key: name for key, _, name in pairs})
    sizes = SplitSizes(args.test, args.validation, args.labeled_share)
    report = split_dataset(
        args.source, args.out, sizes, args.seed, args.image_root, OnBadRow(args.on_bad_row), columns, args.image_cache
    )
    for name, path in report["files"].items():
        print(f"{name}: {report['counts'][name]} prompts -> {path}")
    load = report["load"]
    print(f"skipped {sum(load['skipped'].values())} rows {load['skipped'] or ''}".rstrip())
    print("config overrides:\n  " + " ".join(config_overrides(report)))
    return 0


def cmd_make_model(args: argparse.Namespace) -> int:
    from mstar_ray.toy.factory import build_tiny_model
    from mstar_ray.toy.synthetic import corpus_texts, read_task_spec

    spec = read_task_spec(args.data) if args.data else QUICKSTART_TASK
    out = build_tiny_model(args.family, corpus_texts(spec), args.out, seed=args.seed)
    print(f"tiny {args.family} model written to {out}")
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    """Print (and save) the paper-style table of several benchmark evaluations, one row per model and stage."""
    from mstar_ray.eval.benchmarks.results import benchmark_table
    from mstar_ray.eval.benchmarks.runner import results_rows

    text = benchmark_table([row for path in args.results for row in results_rows(path)])
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Exit 0 when two run directories agree record by record (timings aside), 1 with the first difference."""
    from mstar_ray.loop.compare import compare_runs

    difference, compared = compare_runs(args.run_a, args.run_b, args.rtol)
    if difference is None:
        print(f"identical: {', '.join(compared)}")
        return 0
    print(f"differ: {difference}")
    return 1


def cmd_report(args: argparse.Namespace) -> int:
    """Write the report of a run directory and print its path."""
    print(write_report(args.run_dir, args.out, args.format))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mstar", description="M-STaR self-evolving training on Ray.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="seed SFT / warm-up, M-STaR iterations, test evaluation")
    run.add_argument("--config", help="YAML config file of a new run")
    run.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its latest checkpoint")
    run.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    run.set_defaults(func=cmd_run)
    ev = sub.add_parser("eval", help="greedy accuracy and Pass@K of model.path on a split, or on benchmarks")
    ev.add_argument("--config", required=True)
    ev.add_argument(
        "--split", choices=["test", "validation", "labeled"], help="data split (default: test, unless benchmarks are "
        "given here or in eval.benchmarks, which are then evaluated instead)"
    )  # fmt: skip
    ev.add_argument(
        "--benchmarks", nargs="+", metavar="NAME=PATH", help="benchmarks to evaluate (mathvista, m3cot, mmstar, "
        "mmbench, ai2d) and their local files; added to eval.benchmarks"
    )  # fmt: skip
    ev.add_argument("--stage", default="", help="stage label of model.path in the benchmark table, e.g. final")
    ev.add_argument("--out", help="split: the result JSON file; benchmarks: the output folder "
                    "(default: run.output_dir/eval/run.name)")  # fmt: skip
    ev.add_argument("overrides", nargs="*")
    ev.set_defaults(func=cmd_eval)
    prm = sub.add_parser("prm", help="process reward model: Monte-Carlo step labels, training")
    prm_sub = prm.add_subparsers(dest="prm_command", required=True)
    label = prm_sub.add_parser("label", help="sample responses with prm.label.policy and label their steps")
    label.add_argument("--config", required=True)
    label.add_argument("--out", required=True, help="step-label JSONL to write")
    label.add_argument("overrides", nargs="*")
    label.set_defaults(func=cmd_prm_label)
    train = prm_sub.add_parser("train", help="train a PRM on step labels and save it as a directory")
    train.add_argument("--config", required=True)
    train.add_argument("--labels", required=True, help="step-label JSONL from `mstar prm label`")
    train.add_argument("--out", required=True, help="PRM directory to write (use it as prm.path)")
    train.add_argument("--backbone", help="policy checkpoint to start from (default: prm.label.policy or model.path)")
    train.add_argument("overrides", nargs="*")
    train.set_defaults(func=cmd_prm_train)
    ablate = sub.add_parser("ablate", help="run the paper's comparison tables over several seeds")
    ablate.add_argument("--spec", required=True, help="ablation spec YAML (see configs/ablate/)")
    ablate.add_argument("--out", required=True, help="directory for the runs, ablation.json and ablation.md")
    ablate.add_argument("--seeds", type=int, nargs="+", help="override the spec's seeds")
    ablate.set_defaults(func=cmd_ablate)
    data = sub.add_parser("make-data", help="write the synthetic colour-grid task (LLaVA JSON + PNG)")
    task = QUICKSTART_TASK  # the defaults: the task the quickstart runs on
    data.add_argument("--out", required=True)
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--seed-size", type=int, default=task.seed_size, help="gold chain-of-thought examples")
    data.add_argument("--labeled", type=int, default=task.labeled_size)
    data.add_argument("--validation", type=int, default=task.validation_size)
    data.add_argument("--test", type=int, default=task.test_size)
    data.add_argument(
        "--unlabeled", type=int, default=task.unlabeled_size, help="prompts for the unlabeled pool (0: no file)"
    )
    data.add_argument(
        "--kinds", nargs="+", default=list(task.kinds), help="question kinds: weighted, total, most, spread"
    )
    data.add_argument(
        "--sums",
        default=task.sums,
        choices=SUMS,
        help="weighted and total questions: total (one step) or running (Add steps)",
    )
    data.add_argument("--colors", type=int, default=task.colors, help="colours in the grid (2 to 5)")
    data.add_argument(
        "--max-weight", type=int, default=task.max_weight, help="weighted questions: points per cell from 1 to this"
    )
    data.add_argument(
        "--false-step-share", type=float, default=task.false_step_share, help="seed chains with a miscount"
    )
    data.add_argument(
        "--irrelevant-step-share",
        type=float,
        default=task.irrelevant_step_share,
        help="seed chains with a needless step",
    )
    data.add_argument("--step-order", default=task.step_order, choices=STEP_ORDERS, help="colour order in chains")
    data.set_defaults(func=cmd_make_data)
    split = sub.add_parser("split", help="split a source dataset (e.g. MathV360K) into labeled/unlabeled/val/test")
    split.add_argument("--source", required=True, help="dataset in any format data.labeled accepts (PATH[::SPLIT])")
    split.add_argument("--image-root", help="folder relative image paths resolve against (default: the source's)")
    split.add_argument("--out", required=True, help="folder for the four LLaVA JSON files and split_report.json")
    split.add_argument("--seed", type=int, default=0, help="shuffle seed")
    split.add_argument("--test", type=int, default=750, help="in-domain test prompts, from the unlabeled share")
    split.add_argument("--validation", type=int, default=250, help="validation prompts, from the unlabeled share")
    split.add_argument("--labeled-share", type=float, default=0.5, help="share of the prompts that is labeled")
    split.add_argument("--on-bad-row", default="skip", choices=["skip", "error"])
    split.add_argument("--column", action="append", metavar="FIELD=NAME", help="as data.columns.FIELD (repeatable)")
    split.add_argument("--image-cache", help="where embedded images are written (as data.image_cache)")
    split.set_defaults(func=cmd_split)
    model = sub.add_parser("make-model", help="build a tiny random-weight VLM with its own tokenizer and processor")
    model.add_argument("--out", required=True)
    model.add_argument("--seed", type=int, default=0)
    # checked by the factory (importing it here would load transformers for every command)
    model.add_argument("--family", default="qwen2_vl", help="model family, e.g. llava; an unknown one lists them all")
    model.add_argument(
        "--data", help="fit the tokenizer to the task make-data wrote here (default: make-data's defaults)"
    )
    model.set_defaults(func=cmd_make_model)
    report = sub.add_parser("report", help="write a self-contained report (HTML or Markdown) of a run directory")
    report.add_argument("run_dir", help="run directory (run.output_dir/run.name)")
    report.add_argument("--format", default="html", choices=["html", "md"])
    report.add_argument("--out", help="file to write (default: RUN_DIR/report.html or report.md)")
    report.set_defaults(func=cmd_report)
    compare = sub.add_parser("compare", help="the first record where two run directories differ (timings aside)")
    compare.add_argument("run_a", help="run directory")
    compare.add_argument("run_b", help="run directory")
    compare.add_argument("--rtol", type=float, default=0.0, help="relative tolerance for floats (default: exact)")
    compare.set_defaults(func=cmd_compare)
    table = sub.add_parser("table", help="one results table from several `mstar eval` outputs or run directories")
    table.add_argument(
        "results", nargs="+", help="`mstar eval --out` folders, benchmarks.json files or run directories"
    )
    table.add_argument("--out", help="also write the table (markdown) here")
    table.set_defaults(func=cmd_table)
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with `key.sub=value` overrides accepted wherever they stand among the options."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    stray = [a for a in extra if a.startswith("-") or "=" not in a]
    if stray or (extra and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or extra)}")
    if extra:
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    args = parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:  # config, data and layout errors: a message, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
