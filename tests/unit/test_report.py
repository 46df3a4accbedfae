"""Unit tests for `mstar report`: the HTML and Markdown reports of a run directory."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

import pytest

from mstar_ray.cli import main
from mstar_ray.config.io import config_from_dict, config_to_yaml
from mstar_ray.telemetry.plots import plot_dynamics
from mstar_ray.telemetry.report import results_table, write_report

CONFIG = config_from_dict(
    {
        "model": {"path": "m"},
        "data": {"labeled": "a.json", "validation": "b.json", "test": "c.json"},  # test: loop.eval_test needs it
        "run": {"name": "tiny <&> run"},  # characters HTML must escape
    }
)
VAL_0 = {"val_prompts": 6, "val_greedy_accuracy": 0.25, "val_pass_at_k": 0.75, "val_k": 8, "val_sample_accuracy": 0.3}
VAL_0 |= {
    "val_temperature": 1.0,
    "val_random_pass_at_2": 0.5,
    "val_reward_pass_at_2": 0.5,
    "val_pass_at_k_minus_greedy": 0.5,
}
METRICS = [
    {
        "iteration": 0,
        "seed_sft": {"examples": 16, "loss": 1.5},
        "weights_version": 1,
        "total_train_steps": 0,
        "temperature": 1.0,
        **VAL_0,
        "seconds": {"seed_sft": 6.25, "evaluate": 2.0},
    },
    {
        "iteration": 1,
        "temperature_search": {
            "criterion": "reward_pass_at_2",
            "chosen": 0.7,
            "curve": [
                {"temperature": 0.7, "pass_at_k": 0.875, "random_pass_at_2": 0.5, "reward_pass_at_2": 0.625},
                {"temperature": 1.0, "pass_at_k": 0.75, "random_pass_at_2": 0.5, "reward_pass_at_2": 0.5},
            ],
            "iteration": 1,
        },
        "seconds": 3.4,
    },
]
for i, (acc, loss, greedy, pass_k) in enumerate([(0.412, 0.2797, 0.46, 0.89), (0.534, 0.2613, 0.62, 0.93)], 1):
    METRICS.append(
        {
            "iteration": i,
            "epoch": 0,
            "weights_version": i + 1,
            "prompts": 500,
            "samples": 4000,
            "rollout_weights_version": i,
            "temperature": 0.7,
            "sample_accuracy": acc,
            "prompts_with_correct": 0.8,
            "mean_response_tokens": 64.5,
            "selected": 700 + 23 * i,
            "train_examples": 700 + 23 * i,
            "train_steps": 91,
            "optimizer_steps_in_stage": 91 * i,
            "learning_rate": 0.001,
            "train_loss": loss,
            "train_tokens": 46688,
            "sync_bytes": 123456,
            "sync_gb_per_s": 1.5,
            "sync_full": True,
            "total_train_steps": 91 * i,
            "seconds": {"rollout": 40.0, "verify": 0.25, "score": 1.0, "select": 0.05, "train": 9.0, "sync": 0.0},
            "val_prompts": 100,
            "val_greedy_accuracy": greedy,
            "val_pass_at_k": pass_k,
            "val_k": 8,
            "val_sample_accuracy": 0.5,
            "val_temperature": 0.7,
            "val_random_pass_at_2": 0.66,
            "val_reward_pass_at_2": 0.71 + i / 100,
            "val_pass_at_k_minus_greedy": pass_k - greedy,
        }
    )


def _test_eval(greedy: float, pass_k: float, reward2: float | None) -> dict:
    """A test-split evaluation as summary.json holds it (K = 8)."""
    figures = {"prompts": 300, "k": 8, "sample_accuracy": 0.35, "temperature": 1.0, "random_pass_at_2": 0.6}
    return figures | {
        "greedy_accuracy": greedy,
        "pass_at_k": pass_k,
        "pass_at_k_minus_greedy": pass_k - greedy,
        "reward_pass_at_2": reward2,
    }


SUMMARY = {
    "mode": "continuous",
    "iterations": 2,
    "selection": "prm_top_k",
    "weights_version": 3,
    "final_temperature": 0.7,
    "wall_seconds": 397.2,
    "pre_evolved": _test_eval(0.5, 0.9, 0.625),
    "final": _test_eval(0.78, 0.95, 0.8),
}
DATA_REPORT = {
    "labeled": {"path": "a.json", "loaded": 1997, "skipped": {"missing_image": 3}, "examples": {}},
    "validation": {"path": "b.json", "loaded": 100, "skipped": {}, "examples": {}},
    "unlabeled": None,
}
ITER_1_CELLS = ["1", "2", "0.70", "500", "0.412", "723", "0.2797", "0.460", "0.890", "0.720", "0.660", "50.3"]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A finished run directory, written in the shapes the driver writes."""
    run = tmp_path / "runs" / "tiny"
    (run / "checkpoints" / "final").mkdir(parents=True)
    (run / "config.yaml").write_text(config_to_yaml(CONFIG))
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in METRICS))
    (run / "summary.json").write_text(json.dumps(SUMMARY, indent=2))
    (run / "data_report.json").write_text(json.dumps(DATA_REPORT, indent=2))
    plot_dynamics(METRICS, run / "dynamics.png")
    return run


def _embedded_pngs(text: str) -> list[bytes]:
    """The PNG images embedded in an HTML page as data URIs."""
    return [base64.b64decode(m) for m in re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", text)]


def test_html_report_of_a_finished_run(run_dir: Path) -> None:
    out = write_report(run_dir)
    assert out == run_dir / "report.html"
    text = out.read_text()
    assert "<td>" + "</td><td>".join(ITER_1_CELLS) + "</td>" in text
    assert "<td>2</td><td>3</td><td>0.70</td><td>500</td><td>0.534</td><td>746</td><td>0.2613</td>" in text
    assert "<td>greedy accuracy</td><td>0.500</td><td>0.780</td><td>+0.280</td>" in text
    assert "<td>Pass@8 - greedy</td><td>0.400</td><td>0.170</td><td>-0.230</td>" in text
    assert "<td>Reward-Pass@2</td><td>0.625</td><td>0.800</td><td>+0.175</td>" in text
    assert "<td>1</td><td>0.70</td><td>reward_pass_at_2</td><td>0.625</td>" in text  # the temperature search
    assert "<td>labeled</td><td>a.json</td><td>1997</td><td>3 missing_image: 3</td>" in text
    assert "<td>unlabeled</td><td>not configured</td>" in text
    for label, value in [("mode", "continuous"), ("selection", "prm_top_k"), ("iterations", "2 of 2")]:
        assert f"<td>{label}</td><td>{value}</td>" in text
    for label, value in [("wall time (s)", "397.2"), ("final temperature", "0.70"), ("weights version", "3")]:
        assert f"<td>{label}</td><td>{value}</td>" in text
    assert _embedded_pngs(text) == [(run_dir / "dynamics.png").read_bytes()]
    assert f"<pre>{html.escape(config_to_yaml(CONFIG))}</pre>" in text
    assert "name: tiny &lt;&amp;&gt; run" in text and "<&>" not in text
    page = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", text)
    assert "<link" not in page and "<script" not in page and "http" not in page  # self-contained


def test_markdown_report_refers_to_the_plot(run_dir: Path, tmp_path: Path) -> None:
    out = write_report(run_dir, fmt="md")
    text = out.read_text()
    assert out == run_dir / "report.md"
    assert "| " + " | ".join(ITER_1_CELLS) + " |" in text
    assert results_table(SUMMARY) in text
    assert "![training dynamics](dynamics.png)" in text
    assert config_to_yaml(CONFIG).strip() in text

    elsewhere = write_report(run_dir, tmp_path / "reports" / "tiny.md", fmt="md")
    target = re.search(r"!\[training dynamics\]\((.+)\)", elsewhere.read_text()).group(1)
    assert (elsewhere.parent / target).resolve() == (run_dir / "dynamics.png").resolve()


def test_results_table_keeps_the_run_command_format() -> None:
    summary = {"pre_evolved": SUMMARY["pre_evolved"], "final": SUMMARY["final"] | {"reward_pass_at_2": None}}
    assert results_table(summary).splitlines() == [
        "| test split | pre-evolved | M-STaR | change |",
        "| --- | ---: | ---: | ---: |",
        "| greedy accuracy | 0.500 | 0.780 | +0.280 |",
        "| Pass@8 | 0.900 | 0.950 | +0.050 |",
        "| Pass@8 - greedy | 0.400 | 0.170 | -0.230 |",
    ]
    assert results_table({"pre_evolved": None, "final": None}) == ""


def test_unfinished_run_says_what_is_missing(run_dir: Path) -> None:
    for name in ("summary.json", "dynamics.png", "data_report.json"):
        (run_dir / name).unlink()
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"iteration": 3, "weights_ver')  # killed mid-write

    text = write_report(run_dir).read_text()
    assert "Final evaluation missing: summary.json is missing" in text
    assert "<td>missing files</td><td>summary.json, data_report.json, dynamics.png</td>" in text
    assert "<td>wall time (s)</td><td>– (unfinished: no summary.json)</td>" in text
    assert "<td>iterations</td><td>2 of 4</td>" in text  # the configured count comes from config.yaml
    assert "<td>final temperature</td><td>0.70</td>" in text  # from the last iteration
    assert "1 unreadable line(s) of metrics.jsonl skipped" in text
    assert "<td>" + "</td><td>".join(ITER_1_CELLS) + "</td>" in text
    assert "regenerated from metrics.jsonl" in text
    assert _embedded_pngs(text)[0].startswith(b"\x89PNG\r\n\x1a\n")
    assert not (run_dir / "dynamics.png").exists()  # the run directory is only read

    md = write_report(run_dir, fmt="md")
    assert "![training dynamics](report_dynamics.png)" in md.read_text()
    assert (run_dir / "report_dynamics.png").read_bytes().startswith(b"\x89PNG")


def test_run_with_only_a_config(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text(config_to_yaml(CONFIG))
    text = write_report(tmp_path, fmt="md").read_text()
    assert "Final evaluation missing" in text
    assert "No iteration records." in text
    assert "No plot: dynamics.png is missing and metrics.jsonl has no iteration records." in text


def test_cli_report(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "report.html")
    assert (run_dir / "report.html").is_file()

    out = tmp_path / "r.md"
    assert main(["report", str(run_dir), "--format", "md", "--out", str(out)]) == 0
    assert "| greedy accuracy | 0.500 | 0.780 | +0.280 |" in out.read_text()

    missing = tmp_path / "no_such_run"
    assert main(["report", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"error: run directory {missing} does not exist"
    assert not missing.exists()

    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "is not a run directory" in capsys.readouterr().err


def test_the_report_shows_test_responses_side_by_side_with_steps_marked(run_dir: Path) -> None:
    def response(pid: str, verdicts: list[str | None], process: str) -> dict:
        steps = [{"text": f"step {i}\n\n# Answer\n\n3" if i == len(verdicts) - 1 else f"step {i}", "verdict": v}
                 for i, v in enumerate(verdicts)]  # fmt: skip
        for i, step in enumerate(steps):
            step["score"] = 0.25 * (i + 1)
        return {"id": pid, "question": "How  many?", "answer": "3", "correct": True, "process": process, "steps": steps}

    pre = [response(f"t{i}", ["false", "true"], "flawed_correct") for i in range(6)]
    final = [response(f"t{i}", ["true", "true", "true"], "process_correct") for i in range(6)]
    for name, rows in (("test_responses_pre_evolved.jsonl", pre), ("test_responses_final.jsonl", final)):
        (run_dir / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = write_report(run_dir, fmt="md").read_text()
    assert text.count("Test prompt t") == 4 and "How many? Gold answer: 3." in text
    assert "| 1 | ✗ step 0 [PRM 0.25] | ✓ step 0 [PRM 0.25] |" in text
    assert "| 2 | ✓ step 1 # Answer 3 [PRM 0.50] | ✓ step 1 [PRM 0.50] |" in text
    assert "| 3 |  | ✓ step 2 # Answer 3 [PRM 0.75] |" in text
    assert "| result | flawed_correct | process_correct |" in text


def test_ground_truth_columns_appear_only_when_the_run_has_them(run_dir: Path) -> None:
    assert "val strict" not in write_report(run_dir, fmt="md").read_text()
    records = [r | {"val_strict_accuracy": 0.25, "selected_process_correct": 0.5} for r in METRICS]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = SUMMARY | {"pre_evolved": SUMMARY["pre_evolved"] | {"strict_accuracy": 0.1}}
    (run_dir / "summary.json").write_text(json.dumps(summary | {"final": SUMMARY["final"] | {"strict_accuracy": 0.4}}))
    text = write_report(run_dir, fmt="md").read_text()
    assert "| val strict |" in text and "| selected sound |" in text and "| flaw rate |" not in text
    assert "| strict accuracy | 0.100 | 0.400 | +0.300 |" in text and "selected data, process-correct" not in text
    data = {"selected_process_correct": 0.5, "random_k_process_correct": 0.4, "selected": 30}
    data |= {"selected_advantage": 0.1, "selected_advantage_low": 0.02, "selected_advantage_high": 0.18}
    (run_dir / "summary.json").write_text(json.dumps(summary | {"selected_data": data}))
    text = write_report(run_dir, fmt="md").read_text()
    line = "50.0% of 30; random draws 40.0%; beyond random +10.0 points (95% interval +2.0 to +18.0)"
    assert f"| selected data, process-correct | {line} |" in text


def test_where_the_time_went_adds_up_each_stage_from_the_records_profiles(run_dir: Path) -> None:
    text = write_report(run_dir, fmt="md").read_text()
    assert "| - seed_sft | 6.2 |  | – |" in text  # a run without profiles: its phase seconds alone

    def profile(phases: dict[str, tuple[float, dict[str, float]]]) -> dict:
        shaped = {
            name: {"wall": wall, "compute": compute, "bytes": {}, "working": max(compute.values()), "overhead": 0.5}
            for name, (wall, compute) in phases.items()
        }
        return {"phases": shaped, "wall": sum(wall for wall, _ in phases.values()) + 1.0}

    records = [dict(r) for r in METRICS]
    records[0]["profile"] = profile({"seed_sft": (6.25, {"trainer-0": 5.75})})
    for r in records[2:]:
        r["profile"] = profile({"rollout": (40.0, {"rollout-0": 39.5, "rollout-1": 38.0})})
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = SUMMARY | {"profile": profile({"test": (20.0, {"rollout-0": 12.0, "prm-0": 7.5})})}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    text = write_report(run_dir, fmt="md").read_text()
    assert "| pre-evolution | 7.2 |  | 1.5 |" in text  # 0.5 inside the phase, 1.0 between phases
    assert "| - seed_sft | 6.2 | trainer-0 5.8 | 0.5 |" in text
    assert "| iterations | 82.0 |  | 3.0 |" in text  # two iterations added up
    assert "| - rollout | 80.0 | rollout-0 79.0, rollout-1 76.0 | 1.0 |" in text
    assert "| - test | 20.0 | prm-0 7.5, rollout-0 12.0 | 0.5 |" in text
