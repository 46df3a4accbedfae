#!/usr/bin/env bash
# Start a single-node Ray cluster on this machine (loopback only) with the dashboard and token auth,
# then print how to submit an mstar-ray job to it. Stop it with `ray stop`.
set -euo pipefail
cd "$(dirname "$0")/.."
# Jobs inherit the head node's environment: put the project's virtualenv first so `python` is its Python.
export PATH="$PWD/.venv/bin:$PATH"
RAY="${RAY:-ray}"
NUM_CPUS="${NUM_CPUS:-$(nproc)}"
export RAY_AUTH_MODE=token  # Ray's token authentication; the token is kept in ~/.ray/auth_token

"$RAY" start --head --node-ip-address 127.0.0.1 --dashboard-host 127.0.0.1 --dashboard-port 8265 \
    --num-cpus "$NUM_CPUS" --disable-usage-stats

QS="$PWD/.quickstart"
cat <<MSG

Ray head running on 127.0.0.1, dashboard at http://127.0.0.1:8265 (token in ~/.ray/auth_token).
Submit a run (RAY_AUTH_MODE=token must be set in the submitting shell too). The job runs in a copy of the
working directory without git-ignored files, so data, model and run directory are given as absolute paths:

  RAY_AUTH_MODE=token ray job submit --address http://127.0.0.1:8265 --working-dir . -- \\
      python -m mstar_ray run --config configs/quickstart.yaml ray.address=auto ray.num_cpus=null \\
      model.path=$QS/model data.seed_cot=$QS/data/seed.json data.labeled=$QS/data/labeled.json \\
      data.validation=$QS/data/validation.json data.test=$QS/data/test.json run.output_dir=$PWD/runs

Stop the cluster with: ray stop
MSG
