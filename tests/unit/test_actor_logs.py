"""Actors write what they print to the run directory's log files, or keep Ray's logs where they cannot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from mstar_ray.groups.placement import actor_log_file

PRINTS = """
import os, sys
from actors.process import send_output_to
ok = send_output_to(sys.argv[1])
print("from python", flush=True)
print("to stderr", file=sys.stderr, flush=True)
os.write(1, b"from the file descriptor\\n")
sys.exit(0 if ok else 3)
"""


def run(log_file: Path) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-c", PRINTS, str(log_file)], cwd=root, capture_output=True, text=True)


def test_an_actors_output_goes_to_its_file_each_start_appended_after_a_header(tmp_path: Path) -> None:
    log = tmp_path / "run" / "logs" / "rollout-0.log"
    for _ in range(2):  # a restarted actor appends
        done = run(log)
        assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    lines = log.read_text().splitlines()
    assert [line.startswith("--- pid ") for line in lines] == [True, False, False, False] * 2
    assert lines[1:4] == ["from python", "to stderr", "from the file descriptor"]


def test_an_unwritable_log_file_leaves_the_output_where_it_was(tmp_path: Path) -> None:
    (tmp_path / "a_file").write_text("")
    done = run(tmp_path / "a_file" / "rollout-0.log")  # its folder would be a file
    assert done.returncode == 3 and "from python" in done.stdout and "to stderr" in done.stderr
    assert "stays in Ray's logs" in done.stderr


def test_only_a_runs_placement_names_log_files() -> None:
    assert actor_log_file(None, "rollout-0") is None
