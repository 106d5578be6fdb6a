"""A training run killed (SIGKILL) at a random step and resumed ends where an uninterrupted run does."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tests.test_multihost import _config, _params, _write_features
from videojax import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
OVERRIDES = {"train.checkpoint_every_steps": 1, "train.num_epochs": 6}


def _steps_on_disk(workdir: pathlib.Path) -> list[int]:
  d = workdir / "checkpoints"
  return sorted(int(p.name) for p in d.iterdir() if p.name.isdigit()) if d.is_dir() else []


def kill_once_saved(proc: subprocess.Popen, workdir: pathlib.Path, step: int,
                    timeout: float = 240.0) -> None:
  """SIGKILLs the training `proc` once `workdir` holds a checkpoint of `step` or later.

  Fails the test if training ends first or no such checkpoint comes within `timeout` s.
  """
  deadline = time.time() + timeout
  while not (_steps_on_disk(workdir) and _steps_on_disk(workdir)[-1] >= step):
    if proc.poll() is not None:
      pytest.fail(f"training ended (rc {proc.returncode}) before step {step}: "
                  f"{proc.stderr.read()[-2000:]}")
    assert time.time() < deadline, f"no checkpoint within {timeout} s"
    time.sleep(0.005)
  proc.send_signal(signal.SIGKILL)
  proc.wait()


def test_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
  features = tmp_path / "features"
  features.mkdir()
  _write_features(features, "train", 4, 10, seed=0)
  _write_features(features, "test", 2, 7, seed=1)
  config_file = tmp_path / "config.py"
  config_file.write_text(
      "from tests.test_multihost import _config\n\n\n"
      f"def get_config():\n  return _config({str(features)!r}, **{OVERRIDES!r})\n")
  reference = train.train_and_evaluate(_config(features, **OVERRIDES),
                                       str(tmp_path / "uninterrupted"), echo=lambda *_: None)
  total = reference["total_steps"]
  kill_at = int(np.random.default_rng().integers(1, total - 1))

  work = tmp_path / "killed"
  env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_NUM_CPU_DEVICES": "8",
         "TF_CPP_MIN_LOG_LEVEL": "2"}
  proc = subprocess.Popen([sys.executable, "scripts/train.py", f"--config={config_file}",
                           f"--workdir={work}"], cwd=ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
  kill_once_saved(proc, work, kill_at)
  stopped_at = _steps_on_disk(work)[-1]
  assert stopped_at < total, f"killed at step {kill_at} but all {total} steps were done"

  resumed = train.train_and_evaluate(_config(features, **OVERRIDES), str(work),
                                     echo=lambda *_: None)
  # Same devices, same batches from the step on, same dropout keys: equal to rounding.
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7),
               _params(work), _params(tmp_path / "uninterrupted"))
  assert resumed["confusion"] == reference["confusion"], f"killed after step {stopped_at}"
  np.testing.assert_allclose(resumed["test_loss"], reference["test_loss"], rtol=1e-6)
