#!/usr/bin/env bash
# Join this machine to a running mstar-ray Ray cluster as a worker node, with Ray's token authentication on.
#
#   cluster/add_worker.sh HEAD_IP:PORT            # or: RAY_HEAD_ADDRESS=HEAD_IP:PORT cluster/add_worker.sh
#
# The head must listen on an address this machine can reach: cluster/start_local_head.sh binds to 127.0.0.1, so
# other machines cannot join it; docs/cluster.md shows the `ray start --head` line for a head other nodes can join.
#
# Token: every node uses the head's token. Ray looks for it in this order (Ray docs, "Ray token authentication"):
#   1. RAY_AUTH_TOKEN        the token itself
#   2. RAY_AUTH_TOKEN_PATH   a file holding the token
#   3. ~/.ray/auth_token     the default file; copy the head's, e.g. `scp HEAD:~/.ray/auth_token ~/.ray/auth_token`
#
# Environment overrides:
#   NUM_CPUS   logical CPUs this node offers (default: all, `nproc`)
#   NUM_GPUS   GPUs this node offers (default: unset, Ray detects them)
#   NODE_IP    this node's address as the other nodes see it (default: Ray picks one)
#   RAY        the ray command (default: `ray` from the project's .venv)
#
# This machine needs the same checkout and environment as the head (.venv with the same Ray, torch, vLLM and the
# project installed), and the data, model and run directories at the same absolute paths on shared storage.
# Leave the cluster with `ray stop` on this machine.
set -euo pipefail

usage() {
    cat >&2 <<'USAGE'
usage: cluster/add_worker.sh HEAD_IP:PORT
       RAY_HEAD_ADDRESS=HEAD_IP:PORT cluster/add_worker.sh
Joins this machine to the Ray cluster whose head (GCS) listens on HEAD_IP:PORT (port 6379 unless the head chose
another), with RAY_AUTH_MODE=token. The token comes from RAY_AUTH_TOKEN, the file named by RAY_AUTH_TOKEN_PATH,
or ~/.ray/auth_token (copied from the head). Overrides: NUM_CPUS, NUM_GPUS, NODE_IP, RAY.
USAGE
    exit 2
}

HEAD="${1:-${RAY_HEAD_ADDRESS:-}}"
case "$HEAD" in
    "" | -h | --help) usage ;;
esac
if [[ "$HEAD" != *:* ]]; then
    echo "add_worker.sh: head address '$HEAD' has no port; give HEAD_IP:PORT (e.g. 10.0.0.5:6379)" >&2
    usage
fi

cd "$(dirname "$0")/.."
# Ray starts this node's worker processes with the Python of the `ray` that starts the node: put the project's
# virtualenv first so actors import the same packages as on the head.
if [[ ! -x .venv/bin/python ]]; then
    echo "add_worker.sh: warning: $PWD/.venv not found; using whatever 'ray' and Python are on PATH" >&2
fi
export PATH="$PWD/.venv/bin:$PATH"
RAY="${RAY:-ray}"
NUM_CPUS="${NUM_CPUS:-$(nproc)}"
export RAY_AUTH_MODE=token  # must match the head; Ray reads it from the environment only

# Fail early, with instructions, when no token is available (the token is never printed).
if [[ -n "${RAY_AUTH_TOKEN:-}" ]]; then
    token_from="the RAY_AUTH_TOKEN environment variable"
elif [[ -n "${RAY_AUTH_TOKEN_PATH:-}" ]]; then
    if [[ ! -s "$RAY_AUTH_TOKEN_PATH" ]]; then
        echo "add_worker.sh: RAY_AUTH_TOKEN_PATH=$RAY_AUTH_TOKEN_PATH is missing or empty" >&2
        exit 1
    fi
    token_from="$RAY_AUTH_TOKEN_PATH (RAY_AUTH_TOKEN_PATH)"
elif [[ -s "$HOME/.ray/auth_token" ]]; then
    token_from="$HOME/.ray/auth_token"
else
    cat >&2 <<'MSG'
add_worker.sh: no Ray auth token. Give this node the head's token, one of:
  scp HEAD:~/.ray/auth_token ~/.ray/auth_token && chmod 600 ~/.ray/auth_token
  export RAY_AUTH_TOKEN_PATH=/path/to/token_file
  export RAY_AUTH_TOKEN=...        (on the head: RAY_AUTH_MODE=token ray get-auth-token)
MSG
    exit 1
fi

args=(start --address "$HEAD" --num-cpus "$NUM_CPUS" --disable-usage-stats)
if [[ -n "${NUM_GPUS:-}" ]]; then
    args+=(--num-gpus "$NUM_GPUS")
fi
if [[ -n "${NODE_IP:-}" ]]; then
    args+=(--node-ip-address "$NODE_IP")
fi

echo "Joining the Ray cluster at $HEAD as a worker (token from $token_from)"
"$RAY" "${args[@]}"

cat <<MSG

This node is part of the cluster at $HEAD. Check with: RAY_AUTH_MODE=token ray status --address $HEAD
Leave the cluster with: ray stop   (on this machine)
MSG
