"""Checkpoints you can trust: the best step is kept and evaluated, a damaged latest step is
set aside, a full disk stops with one line, and metric logs never repeat a step."""
import errno
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.test_multihost import _config, _write_features
from tests.test_resume import _steps_on_disk, kill_once_saved
from videojax import checkpoint, runs, train, writers
from videojax.checkpoint import Checkpoints, DiskFull, NonFiniteCheckpoint

ROOT = pathlib.Path(__file__).resolve().parents[1]
# A learning rate so high that validation accuracy peaks before the end: the best epoch is
# not the last. meanpool: the fastest model to compile (the rule is the same for any model).
FALLING = {"model.name": "meanpool", "train.learning_rate": 1.0, "train.num_epochs": 6,
           "train.checkpoint_every_steps": 1}
QUIET = dict(echo=lambda *_: None)


@pytest.fixture(scope="module")
def features(tmp_path_factory):
  d = tmp_path_factory.mktemp("ckpt") / "features"
  d.mkdir()
  _write_features(d, "train", 4, 10, seed=0)
  _write_features(d, "test", 2, 7, seed=1)
  return d


def _metrics(workdir: pathlib.Path) -> list[dict]:
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _expected_best(workdir: pathlib.Path, metric: str = "val_accuracy", mode: str = "max") -> int:
  """The epoch-end step with the best `metric` in metrics.jsonl; ties go to the later step."""
  sign = 1 if mode == "max" else -1
  return max((sign * m[metric], m["step"]) for m in _metrics(workdir))[1]


def _digest(directory: pathlib.Path) -> dict[str, str]:
  """Every file under `directory`, relative path -> sha256: to show nothing was changed."""
  return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(directory.rglob("*")) if p.is_file()}


def _script_config(tmp_path, features, overrides) -> pathlib.Path:
  config_file = tmp_path / "config.py"
  config_file.write_text(
      "from tests.test_multihost import _config\n\n\n"
      f"def get_config():\n  return _config({str(features)!r}, **{overrides!r})\n")
  return config_file


def _train_script(config_file, workdir, *flags, **popen):
  env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_NUM_CPU_DEVICES": "8",
         "TF_CPP_MIN_LOG_LEVEL": "2"}
  return subprocess.Popen([sys.executable, "scripts/train.py", f"--config={config_file}",
                           f"--workdir={workdir}", *flags], cwd=ROOT, env=env, text=True,
                          **popen)


def test_the_best_step_is_kept_evaluated_and_loaded_after_a_kill_and_resume(features,
                                                                              tmp_path):
  # Mid-epoch saves only where the kill needs them: they change no number.
  reference = train.train_and_evaluate(
      _config(features, **{**FALLING, "train.checkpoint_every_steps": 0}), str(tmp_path / "ref"),
      **QUIET)
  best, total = _expected_best(tmp_path / "ref"), reference["total_steps"]
  assert best < total, "setup: the learning rate should make the last epoch worse"
  assert reference["best_step"] == best and reference["best_metric"] == "val_accuracy"
  assert reference["best_value"] == max(m["val_accuracy"] for m in _metrics(tmp_path / "ref"))
  assert json.loads((tmp_path / "ref" / "results.json").read_text())["best_step"] == best
  assert _steps_on_disk(tmp_path / "ref") == [best, total]  # latest and best, no others

  # Killed (SIGKILL) after the best epoch, then resumed: the best survives the resume.
  work = tmp_path / "killed"
  kill_at = int(np.random.default_rng().integers(best + 1, total))
  proc = _train_script(_script_config(tmp_path, features, FALLING), work,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
  kill_once_saved(proc, work, kill_at)
  assert best in _steps_on_disk(work)
  resumed = train.train_and_evaluate(_config(features, **FALLING), str(work), **QUIET)
  assert resumed["best_step"] == best and resumed["confusion"] == reference["confusion"]
  assert _expected_best(work) == best
  run = runs.load_run(work)  # what evaluate.py and predict.py load
  assert run.step == best
  assert run.chosen == f"step {best}, best val_accuracy={reference['best_value']:.4f}"


def test_best_metric_val_loss_min_picks_the_lowest_validation_loss(features, tmp_path):
  overrides = {**FALLING, "train.learning_rate": 0.3, "train.best_metric": "val_loss",
               "train.best_mode": "min"}
  work = tmp_path / "run"
  r = train.train_and_evaluate(_config(features, **overrides), str(work), **QUIET)
  best = _expected_best(work, "val_loss", "min")
  assert best < r["total_steps"], "setup: the last epoch should not have the lowest loss"
  assert (r["best_step"], r["best_metric"], r["best_mode"]) == (best, "val_loss", "min")
  assert runs.load_run(work).step == best  # the rule is read from the checkpoint
  with pytest.raises(ValueError, match=r"config.train.best_metric='accuracy': one of "
                                       "val_accuracy, val_loss"):
    train.train_and_evaluate(_config(features, **{"train.best_metric": "accuracy"}),
                             str(tmp_path / "bad"), **QUIET)
  assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize("damage", ["state directory", "file"])
def test_a_damaged_latest_step_falls_back_to_the_newest_whole_one(features, tmp_path, damage):
  work = tmp_path / "run"
  # Ranked by loss, epoch 1 is the best: two steps are kept (best and latest).
  overrides = {**FALLING, "train.num_epochs": 2, "train.best_metric": "val_loss",
               "train.best_mode": "min"}
  first = train.train_and_evaluate(_config(features, **overrides), str(work), **QUIET)
  older, latest = _steps_on_disk(work)
  state = work / "checkpoints" / str(latest) / "state"
  if damage == "state directory":
    shutil.rmtree(state)
  else:
    (state / "_METADATA").unlink()
  kept = _digest(work / "checkpoints" / str(older))
  logged = [m["step"] for m in _metrics(work)]
  lines = []
  again = train.train_and_evaluate(_config(features, **overrides), str(work),
                                   echo=lines.append)
  warning = [l for l in lines if l.startswith("Warning:")]
  assert len(warning) == 1 and f"checkpoints/{latest} is damaged" in warning[0], lines
  assert f"Resumed from {work.absolute()}/checkpoints/{older}" in lines
  # Retrained from the whole step to where the first run ended.
  assert again["confusion"] == first["confusion"] and again["best_step"] == first["best_step"]
  assert _digest(work / "checkpoints" / str(older)) == kept
  aside = [p for p in (work / "checkpoints").iterdir() if p.name.startswith("damaged-")]
  assert len(aside) == 1 and aside[0].name.startswith(f"damaged-{latest}-")
  # metrics.jsonl has each step once, as after an uninterrupted run.
  assert [m["step"] for m in _metrics(work)] == logged


def test_a_resumed_run_logs_each_step_once(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in (1, 2, 3))
                  + '{"step": 4, "lo')  # half a line from a kill
  w = writers.MetricWriter(tmp_path, echo=lambda *_: None, start_step=2)
  w.write(3, {"loss": 0.5})
  w.close()
  assert [json.loads(l)["step"] for l in path.read_text().splitlines()] == [1, 2, 3]


def test_a_full_disk_stops_the_metric_log_with_one_line_and_no_half_line(tmp_path,
                                                                           monkeypatch):
  w = writers.MetricWriter(tmp_path, echo=lambda *_: None)
  w.write(1, {"loss": 1.0})
  before = (tmp_path / "metrics.jsonl").read_bytes()
  real_write = os.write

  def full(fd, data):  # Writes a few bytes, then the disk is full.
    if len(data) > 4:
      real_write(fd, data[:4])
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(writers.os, "write", full)
  with pytest.raises(DiskFull, match=r"^no space left on the device of .*metrics.jsonl: about "
                                     r"0.00 MiB needed, [0-9.]+ MiB free; free some space, or "
                                     r"use another --workdir$") as e:
    w.write(2, {"loss": 0.5})
  assert "\n" not in str(e.value) and e.value.errno == errno.ENOSPC
  assert (tmp_path / "metrics.jsonl").read_bytes() == before
  w.close()


@pytest.mark.parametrize("when", ["save", "async"])
def test_a_full_disk_stops_checkpointing_with_one_line_and_keeps_the_last_step(
    features, tmp_path, monkeypatch, when):
  """save: the disk fills up as orbax starts the save; async: in its background thread,
  reported by wait_until_finished, with the OSError as the cause."""
  work = tmp_path / "run"
  first = {**FALLING, "train.num_epochs": 1, "train.checkpoint_every_steps": 0}
  train.train_and_evaluate(_config(features, **first), str(work), **QUIET)
  steps = _steps_on_disk(work)
  kept = _digest(work / "checkpoints")
  manager = checkpoint.ocp.CheckpointManager
  real_save, real_wait = manager.save, manager.wait_until_finished

  def full_save(self, step, *args, **kwargs):
    # As orbax does, write into a temporary directory first; the disk fills up there.
    partial = self.directory / f"{step}.orbax-checkpoint-tmp-1234" / "state"
    partial.mkdir(parents=True)
    (partial / "chunk").write_bytes(b"x" * 100)
    if when == "save":
      raise ValueError(f"Error writing {partial}/chunk: [OS error: No space left on device]")

  def full_wait(self):
    if list(self.directory.glob("*.orbax-checkpoint-tmp-*")):
      raise RuntimeError("Save Finalize thread failed") from OSError(
          errno.ENOSPC, "No space left on device")
    real_wait(self)

  monkeypatch.setattr(manager, "save", full_save)
  monkeypatch.setattr(manager, "wait_until_finished", full_wait)
  with pytest.raises(DiskFull, match=r"^no space left on the device of .*checkpoints: about "
                                     r"[0-9.]+ MiB needed, [0-9.]+ MiB free; free some space, or "
                                     r"use another --workdir$"):
    train.train_and_evaluate(_config(features, **{**first, "train.num_epochs": 2}), str(work),
                             **QUIET)
  monkeypatch.setattr(manager, "save", real_save)
  monkeypatch.setattr(manager, "wait_until_finished", real_wait)
  assert _steps_on_disk(work) == steps and _digest(work / "checkpoints") == kept
  assert not list((work / "checkpoints").glob("*tmp*"))


def test_load_run_refuses_non_finite_parameters(features, tmp_path):
  work = tmp_path / "run"
  train.train_and_evaluate(_config(features, **{"train.num_epochs": 1}), str(work), **QUIET)
  ckpts = Checkpoints(work / "checkpoints")
  step = ckpts.latest_step()
  state, meta = ckpts.restore_raw(step), ckpts.read_meta(step)
  state["params"] = jax.tree.map(lambda x: np.full_like(x, np.nan), state["params"])
  ckpts.save(step + 1, state, meta, meta["metrics"])
  ckpts.close()
  with pytest.raises(NonFiniteCheckpoint, match=rf"checkpoints/{step + 1} holds NaN/inf "
                                                r"parameters .*lower train.learning_rate"):
    runs.load_run(work)
