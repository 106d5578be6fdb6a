"""Metrics out of the math: console, JSON lines, TensorBoard and (optionally) W&B, process 0 only.

Two kinds of record, both through `MetricWriter`:

* `write(step, metrics)`: the per-epoch record (train/val loss, accuracy, ...): a line
  of metrics.jsonl (what tools/report.py and tools/ablate.py read), TensorBoard
  scalars and one console line.
* `write_scalars(step, metrics)`: per-step counters (loss, learning rate, gradient
  norm, steps/s, examples/s every config.log.every_steps) and the test metrics at the
  end: TensorBoard only (and W&B), so metrics.jsonl keeps one line per epoch.

TensorBoard files are written with tf.summary, and the run's flat config with
TensorBoard's own hparams plugin (`write_hparams`). Considered and not taken:
clu.metric_writers (flax examples' writer) installs from PyPI, but 0.0.12 (2024) is
its newest release, and its TensorBoard writer (clu.metric_writers.SummaryWriter) is
tf.summary itself: it would add a dependency (and wrapt) without changing what is written.
tensorboardX (maintained, TF-free) would be a second event-file writer beside the
TensorFlow that tf.data needs anyway. tf.summary ships with that TensorFlow.

Weights & Biases: with config.log.wandb_project set, every record also goes to a
wandb run (`wandb` must then be installed; it is never required otherwise).
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import jax

from videojax import platform
from videojax.checkpoint import DISK_FULL_ERRNOS, disk_full_error
from videojax.errors import UserError
from videojax.files import write_text_atomic


def truncate_jsonl(path: pathlib.Path, last_step: int) -> None:
  """Keeps the lines of `path` whose "step" is at most `last_step` (and whole).

  Why: a run resumed from step s redoes the steps after s; without this their
  lines would appear twice. Rewritten atomically; a missing file is left missing.
  """
  if not path.exists():
    return
  lines = path.read_text().splitlines(keepends=True)
  kept = []
  for line in lines:
    try:
      if line.endswith("\n") and json.loads(line)["step"] <= last_step:
        kept.append(line)
    except (ValueError, KeyError, TypeError):  # A half-written line from a crash.
      pass
  if kept != lines:
    write_text_atomic(path, "".join(kept))


class WandbWriter:
  """Records to a Weights & Biases run; one per workdir, resumed with it.

  Raises:
    UserError: `wandb` is not installed.
  """

  def __init__(self, project: str, directory: pathlib.Path, config: Mapping[str, Any]):
    try:
      import wandb  # Optional: only a run that asks for it needs it.
    except ImportError as e:
      raise UserError(f"config.log.wandb_project={project!r} needs the wandb package: "
                      "pip install wandb (or leave config.log.wandb_project empty)") from e
    # The same id for the same workdir: a resumed run continues its wandb run.
    run_id = hashlib.sha256(str(directory.absolute()).encode()).hexdigest()[:16]
    self.run = wandb.init(project=project, dir=str(directory), name=directory.name,
                          id=run_id, resume="allow", config=dict(config))

  def write_scalars(self, step: int, metrics: Mapping[str, float]) -> None:
    self.run.log(dict(metrics), step=step)

  def close(self) -> None:
    self.run.finish()


def hparam_value(v: Any) -> bool | int | float | str:
  """A config value as TensorBoard's hparams take it (lists and None as text)."""
  return v if isinstance(v, (bool, int, float, str)) else json.dumps(v)


class MetricWriter:
  """Writes metrics to `<dir>/metrics.jsonl`, `<dir>/tensorboard/` and the console.

  Args:
    start_step: the step training resumes from; lines of later steps (left by
      an interrupted run) are dropped from metrics.jsonl.
    wandb_project: '' for none, else also write to this W&B project (`WandbWriter`).
    hparams: the run's flat config ({dotted key: value}): TensorBoard hparams and the
      W&B run's config.
  """

  def __init__(self, directory: str | os.PathLike, echo=print, start_step: int = 0,
               wandb_project: str = "", hparams: Mapping[str, Any] | None = None):
    self.enabled = jax.process_index() == 0
    self.directory = pathlib.Path(directory)
    self._echo = echo
    self._wandb = None
    if self.enabled:
      self.directory.mkdir(parents=True, exist_ok=True)
      truncate_jsonl(self.directory / "metrics.jsonl", start_step)
      import tensorflow as tf  # pylint: disable=g-import-not-at-top  # Loads here: see pipeline.
      platform.keep_tensorflow_off_accelerators()  # TensorBoard must not take them from JAX.
      self._summary = tf.summary
      self._tb = tf.summary.create_file_writer(str(self.directory / "tensorboard"))
      if hparams:
        self.write_hparams(hparams)
      if wandb_project:
        self._wandb = WandbWriter(wandb_project, self.directory, hparams or {})

  def write_hparams(self, hparams: Mapping[str, Any]) -> None:
    """The run's settings, shown by TensorBoard's HPARAMS tab beside its metrics."""
    if not self.enabled:
      return
    from tensorboard.plugins.hparams import api as hp  # Comes with tensorboard.
    with self._tb.as_default():
      hp.hparams({k: hparam_value(v) for k, v in hparams.items()})
    self._tb.flush()

  def _append(self, line: str) -> None:
    """Appends one line, or none of it: a failed write is cut back off.

    Raises:
      DiskFull: no space left (the file is left as it was).
    """
    path = self.directory / "metrics.jsonl"
    data = line.encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
      size = os.fstat(fd).st_size
      try:
        while data:  # Unbuffered: nothing is left to flush after a failure.
          data = data[os.write(fd, data):]
      except OSError as e:
        os.ftruncate(fd, size)
        if e.errno in DISK_FULL_ERRNOS:
          raise disk_full_error(path, len(line)) from e
        raise
    finally:
      os.close(fd)

  def write(self, step: int, metrics: Mapping[str, float]) -> None:
    """The per-epoch record: a metrics.jsonl line, scalars and a console line."""
    if not self.enabled:
      return
    metrics = {k: float(v) for k, v in metrics.items()}
    self._append(json.dumps({"step": step, **metrics}) + "\n")
    self.write_scalars(step, metrics)
    self._echo(f"step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))

  def write_scalars(self, step: int, metrics: Mapping[str, float]) -> None:
    """Scalars to TensorBoard (and W&B) only: per-step counters, test metrics."""
    if not self.enabled:
      return
    with self._tb.as_default(step=step):
      for k, v in metrics.items():
        self._summary.scalar(k, float(v))
    self._tb.flush()
    if self._wandb is not None:
      self._wandb.write_scalars(step, metrics)

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
      if self._wandb is not None:
        self._wandb.close()
