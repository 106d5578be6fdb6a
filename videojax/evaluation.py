"""Classification metrics from a confusion matrix (rows: true class, columns: predicted)."""
from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence

import numpy as np

from videojax.files import write_text_atomic


def summarize(confusion: np.ndarray, class_names: Sequence[str]) -> dict:
  """Top-1 accuracy, per-class accuracy (None for a class without examples) and counts.

  Args:
    confusion: [k, k] counts, confusion[i, j] = examples of class i predicted as j.
    class_names: k names.
  """
  confusion = np.asarray(confusion, dtype=np.int64)
  support = confusion.sum(axis=1)
  total = int(support.sum())
  per_class = {
      name: (float(confusion[i, i] / support[i]) if support[i] else None)
      for i, name in enumerate(class_names)}
  return {"accuracy": float(np.trace(confusion) / total) if total else float("nan"),
          "num_examples": total, "per_class_accuracy": per_class,
          "confusion": confusion.tolist()}


def subset_accuracy(confusion: np.ndarray, class_indices: Sequence[int]) -> float:
  """Top-1 accuracy over the examples whose true class is in `class_indices`."""
  confusion = np.asarray(confusion)
  rows = confusion[list(class_indices)]
  total = rows.sum()
  return float(sum(confusion[i, i] for i in class_indices) / total) if total else float("nan")


def write_confusion_csv(path: str | os.PathLike, confusion: np.ndarray,
                        class_names: Sequence[str]) -> None:
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(["true \\ predicted", *class_names])
  for name, row in zip(class_names, np.asarray(confusion).tolist()):
    w.writerow([name, *row])
  write_text_atomic(path, buf.getvalue())
