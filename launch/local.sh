#!/usr/bin/env bash
# Runs one command as N processes of a multi-process JAX run on this machine.
#
#   launch/local.sh [--num_processes=2] [--port=PORT] [--dry_run] -- COMMAND [ARG ...]
#
#   launch/local.sh -- .venv/bin/python scripts/train.py --config configs/default.py \
#       --workdir runs/two_procs --config.data.features_dir=/data/feats
#
# Process i gets JAX_COORDINATOR_ADDRESS=localhost:PORT, JAX_NUM_PROCESSES=N and
# JAX_PROCESS_ID=i in its environment, which videojax/distributed.py reads (any command
# that calls videojax.distributed.initialize joins). On CPU the collectives go over gloo, so
# this stands in for N hosts: each process reads its own data parts and process 0 alone
# writes logs and results. Output lines are prefixed with "[i] ". When one process fails the
# others are stopped (they would otherwise wait for it until JAX's timeout); the exit status
# is the first failure's, else 0. --dry_run (or DRY_RUN=1) prints the commands and runs nothing.
set -euo pipefail

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

num_processes=2
port=""
dry_run="${DRY_RUN:-0}"
while (($#)); do
  case "$1" in
    --num_processes=*) num_processes="${1#*=}" ;;
    --port=*) port="${1#*=}" ;;
    --dry_run) dry_run=1 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) echo "error: unknown option $1 (the command goes after --)" >&2; exit 2 ;;
  esac
  shift
done
(($#)) || { echo "error: no command given after --" >&2; exit 2; }
[[ "$num_processes" =~ ^[1-9][0-9]*$ ]] || {
  echo "error: --num_processes=$num_processes must be a positive integer" >&2; exit 2; }

if [[ -z "$port" ]]; then
  if [[ "$dry_run" == 1 ]]; then
    port=PORT
  else  # A free port, asked of the kernel.
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("localhost", 0)); print(s.getsockname()[1])')"
  fi
fi

if [[ "$dry_run" == 1 ]]; then
  for ((i = 0; i < num_processes; i++)); do
    printf 'JAX_COORDINATOR_ADDRESS=localhost:%s JAX_NUM_PROCESSES=%s JAX_PROCESS_ID=%s' \
        "$port" "$num_processes" "$i"
    printf ' %q' "$@"
    printf ' &\n'
  done
  exit 0
fi

pids=()
stop_all() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap 'stop_all; exit 130' INT TERM
for ((i = 0; i < num_processes; i++)); do
  JAX_COORDINATOR_ADDRESS="localhost:$port" JAX_NUM_PROCESSES="$num_processes" \
      JAX_PROCESS_ID="$i" "$@" > >(sed -u "s/^/[$i] /") 2>&1 &
  pids+=($!)
done

# Polled rather than `wait -n`, which cannot wait for a process that has already exited.
status=0
running=("${!pids[@]}")
while ((${#running[@]})); do
  still=()
  for i in "${running[@]}"; do
    if kill -0 "${pids[i]}" 2>/dev/null; then
      still+=("$i")
      continue
    fi
    rc=0
    wait "${pids[i]}" || rc=$?
    if ((rc != 0 && status == 0)); then
      status=$rc
      echo "launch/local.sh: process $i exited with status $rc; stopping the others" >&2
      stop_all
    fi
  done
  running=("${still[@]}")
  ((${#running[@]})) && sleep 0.2
done
wait  # The output prefixers.
exit "$status"
