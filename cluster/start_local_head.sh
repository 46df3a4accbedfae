#!/usr/bin/env bash
# Start a single-node Ray cluster on this machine (loopback only) with the dashboard and token auth,
# then print how to submit an mstar-ray job to it. Stop it with `ray stop`.
set -euo pipefail
cd "$(dirname "$0")/.."
RAY="${RAY:-.venv/bin/ray}"
NUM_CPUS="${NUM_CPUS:-$(nproc)}"
export RAY_AUTH_MODE=token  # Ray's token authentication; the token is kept in ~/.ray/auth_token

"$RAY" start --head --node-ip-address 127.0.0.1 --dashboard-host 127.0.0.1 --dashboard-port 8265 \
    --num-cpus "$NUM_CPUS" --disable-usage-stats

cat <<MSG

Ray head running on 127.0.0.1, dashboard at http://127.0.0.1:8265 (token in ~/.ray/auth_token).
Submit a run (RAY_AUTH_MODE=token must be set in the submitting shell too):

  RAY_AUTH_MODE=token $RAY job submit --address http://127.0.0.1:8265 --working-dir . -- \\
      python -m mstar_ray run --config configs/quickstart.yaml ray.address=auto ray.num_cpus=null

Stop the cluster with: $RAY stop
MSG
