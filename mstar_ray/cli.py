"""The `mstar` command line: prepare data and models, run M-STaR, evaluate a checkpoint."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from mstar_ray.config_io import config_to_yaml, load_config
from mstar_ray.report import results_table as _results_table  # cmd_run prints the test results with it
from mstar_ray.report import write_report

log = logging.getLogger("mstar")


def cmd_run(args: argparse.Namespace) -> int:
    from mstar_ray.driver import run_mstar

    if (args.config is None) == (args.resume is None):
        raise ValueError("give either --config (a new run) or --resume RUN_DIR (continue a stopped run)")
    config = args.config or Path(args.resume) / "config.yaml"
    if args.resume and not Path(config).is_file():
        raise FileNotFoundError(f"{args.resume} is not a run directory (no config.yaml)")
    cfg = load_config(config, args.overrides)
    print(config_to_yaml(cfg), flush=True)
    summary = run_mstar(cfg, resume=args.resume)
    print(_results_table(summary))
    run_dir = args.resume or Path(cfg.run.output_dir) / cfg.run.name
    print(f"wall time {summary['wall_seconds']} s; run directory {run_dir}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from mstar_ray.data.splits import load_datasets
    from mstar_ray.evaluation import evaluate
    from mstar_ray.groups import RolloutGroup
    from mstar_ray.resources import connect_ray
    from mstar_ray.rollout.sampling import SamplingParams

    cfg = load_config(args.config, args.overrides)
    data = load_datasets(cfg)
    prompts = getattr(data, args.split)
    connect_ray(cfg, with_trainers=False)
    r = cfg.rollout
    params = SamplingParams(r.samples_per_prompt, r.temperature, r.top_p, r.top_k, r.max_new_tokens, cfg.run.seed)
    result = evaluate(RolloutGroup(cfg, cfg.model.path), prompts, params)
    payload = {"model": cfg.model.path, "split": args.split} | result.to_dict()
    print(json.dumps(payload, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(payload, indent=2))
    return 0


def cmd_prm_label(args: argparse.Namespace) -> int:
    from mstar_ray.data.splits import load_datasets
    from mstar_ray.groups import RolloutGroup
    from mstar_ray.prm.pipeline import label_prompts
    from mstar_ray.resources import connect_ray

    cfg = load_config(args.config, args.overrides)
    data = load_datasets(cfg)
    connect_ray(cfg, with_trainers=False)
    policy = cfg.prm.label.policy or cfg.model.path
    report = label_prompts(cfg, RolloutGroup(cfg, policy), data.labeled, args.out)
    print(json.dumps(report | {"policy": policy}, indent=2))
    return 0


def cmd_prm_train(args: argparse.Namespace) -> int:
    from mstar_ray.prm.labeling import read_step_labels
    from mstar_ray.prm.pipeline import train_prm
    from mstar_ray.resources import connect_ray

    cfg = load_config(args.config, args.overrides)
    examples = read_step_labels(args.labels)
    connect_ray(cfg, prm_training_only=True)
    backbone = args.backbone or cfg.prm.label.policy or cfg.model.path
    report = train_prm(cfg, examples, backbone, args.out, str(args.labels))
    print(json.dumps(report, indent=2))
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from mstar_ray.ablate import Ablation, load_spec

    spec = load_spec(args.spec)
    if args.seeds:
        spec = spec.model_copy(update={"seeds": args.seeds})
    results = Ablation(spec, args.out).run()
    print(Path(args.out, "ablation.md").read_text())
    print(f"{sum(len(r['runs']) for t in results['tables'] for r in t['rows'])} cells; tables in {args.out}")
    return 0


def cmd_make_data(args: argparse.Namespace) -> int:
    from mstar_ray.data.synthetic import TaskSpec, write_synthetic_dataset

    spec = TaskSpec(
        seed_size=args.seed_size,
        labeled_size=args.labeled,
        validation_size=args.validation,
        test_size=args.test,
        unlabeled_size=args.unlabeled,
    )
    paths = write_synthetic_dataset(args.out, spec, seed=args.seed)
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0


def cmd_make_model(args: argparse.Namespace) -> int:
    from mstar_ray.data.synthetic import corpus_texts
    from mstar_ray.models.tiny import build_tiny_vlm

    print(f"tiny Qwen2-VL written to {build_tiny_vlm(corpus_texts(), args.out, seed=args.seed)}")
    return 0


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
    ev = sub.add_parser("eval", help="greedy accuracy and Pass@K of model.path on a split")
    ev.add_argument("--config", required=True)
    ev.add_argument("--split", default="test", choices=["test", "validation", "labeled"])
    ev.add_argument("--out", help="write the result JSON here")
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
    data.add_argument("--out", required=True)
    data.add_argument("--seed", type=int, default=0)
    data.add_argument("--seed-size", type=int, default=200, help="gold chain-of-thought examples")
    data.add_argument("--labeled", type=int, default=2000)
    data.add_argument("--validation", type=int, default=100)
    data.add_argument("--test", type=int, default=300)
    data.add_argument("--unlabeled", type=int, default=0, help="prompts for the unlabeled pool (0: no file)")
    data.set_defaults(func=cmd_make_data)
    model = sub.add_parser("make-model", help="build a tiny random-weight Qwen2-VL with its own tokenizer")
    model.add_argument("--out", required=True)
    model.add_argument("--seed", type=int, default=0)
    model.set_defaults(func=cmd_make_model)
    report = sub.add_parser("report", help="write a self-contained report (HTML or Markdown) of a run directory")
    report.add_argument("run_dir", help="run directory (run.output_dir/run.name)")
    report.add_argument("--format", default="html", choices=["html", "md"])
    report.add_argument("--out", help="file to write (default: RUN_DIR/report.html or report.md)")
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:  # config, data and layout errors: a message, not a traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
