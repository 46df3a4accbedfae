"""The ablation spec: validated before anything runs, equal variants share a run, tables render from results."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mstar_ray.config import ConfigError
from mstar_ray.loop.ablate import load_spec, markdown, run_key

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_paper_tables_spec_validates() -> None:
    spec = load_spec(ROOT / "configs" / "ablate" / "paper_tables.yaml")
    assert [len(t.rows) for t in spec.tables] == [7, 6, 2, 3]
    assert spec.config == "configs/ablate/synthetic.yaml"


def _write(tmp_path: Path, spec: dict) -> Path:
    (tmp_path / "run.yaml").write_text("model: {path: /m}\ndata: {labeled: l, validation: v, test: t}\n")
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"config": str(tmp_path / "run.yaml"), "seeds": [0]} | spec))
    return path


def test_a_bad_variant_is_named_before_anything_runs(tmp_path: Path) -> None:
    rows = [{"name": "ok", "overrides": ["loop.iterations=2"]}, {"name": "typo", "overrides": ["loop.iteratons=2"]}]
    with pytest.raises(ConfigError, match=r"table 'T', row 'typo'(.|\n)*loop\.iteratons: unknown key"):
        load_spec(_write(tmp_path, {"tables": [{"title": "T", "rows": rows}]}))
    frozen = [{"name": "SFT only", "evolve": False, "overrides": ["loop.iterations=2"]}]
    with pytest.raises(ConfigError, match="evolve: false reports the pre-evolved model"):
        load_spec(_write(tmp_path, {"tables": [{"title": "T", "rows": frozen}]}))
    no_test = [{"name": "x", "overrides": ["loop.eval_test=false"]}]
    with pytest.raises(ConfigError, match="the tables report the test split"):
        load_spec(_write(tmp_path, {"tables": [{"title": "T", "rows": no_test}]}))
    with pytest.raises(ConfigError, match="invalid ablation spec"):
        load_spec(_write(tmp_path, {"tables": [{"title": "T", "rows": [{"name": "x", "overides": []}]}]}))


def test_equal_resolved_configs_share_a_key(tmp_path: Path) -> None:
    config = str(_write(tmp_path, {"tables": [{"title": "T", "rows": [{"name": "x"}]}]}).parent / "run.yaml")
    a = run_key(config, ["loop.selection=random_k", "loop.interval=0.5"])
    assert a == run_key(config, ["loop.interval=0.5", "loop.selection=random_k"])
    assert a != run_key(config, ["loop.interval=0.25", "loop.selection=random_k"])


def test_markdown_shows_mean_and_spread_per_row() -> None:
    def test(greedy: float, rp2: float | None) -> dict:
        return {"greedy_accuracy": greedy, "pass_at_k": 0.9, "k": 8, "reward_pass_at_2": rp2}

    results = {
        "config": "c.yaml",
        "seeds": [0, 1],
        "tables": [
            {
                "title": "Selection",
                "rows": [
                    {
                        "name": "Random-2",
                        "runs": [{"seed": 0, "test": test(0.70, None)}, {"seed": 1, "test": test(0.80, None)}],
                    },
                    {
                        "name": "PRM top-2",
                        "runs": [{"seed": 0, "test": test(0.75, 0.8)}, {"seed": 1, "test": test(0.85, 0.9)}],
                    },
                ],
            }
        ],
    }
    text = markdown(results)
    assert "### Selection" in text and "| variant | accuracy (greedy) | Pass@8 | Reward-Pass@2 |" in text
    assert "| Random-2 | 75.0 ± 7.1 | 90.0 ± 0.0 | - | 70.0, 80.0 |" in text
    assert "| PRM top-2 | 80.0 ± 7.1 | 90.0 ± 0.0 | 85.0 ± 7.1 | 75.0, 85.0 |" in text


def test_markdown_adds_the_process_columns_where_the_data_has_ground_truth() -> None:
    def run(seed: int, strict: float, selected: float | None) -> dict:
        test = {"greedy_accuracy": 0.8, "pass_at_k": 0.9, "k": 8, "reward_pass_at_2": None, "strict_accuracy": strict}
        keys = {"selected_process_correct": selected, "random_k_process_correct": 0.5, "selected_advantage": 0.4}
        data = keys if selected else None
        return {"seed": seed, "test": test, "selected_data": data}

    rows = [
        {"name": "SFT only", "runs": [run(0, 0.2, None), run(1, 0.3, None)]},
        {"name": "Oracle top-2", "runs": [run(0, 0.5, 0.9), run(1, 0.7, 1.0)]},
    ]
    text = markdown({"config": "c.yaml", "seeds": [0, 1], "tables": [{"title": "Selection", "rows": rows}]})
    assert "| strict accuracy | selected sound | random-k sound | sound beyond random | per seed (greedy) |" in text
    assert "| SFT only | 80.0 ± 0.0 | 90.0 ± 0.0 | - | 25.0 ± 7.1 | - | - | - | 80.0, 80.0 |" in text
    assert (
        "| Oracle top-2 | 80.0 ± 0.0 | 90.0 ± 0.0 | - | 60.0 ± 14.1 | 95.0 ± 7.1 | 50.0 ± 0.0 | 40.0 ± 0.0 | 80.0"
        in text
    )
