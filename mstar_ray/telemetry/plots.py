"""Plots of a run's training dynamics from its metrics.jsonl rows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_VAL_KEYS = (
    "val_greedy_accuracy",
    "val_pass_at_k",
    "val_pass_at_k_minus_greedy",
    "val_reward_pass_at_2",
    "val_random_pass_at_2",
    "val_strict_accuracy",
)


def _is_number(value: Any) -> bool:
    """Return whether value is a plottable real number."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _series(rows: Sequence[dict], key: str) -> tuple[list[float], list[float]]:
    """Return (training steps, values) of the rows where key holds a number."""
    points = [(_step(r), r[key]) for r in rows if _is_number(r.get(key))]
    return [x for x, _ in points], [y for _, y in points]


def _step(row: dict) -> float:
    """Return the x coordinate (cumulative optimizer steps) of an iteration row."""
    # The pre-evolution row has trained nothing, whatever it records.
    return 0 if row["iteration"] == 0 else row.get("total_train_steps", 0)


def plot_dynamics(records: Sequence[dict], out_png: str | Path) -> Path:
    """Plot the training dynamics of a run (like the paper's dynamics figures) and save them as a PNG."""
    iters = [r for r in records if _is_number(r.get("iteration")) and "temperature_search" not in r]
    if not any(r["iteration"] >= 1 for r in iters):
        raise ValueError("no iteration records to plot")
    iters.sort(key=lambda r: (r["iteration"], _step(r)))
    searches = [r["temperature_search"] for r in records if isinstance(r.get("temperature_search"), dict)]
    val_rows = [r for r in iters if any(_is_number(r.get(k)) for k in _VAL_KEYS)]
    ks = [r["val_k"] for r in val_rows if _is_number(r.get("val_k"))]
    k_label = f"Pass@{ks[-1]}" if ks else "Pass@K"

    n_panels = 3 if searches else 2
    fig = Figure(figsize=(6 * n_panels, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, n_panels, squeeze=False)[0]

    ax = axes[0]
    lines = (
        ("val_greedy_accuracy", "Greedy accuracy", "-"),
        ("val_pass_at_k", k_label, "-"),
        ("val_pass_at_k_minus_greedy", f"{k_label} - greedy", "-"),
        ("val_reward_pass_at_2", "Reward-Pass@2", "-"),
        ("val_random_pass_at_2", "Random Pass@2", "--"),
        ("val_strict_accuracy", "Strict accuracy (steps true)", "-."),
    )
    for key, label, style in lines:
        xs, ys = _series(val_rows, key)
        if xs:
            ax.plot(xs, ys, style, marker="o", label=label)
    ax.set_ylim(0, 1)
    ax.set_title("Validation metrics")
    ax.set_xlabel("Training step")
    ax.set_ylabel("Accuracy")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)

    ax = axes[1]
    xs, ys = _series([r for r in iters if r["iteration"] >= 1], "temperature")
    if xs:
        ax.step(xs, ys, where="post", marker="o", color="tab:red")
    ax.set_title("Sampling temperature")
    ax.set_xlabel("Training step")
    ax.set_ylabel("Temperature")
    ax.grid(alpha=0.3)

    if searches:
        ax = axes[2]
        criteria = sorted({str(s.get("criterion", "pass_at_k")) for s in searches})
        for search in searches:
            criterion = search.get("criterion", "pass_at_k")
            curve = [p for p in search.get("curve") or [] if isinstance(p, dict) and _is_number(p.get("temperature"))]
            points = sorted((p["temperature"], p[criterion]) for p in curve if _is_number(p.get(criterion)))
            if not points:
                continue
            temps, values = [x for x, _ in points], [y for _, y in points]
            (line,) = ax.plot(temps, values, marker="o", label=f"iter {search.get('iteration', '?')}")
            chosen = search.get("chosen")
            hits = [y for x, y in points if _is_number(chosen) and abs(x - chosen) < 1e-9]
            if hits:
                ax.plot([chosen], [hits[0]], marker="*", markersize=16, color=line.get_color(), linestyle="none")
            elif _is_number(chosen):
                ax.axvline(chosen, color=line.get_color(), linestyle=":")
        ax.set_title("Temperature search (★ = chosen)")
        ax.set_xlabel("Temperature")
        ax.set_ylabel(" / ".join(criteria))
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        ax.grid(alpha=0.3)

    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    return out
