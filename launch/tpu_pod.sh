#!/usr/bin/env bash
# Runs one command on every worker of a Cloud TPU VM slice, as one multi-process JAX run.
#
#   launch/tpu_pod.sh --tpu=NAME --zone=ZONE [--project=P] [--repo_dir=videojax] [--setup] \
#       [--dry_run] -- COMMAND [ARG ...]
#
#   launch/tpu_pod.sh --tpu=my-v4-32 --zone=us-central2-b --setup -- \
#       .venv/bin/python scripts/train.py --multihost --config configs/default.py \
#       --workdir /mnt/shared/runs/gru --config.data.features_dir=/mnt/shared/feats
#
# Through `gcloud compute tpus tpu-vm ssh NAME --worker=all --command=...`, each worker runs
# `cd REPO_DIR && COMMAND` (REPO_DIR relative to the worker's home, a clone of this
# repository on each worker or on a shared disk). --multihost in the command lets JAX find
# the slice's workers and coordinator itself (videojax/distributed.py). --setup first runs
# `make setup && .venv/bin/pip install -e '.[tpu]'` on every worker. features_dir and workdir
# must be on storage every worker sees at the same path. --dry_run (or DRY_RUN=1) prints the
# gcloud commands and runs nothing.
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

tpu="" zone="" project="" repo_dir="videojax" setup=0 dry_run="${DRY_RUN:-0}"
while (($#)); do
  case "$1" in
    --tpu=*) tpu="${1#*=}" ;;
    --zone=*) zone="${1#*=}" ;;
    --project=*) project="${1#*=}" ;;
    --repo_dir=*) repo_dir="${1#*=}" ;;
    --setup) setup=1 ;;
    --dry_run) dry_run=1 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) echo "error: unknown option $1 (the command goes after --)" >&2; exit 2 ;;
  esac
  shift
done
[[ -n "$tpu" && -n "$zone" ]] || { echo "error: give --tpu=NAME and --zone=ZONE" >&2; exit 2; }
(($#)) || { echo "error: no command given after --" >&2; exit 2; }

ssh=(gcloud compute tpus tpu-vm ssh "$tpu" --zone="$zone" --worker=all)
[[ -n "$project" ]] && ssh+=(--project="$project")

run_on_all() {  # The remote shell gets one string: quote each word for it.
  local remote
  remote="cd $(printf '%q' "$repo_dir") && $1"
  if [[ "$dry_run" == 1 ]]; then
    printf '%q ' "${ssh[@]}"; printf -- "--command='%s'\n" "${remote//\'/\'\\\'\'}"
  else
    "${ssh[@]}" --command="$remote"
  fi
}

if ((setup)); then
  run_on_all "make setup && .venv/bin/pip install -q -e '.[tpu]'"
fi
command="$(printf '%q ' "$@")"
run_on_all "${command% }"
