"""Metrics out of the math: console, JSON lines and TensorBoard, process 0 only."""
from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Mapping

import jax
import tensorflow as tf

tf.config.set_visible_devices([], "GPU")


class MetricWriter:
  """Writes scalar metrics per step to `<dir>/metrics.jsonl` and `<dir>/tensorboard/`."""

  def __init__(self, directory: str | os.PathLike, echo=print):
    self.enabled = jax.process_index() == 0
    self.directory = pathlib.Path(directory)
    self._echo = echo
    if self.enabled:
      self.directory.mkdir(parents=True, exist_ok=True)
      self._tb = tf.summary.create_file_writer(str(self.directory / "tensorboard"))

  def write(self, step: int, metrics: Mapping[str, float]) -> None:
    if not self.enabled:
      return
    metrics = {k: float(v) for k, v in metrics.items()}
    with open(self.directory / "metrics.jsonl", "a") as f:
      f.write(json.dumps({"step": step, **metrics}) + "\n")
    with self._tb.as_default(step=step):
      for k, v in metrics.items():
        tf.summary.scalar(k, v)
    self._tb.flush()
    self._echo(f"step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))

  def close(self) -> None:
    if self.enabled:
      self._tb.close()
