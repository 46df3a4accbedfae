"""`mstar compare RUN_A RUN_B`: the first record in which two run directories differ, timings aside.

Two runs of one config and seed must agree line by line: the journals (`metrics.jsonl`, `prompts.jsonl`), the
PRM's step labels, the greedy test responses and the summary; then the weights they ended with (the final policy,
the trained PRM), tensor by tensor. Wall-clock figures are left out, and each run's own directory path (where it is
now, and where its config put it, for a run directory moved since) is normalised, so only what the run computed is
compared.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Keys whose values are wall-clock measurements, never results (`profile`: where the time went, telemetry/profile.py)
TIMING_KEYS = frozenset({"seconds", "wall_seconds", "sync_gb_per_s", "profile"})
# Compared in this order; a file both runs lack is skipped
RUN_FILES = ("metrics.jsonl", "prompts.jsonl", "prm_labels.jsonl")
RUN_FILES += ("test_responses_pre_evolved.jsonl", "test_responses_final.jsonl", "summary.json")
WEIGHT_DIRS = ("checkpoints/final", "prm")  # their *.safetensors, compared after the records


@dataclass(frozen=True)
class Difference:
    """Where two runs first differ."""

    file: str
    record: int | None  # line number (0-based) in a journal; None for a JSON file or a missing file
    field: str  # dotted path inside the record ("" when the file or the record count differs)
    a: Any
    b: Any

    def __str__(self) -> str:
        where = self.file if self.record is None else f"{self.file} record {self.record}"
        what = f" field {self.field}" if self.field else ""
        return f"{where}{what}: {_short(self.a)} vs {_short(self.b)}"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 200 else text[:197] + "..."


def _own_paths(run: Path) -> list[str]:
    """The ways a run's records may name its directory, longest first: as given, resolved, and as its config put
    it (`run.output_dir/run.name`, which is where it was written if it moved since)."""
    import yaml

    section = (yaml.safe_load((run / "config.yaml").read_text()) or {}).get("run") or {}
    paths = {str(run), str(run.resolve())}
    if "output_dir" in section and "name" in section:
        written = Path(section["output_dir"]) / section["name"]
        paths |= {str(written), str(written.resolve())}
    return sorted(paths, key=len, reverse=True)


def _normalised(value: Any, own_paths: list[str]) -> Any:
    """`value` without timing keys, with the run directory's own path written as RUN_DIR."""
    if isinstance(value, dict):
        return {k: _normalised(v, own_paths) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_normalised(v, own_paths) for v in value]
    if isinstance(value, str):
        for path in own_paths:
            value = value.replace(path, "RUN_DIR")
        return value
    return value


def _first_field(a: Any, b: Any, rtol: float, path: str = "") -> tuple[str, Any, Any] | None:
    """The first dotted path where `a` and `b` differ (floats within `rtol` count as equal)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            if key not in a or key not in b:
                return f"{path}{key}", a.get(key, "<absent>"), b.get(key, "<absent>")
            found = _first_field(a[key], b[key], rtol, f"{path}{key}.")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return path.rstrip(".") + "(length)", len(a), len(b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_field(x, y, rtol, f"{path}{i}.")
            if found:
                return found
        return None
    if isinstance(a, float) and isinstance(b, float) and rtol > 0:
        return None if math.isclose(a, b, rel_tol=rtol) else (path.rstrip("."), a, b)
    return None if a == b and type(a) is type(b) else (path.rstrip("."), a, b)


def _records(path: Path) -> list[Any]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [json.loads(path.read_text())]


def compare_runs(run_a: str | Path, run_b: str | Path, rtol: float = 0.0) -> tuple[Difference | None, list[str]]:
    """The first difference between two run directories (None when they agree) and the files compared."""
    a_dir, b_dir = Path(run_a), Path(run_b)
    for run in (a_dir, b_dir):
        if not (run / "config.yaml").is_file():
            raise FileNotFoundError(f"{run} is not a run directory (no config.yaml)")
    compared = []
    for name in RUN_FILES:
        fa, fb = a_dir / name, b_dir / name
        if not fa.exists() and not fb.exists():
            continue
        if fa.exists() != fb.exists():
            presence = ["present" if f.exists() else "absent" for f in (fa, fb)]
            return Difference(name, None, "", *presence), compared
        ra = [_normalised(r, _own_paths(a_dir)) for r in _records(fa)]
        rb = [_normalised(r, _own_paths(b_dir)) for r in _records(fb)]
        journal = name.endswith(".jsonl")
        for i, (x, y) in enumerate(zip(ra, rb, strict=False)):  # the shorter run's records, then the count
            found = _first_field(x, y, rtol)
            if found:
                return Difference(name, i if journal else None, *found), compared
        if len(ra) != len(rb):
            return Difference(name, None, "", f"{len(ra)} records", f"{len(rb)} records"), compared
        compared.append(f"{name} ({len(ra)} records)" if journal else name)
    for name in WEIGHT_DIRS:
        found = _weights_difference(a_dir / name, b_dir / name, name, rtol)
        if isinstance(found, Difference):
            return found, compared
        if found:
            compared.append(f"{name} ({found} tensors)")
    return None, compared


def _weights_difference(a_dir: Path, b_dir: Path, name: str, rtol: float) -> Difference | int:
    """The first tensor (by file, then name) in which two weight directories differ, or how many tensors agree:
    bit for bit, or within `rtol` of the larger magnitude."""
    from safetensors.torch import load_file

    files_a, files_b = (sorted(p.name for p in d.glob("*.safetensors")) if d.is_dir() else [] for d in (a_dir, b_dir))
    if files_a != files_b:
        return Difference(name, None, "(files)", files_a, files_b)
    count = 0
    for file in files_a:
        ta, tb = load_file(a_dir / file), load_file(b_dir / file)
        if sorted(ta) != sorted(tb):
            return Difference(f"{name}/{file}", None, "(tensor names)", sorted(ta), sorted(tb))
        for key in sorted(ta):
            x, y = ta[key], tb[key]
            if x.shape != y.shape or x.dtype != y.dtype:
                return Difference(f"{name}/{file}", None, key, f"{x.dtype}{list(x.shape)}", f"{y.dtype}{list(y.shape)}")
            gap = float((x.double() - y.double()).abs().max()) if x.numel() else 0.0
            scale = float(max(x.double().abs().max(), y.double().abs().max())) if x.numel() else 0.0
            if gap > rtol * scale or (rtol == 0 and not x.equal(y)):
                return Difference(f"{name}/{file}", None, key, "tensor", f"max abs difference {gap:.3g}")
        count += len(ta)
    return count
