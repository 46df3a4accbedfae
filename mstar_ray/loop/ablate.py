"""`mstar ablate`: the paper's comparison tables on one task, each cell a mean and spread over run seeds.

Per seed, one base run builds what every variant shares (seed SFT / warm-up, the PRM, the pre-evolved test score);
then each variant is its own `mstar run` process starting from that pre-evolved checkpoint and PRM. Runs are
named by a fingerprint of their resolved config and reused when finished (a `summary.json` exists), so an
interrupted ablation continues where it stopped and a variant that appears in several tables runs once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mstar_ray.config import ConfigError
from mstar_ray.config.io import config_to_yaml, load_config
from mstar_ray.loop.record import SELECTION_KEYS

log = logging.getLogger("mstar")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True, frozen=True)


class AblationRow(_Strict):
    name: str
    """Row label in the table."""
    overrides: list[str] = []
    """`key.sub=value` overrides of this variant on top of the table's."""
    evolve: bool = True
    """false: report the pre-evolved model itself (the 'SFT only' row)."""


class AblationTable(_Strict):
    title: str
    """Table heading."""
    overrides: list[str] = []
    """Overrides shared by the table's rows."""
    rows: list[AblationRow] = Field(min_length=1)
    """The variants compared."""


class AblationSpec(_Strict):
    config: str
    """Run config every variant starts from (a path relative to the working directory)."""
    seeds: list[int] = Field(min_length=1)
    """Run seeds; every cell is a mean over them."""
    overrides: list[str] = []
    """Overrides applied to every run, base runs included."""
    tables: list[AblationTable] = Field(min_length=1)
    """The tables to produce."""


def load_spec(path: str | Path) -> AblationSpec:
    """Read and validate an ablation spec, and check every variant's config before anything runs."""
    try:
        spec = AblationSpec.model_validate(yaml.safe_load(Path(path).read_text()))
    except ValidationError as err:
        raise ConfigError(f"{path}: invalid ablation spec:\n{err}") from None
    for table in spec.tables:
        for row in table.rows:
            where = f"{path}: table {table.title!r}, row {row.name!r}"
            if not row.evolve and row.overrides:
                raise ConfigError(
                    f"{where}: a row with evolve: false reports the pre-evolved model; drop its overrides"
                )
            try:
                cfg = load_config(spec.config, spec.overrides + table.overrides + row.overrides)
            except ConfigError as err:
                raise ConfigError(f"{where}: {err}") from None
            if not cfg.loop.eval_test:
                raise ConfigError(f"{where}: the tables report the test split; set data.test and loop.eval_test=true")
    return spec


def run_key(config: str, overrides: list[str]) -> str:
    """A short fingerprint of the resolved config, so equal variants share one run."""
    return hashlib.sha256(config_to_yaml(load_config(config, overrides)).encode()).hexdigest()[:8]


class Ablation:
    """Runs the variants of a spec as `mstar run` processes and tabulates their test results."""

    def __init__(self, spec: AblationSpec, out_dir: str | Path) -> None:
        self.spec, self.out = spec, Path(out_dir).resolve()

    def _run(self, name: str, overrides: list[str], label: str) -> dict:
        run_dir = self.out / name
        summary_path = run_dir / "summary.json"
        if summary_path.is_file():
            return json.loads(summary_path.read_text())
        args = [f"run.output_dir={self.out}", f"run.name={name}", "run.overwrite=true", *overrides]
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        log_path = self.out / f"{name}.log"
        log.info("ablation run %s: %s (log: %s)", name, label, log_path)
        start = time.perf_counter()
        with log_path.open("w") as out:
            cmd = [sys.executable, "-m", "mstar_ray", "run", "--config", self.spec.config, *args]
            code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
        if code != 0:
            raise RuntimeError(f"ablation run {name} failed (exit {code}); see {log_path}")
        log.info("ablation run %s finished in %.0f s", name, time.perf_counter() - start)
        return json.loads(summary_path.read_text())

    def base(self, seed: int) -> tuple[Path, dict]:
        """The seed's shared pre-evolved model and PRM (a run with no iterations)."""
        overrides = [f"run.seed={seed}", *self.spec.overrides, "loop.iterations=0"]
        name = f"seed{seed}/base-{run_key(self.spec.config, overrides)}"  # a changed spec builds a new base
        return self.out / name, self._run(name, overrides, "pre-evolved model and PRM")

    def variant(self, seed: int, base_dir: Path, table: AblationTable, row: AblationRow) -> dict:
        shared = [
            f"model.path={base_dir / 'checkpoints' / 'pre_evolved'}",
            "seed_sft.enabled=false",
            "warmup.enabled=false",
        ]
        prm_dir = base_dir / "prm"
        if prm_dir.is_dir():
            shared.append(f"prm.path={prm_dir}")
        overrides = [f"run.seed={seed}", *self.spec.overrides, *shared, *table.overrides, *row.overrides]
        return self._run(f"seed{seed}/{run_key(self.spec.config, overrides)}", overrides, row.name)

    def run(self) -> dict:
        """Every base and variant run; returns the results written to ablation.json."""
        tables = [{"title": t.title, "rows": [{"name": r.name, "runs": []} for r in t.rows]} for t in self.spec.tables]
        for seed in self.spec.seeds:
            base_dir, base_summary = self.base(seed)
            for table, out_table in zip(self.spec.tables, tables, strict=True):
                for row, out_row in zip(table.rows, out_table["rows"], strict=True):
                    summary = self.variant(seed, base_dir, table, row) if row.evolve else base_summary
                    run = {"seed": seed, "test": summary["final"], "wall_seconds": summary["wall_seconds"]}
                    out_row["runs"].append(run | {"selected_data": summary.get("selected_data")})
        results = {"config": self.spec.config, "seeds": self.spec.seeds, "tables": tables}
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "ablation.json").write_text(json.dumps(results, indent=2))
        (self.out / "ablation.md").write_text(markdown(results))
        return results


def _mean_sd(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * spread:.1f}"


def _cell(values: list[float | None]) -> str:
    """Mean ± sd in percent, or a dash unless every run has the figure."""
    return _mean_sd(values) if values and all(v is not None for v in values) else "-"


def markdown(results: dict) -> str:
    """The tables as markdown: test greedy accuracy, Pass@K, Reward-Pass@2 and, where the data has ground truth,
    strict accuracy and how process-correct the selected data was (beside random-k's expectation, and how far above
    as many random draws), in percent, mean ± standard deviation over seeds."""
    seeds = ", ".join(str(s) for s in results["seeds"])
    parts = [f"Test split, percent, mean ± sd over run seeds {seeds} (config `{results['config']}`).\n"]
    for table in results["tables"]:
        k = table["rows"][0]["runs"][0]["test"]["k"]
        runs = [r for row in table["rows"] for r in row["runs"]]
        truth = any(r["test"].get("strict_accuracy") is not None for r in runs)
        parts.append(f"### {table['title']}\n")
        extra = " strict accuracy | selected sound | random-k sound | sound beyond random |" if truth else ""
        parts.append(f"| variant | accuracy (greedy) | Pass@{k} | Reward-Pass@2 |{extra} per seed (greedy) |")
        parts.append("| --- | ---: | ---: | ---: |" + " ---: |" * (4 if truth else 0) + " --- |")
        for row in table["rows"]:
            tests = [r["test"] for r in row["runs"]]
            greedy = [t["greedy_accuracy"] for t in tests]
            cells = [_mean_sd(greedy), _mean_sd([t["pass_at_k"] for t in tests])]
            cells.append(_cell([t.get("reward_pass_at_2") for t in tests]))
            if truth:
                selected = [r.get("selected_data") or {} for r in row["runs"]]
                cells.append(_cell([t.get("strict_accuracy") for t in tests]))
                cells += [_cell([s.get(key) for s in selected]) for key in (*SELECTION_KEYS[:2], "selected_advantage")]
            per_seed = ", ".join(f"{100 * g:.1f}" for g in greedy)
            parts.append(f"| {row['name']} | {' | '.join(cells)} | {per_seed} |")
        parts.append("")
    return "\n".join(parts)
