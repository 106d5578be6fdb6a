"""Metrics out of the math: console, JSON lines and TensorBoard, process 0 only."""
from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping

import jax
import tensorflow as tf

from videojax import platform
from videojax.checkpoint import DISK_FULL_ERRNOS, disk_full_error
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


class MetricWriter:
  """Writes scalar metrics per step to `<dir>/metrics.jsonl` and `<dir>/tensorboard/`.

  Args:
    start_step: the step training resumes from; lines of later steps (left by
      an interrupted run) are dropped from metrics.jsonl.
  """

  def __init__(self, directory: str | os.PathLike, echo=print, start_step: int = 0):
    self.enabled = jax.process_index() == 0
    self.directory = pathlib.Path(directory)
    self._echo = echo
    if self.enabled:
      self.directory.mkdir(parents=True, exist_ok=True)
      truncate_jsonl(self.directory / "metrics.jsonl", start_step)
      platform.keep_tensorflow_off_accelerators()  # TensorBoard must not take them from JAX.
      self._tb = tf.summary.create_file_writer(str(self.directory / "tensorboard"))

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
    if not self.enabled:
      return
    metrics = {k: float(v) for k, v in metrics.items()}
    self._append(json.dumps({"step": step, **metrics}) + "\n")
    with self._tb.as_default(step=step):
      for k, v in metrics.items():
        tf.summary.scalar(k, v)
    self._tb.flush()
    self._echo(f"step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
