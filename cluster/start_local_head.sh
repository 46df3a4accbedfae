#!/usr/bin/env bash
# Start a single-node Ray cluster on this machine (loopback) with the dashboard and token auth, then print how to
# submit an mstar-ray job to it. Stop it with `ray stop` (or Ctrl-C with BLOCK=1).
#
# Environment: NUM_CPUS (default: all cores), NUM_GPUS (default: detected), RAY_PORT (GCS, 6379),
# DASHBOARD_PORT (8265), METRICS_PORT (Prometheus endpoint, 8080), RAY_TEMP_DIR (Ray's default /tmp/ray),
# BLOCK=1 to stay in the foreground until killed.
set -euo pipefail
cd "$(dirname "$0")/.."
# Jobs inherit the head node's environment: put the project's virtualenv first so `python` is its Python.
export PATH="$PWD/.venv/bin:$PATH"
RAY="${RAY:-ray}"
NUM_CPUS="${NUM_CPUS:-$(nproc)}"
RAY_PORT="${RAY_PORT:-6379}"
DASHBOARD_PORT="${DASHBOARD_PORT:-8265}"
METRICS_PORT="${METRICS_PORT:-8080}"
export RAY_AUTH_MODE=token  # Ray's token authentication

# `ray start` needs a token and does not create one: make ~/.ray/auth_token once (RAY_AUTH_TOKEN wins if set).
if [[ -z "${RAY_AUTH_TOKEN:-}" ]]; then
    "$RAY" get-auth-token --generate >/dev/null
fi

args=(start --head --node-ip-address 127.0.0.1 --port "$RAY_PORT" --dashboard-host 127.0.0.1
      --dashboard-port "$DASHBOARD_PORT" --metrics-export-port "$METRICS_PORT" --num-cpus "$NUM_CPUS"
      --disable-usage-stats)
[[ -n "${NUM_GPUS:-}" ]] && args+=(--num-gpus "$NUM_GPUS")
[[ -n "${RAY_TEMP_DIR:-}" ]] && args+=(--temp-dir "$RAY_TEMP_DIR")

QS="$PWD/.quickstart"
message() {
    cat <<MSG

Ray head on 127.0.0.1:$RAY_PORT, dashboard at http://127.0.0.1:$DASHBOARD_PORT (token: \`ray get-auth-token\`),
metrics for Prometheus at http://127.0.0.1:$METRICS_PORT/metrics.
Submit a run (RAY_AUTH_MODE=token must be set in the submitting shell too). The job runs in a copy of the
working directory without git-ignored files, so data, model and run directory are given as absolute paths:

  RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:$DASHBOARD_PORT --working-dir . \\
      --runtime-env cluster/runtime_env.yaml -- \\
      python -m mstar_ray run --config configs/quickstart.yaml \\
      model.path=$QS/model data.seed_cot=$QS/data/seed.json data.labeled=$QS/data/labeled.json \\
      data.validation=$QS/data/validation.json data.test=$QS/data/test.json run.output_dir=$PWD/runs

MSG
}

if [[ "${BLOCK:-0}" == 1 ]]; then
    message
    exec "$RAY" "${args[@]}" --block
fi
"$RAY" start "${args[@]:1}"
message
echo "Stop the cluster with: ray stop"
