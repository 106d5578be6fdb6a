"""The launch scripts of launch/: what each would run (--dry_run), and the local one's exits.

The local launcher also runs for real in tests/test_multihost.py (2 processes training
over gloo). No SLURM or Cloud TPU is needed: those two are only dry-run here.
"""
import os
import pathlib
import shlex
import subprocess
import time

import pytest
from jax._src.clusters import slurm_cluster

LAUNCH = pathlib.Path(__file__).resolve().parents[1] / "launch"
COMMAND = [".venv/bin/python", "scripts/train.py", "--config", "configs/default.py:gru",
           "--workdir", "runs/a b", "--config.data.features_dir=/it's/feats"]


def _run(script, *args, env=None, check=True):
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(("SLURM_", "DRY_RUN", "JAX_COORDINATOR", "VIDEOJAX_TASK"))} | (env or {})
  p = subprocess.run([str(LAUNCH / script), *args], env=env, capture_output=True, text=True,
                     timeout=60)
  if check:
    assert p.returncode == 0, p.stderr
  return p


def test_local_dry_run_prints_one_command_per_process_with_its_jax_settings():
  out = _run("local.sh", "--num_processes=3", "--port=1234", "--dry_run", "--",
             *COMMAND).stdout.splitlines()
  assert len(out) == 3
  for i, line in enumerate(out):
    words = shlex.split(line)
    assert words[:3] == ["JAX_COORDINATOR_ADDRESS=localhost:1234", "JAX_NUM_PROCESSES=3",
                         f"JAX_PROCESS_ID={i}"]
    assert words[3:] == COMMAND + ["&"]
  assert _run("local.sh", "--", *COMMAND, env={"DRY_RUN": "1"}).stdout.count("\n") == 2


def test_local_stops_the_others_when_one_process_fails():
  start = time.monotonic()
  p = _run("local.sh", "--", "bash", "-c",
           'echo "id $JAX_PROCESS_ID of $JAX_NUM_PROCESSES at $JAX_COORDINATOR_ADDRESS"; '
           '[ "$JAX_PROCESS_ID" = 1 ] && exit 3; exec sleep 30', check=False)
  assert p.returncode == 3, p.stderr
  assert time.monotonic() - start < 20  # Not the 30 s of process 0's sleep.
  assert "process 1 exited with status 3; stopping the others" in p.stderr
  lines = sorted(p.stdout.splitlines())
  assert lines[0].startswith("[0] id 0 of 2 at localhost:") and lines[1].startswith("[1] id 1 of 2")
  ok = _run("local.sh", "--num_processes=2", "--", "true")
  assert ok.returncode == 0
  bad = _run("local.sh", "--num_processes=0", "--", "true", check=False)
  assert bad.returncode == 2 and "must be a positive integer" in bad.stderr


@pytest.mark.parametrize("nodelist", ["gpu[07-10],cpu1", "node3,node4", "a[3,5-6]", "solo"])
def test_slurm_dry_run_names_the_coordinator_jax_derives(nodelist, monkeypatch):
  slurm = {"SLURM_JOB_ID": "123457", "SLURM_JOB_NUM_NODES": "2", "SLURM_GPUS_ON_NODE": "4",
           "SLURM_JOB_NODELIST": nodelist}
  # PATH without scontrol: the script parses the node list itself, as JAX does.
  p = _run("slurm.sbatch", "--dry_run", *COMMAND, env=slurm | {"PATH": "/usr/bin:/bin"})
  head, srun = p.stdout.splitlines()
  for k, v in (slurm | {"SLURM_STEP_NODELIST": nodelist}).items():
    monkeypatch.setenv(k, v)
  jax_address = slurm_cluster.SlurmCluster.get_coordinator_address(None, None)
  assert head == f"job 123457: 2 node(s), 4 GPU(s) each, coordinator {jax_address} (JAX derives it)"
  # One process per node seeing all of its GPUs (JAX would give it GPU SLURM_LOCALID only).
  assert shlex.split(srun) == ["srun", "--nodes=2", "--ntasks-per-node=1", "--kill-on-bad-exit=1",
                               "env", "JAX_LOCAL_DEVICE_IDS=0,1,2,3", *COMMAND]


def test_slurm_task_per_gpu_leaves_devices_to_jax_and_refuses_to_run_outside_slurm():
  p = _run("slurm.sbatch", *COMMAND, env={"DRY_RUN": "1", "SLURM_GPUS_ON_NODE": "8",
                                          "VIDEOJAX_TASK_PER_GPU": "1"})
  assert shlex.split(p.stdout.splitlines()[1])[4:] == COMMAND
  header = (LAUNCH / "slurm.sbatch").read_text()
  assert "#SBATCH --ntasks-per-node=1\n" in header
  outside = _run("slurm.sbatch", *COMMAND, check=False)
  assert outside.returncode == 2 and "not inside a SLURM job" in outside.stderr


def test_tpu_dry_run_runs_the_command_on_every_worker():
  p = _run("tpu_pod.sh", "--tpu=my-v4-32", "--zone=us-central2-b", "--project=p", "--setup",
           "--dry_run", "--", *COMMAND)
  setup, run = (shlex.split(line) for line in p.stdout.splitlines())
  ssh = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "my-v4-32", "--zone=us-central2-b",
         "--worker=all", "--project=p"]
  assert setup[:-1] == ssh and run[:-1] == ssh
  assert setup[-1] == "--command=cd videojax && make setup && .venv/bin/pip install -q -e '.[tpu]'"
  # What each worker's shell runs: the same words as given here.
  assert shlex.split(run[-1].removeprefix("--command=")) == ["cd", "videojax", "&&", *COMMAND]
  missing = _run("tpu_pod.sh", "--tpu=x", "--dry_run", "--", "true", check=False)
  assert missing.returncode == 2 and "--zone" in missing.stderr
