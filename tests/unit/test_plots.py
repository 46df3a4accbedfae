"""Unit tests for the training-dynamics plot."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from mstar_ray.telemetry.plots import plot_dynamics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _val(greedy: float, pass_k: float, reward2: float | None, random2: float) -> dict:
    """Return a set of validation figures with K = 8."""
    return {
        "val_greedy_accuracy": greedy,
        "val_pass_at_k": pass_k,
        "val_pass_at_k_minus_greedy": pass_k - greedy,
        "val_reward_pass_at_2": reward2,
        "val_random_pass_at_2": random2,
        "val_k": 8,
    }


def _search(iteration: int, criterion: str, chosen: float) -> dict:
    """Return a temperature_search row whose curve contains the chosen temperature."""
    curve = [
        {"temperature": t, "pass_at_k": 0.5 + t / 10, "reward_pass_at_2": None if t > 1.1 else 0.4 + t / 5}
        for t in (0.3, 0.5, 0.7, 0.9, 1.1, 1.2)
    ]
    return {"temperature_search": {"iteration": iteration, "criterion": criterion, "chosen": chosen, "curve": curve}}


def _assert_png(path: Path, min_width: int = 600) -> None:
    """Check path holds a readable PNG wider than min_width."""
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > min_width


def test_plot_dynamics_full_run(tmp_path: Path) -> None:
    records = [
        {"config": {"model": "x"}},
        {"iteration": 0, **_val(0.40, 0.70, 0.50, 0.48)},
        _search(1, "reward_pass_at_2", 0.7),
        {"iteration": 1, "total_train_steps": 10, "temperature": 0.7, "train_loss": 1.2, **_val(0.45, 0.74, None, 0.5)},
        {"iteration": 2, "total_train_steps": 20, "temperature": 0.7},
        _search(3, "pass_at_k", 1.0),  # chosen value not on the curve
        {"iteration": 3, "total_train_steps": 30, "temperature": 1.0, **_val(0.50, 0.78, 0.60, 0.55)},
        {"iteration": 4, "total_train_steps": 40, "temperature": 1.0, "val_greedy_accuracy": None},
        {"event": "done"},
    ]
    out = plot_dynamics(records, tmp_path / "nested" / "dynamics.png")
    assert out == tmp_path / "nested" / "dynamics.png"
    _assert_png(out)


def test_plot_dynamics_without_iterations_raises(tmp_path: Path) -> None:
    records = [{"config": {}}, {"iteration": 0, **_val(0.4, 0.7, 0.5, 0.48)}, _search(1, "pass_at_k", 0.7)]
    with pytest.raises(ValueError, match="no iteration records to plot"):
        plot_dynamics(records, tmp_path / "x.png")
    with pytest.raises(ValueError, match="no iteration records to plot"):
        plot_dynamics([], tmp_path / "y.png")


def test_plot_dynamics_without_val_figures_or_searches(tmp_path: Path) -> None:
    records = [
        {"iteration": 1, "total_train_steps": 5, "temperature": 0.9},
        {"iteration": 2, "total_train_steps": 11, "temperature": 0.9},
    ]
    out = plot_dynamics(records, str(tmp_path / "plain.png"))
    assert isinstance(out, Path)
    _assert_png(out)
