"""`ray job submit` against a real single-node head started by cluster/start_local_head.sh, with token auth."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from mstar_ray.sync.transport import free_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(os.environ.get("VIRTUAL_ENV", REPO / ".venv")) / "bin" / "ray")


@pytest.fixture
def head_node():
    """A head on loopback with its own ports and temp dir, in the foreground (BLOCK=1) so it can be stopped by
    signalling its process, never with `ray stop`, which would stop every Ray instance on the machine."""
    temp_dir = tempfile.mkdtemp(prefix="mstar-ray-head-", dir="/tmp")  # short: Ray's socket paths must fit
    dashboard = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS")}
    env |= {
        "BLOCK": "1",
        "NUM_CPUS": "2",
        "RAY_PORT": str(free_port()),
        "DASHBOARD_PORT": str(dashboard),
        "METRICS_PORT": str(free_port()),
        "RAY_TEMP_DIR": temp_dir,
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
        "RAY_AUTH_MODE": "token",
    }
    log = Path(temp_dir) / "head.log"
    with log.open("w") as out:
        head = subprocess.Popen(
            ["bash", "cluster/start_local_head.sh"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{dashboard}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if urllib.request.urlopen(f"{url}/api/gcs_healthz", timeout=5).status == 200:
                break
        except OSError:
            pass
        assert head.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(1)
    yield url, env
    head.send_signal(signal.SIGTERM)
    try:
        head.wait(timeout=30)
    finally:
        try:
            os.killpg(head.pid, signal.SIGKILL)  # anything of this cluster still in its session
        except ProcessLookupError:
            pass
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_job_submit_runs_mstar_and_writes_the_run_directory(head_node, tiny_data, tiny_model, tmp_path) -> None:
    url, env = head_node
    overrides = [
        f"model.path={tiny_model}",
        f"data.seed_cot={tiny_data['seed']}",
        f"data.labeled={tiny_data['labeled']}",
        f"data.validation={tiny_data['validation']}",
        f"data.test={tiny_data['test']}",
        f"run.output_dir={tmp_path}",  # absolute: the job runs in an uploaded copy of the working directory
        "run.name=submitted",
        "rollout.backend=transformers",
        "rollout.samples_per_prompt=4",
        "rollout.max_new_tokens=32",
        "seed_sft.epochs=1",
        "prm.enabled=false",
        "loop.selection=random_k",
        "temperature.auto=false",
        "loop.iterations=1",
    ]
    cmd = [RAY, "job", "submit", "--address", url, "--working-dir", ".", "--runtime-env", "cluster/runtime_env.yaml"]
    cmd += ["--", "python", "-m", "mstar_ray", "run", "--config", "configs/quickstart.yaml", *overrides]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    assert "joining the Ray cluster at RAY_ADDRESS" in result.stdout  # the job's driver used the head, not its own Ray

    run_dir = tmp_path / "submitted"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["iterations"] == 1 and summary["weights_version"] == 2
    assert (run_dir / "checkpoints" / "iter_0001" / "driver_state.json").is_file()
    assert (run_dir / "checkpoints" / "final" / "config.json").is_file()

    # Token auth is on: the same request without the token is refused.
    no_token = {k: v for k, v in env.items() if k != "RAY_AUTH_TOKEN"} | {"HOME": str(tmp_path)}
    refused = subprocess.run([RAY, "job", "list", "--address", url], env=no_token, capture_output=True, text=True)
    assert refused.returncode != 0
