"""Classification metrics: from a confusion matrix, and from class probabilities.

Pure numpy (scikit-learn is only the tests' reference). Conventions, each
checked against scikit-learn in tests/test_metrics.py and tests/test_evaluate.py:

* Predictions are the argmax of the probabilities; ranks for top-k break ties
  toward the lower class index, as `np.argmax` / `jnp.argmax` do, so top-1 is the
  accuracy that training reports.
* Precision, recall, F1 per class use scikit-learn's `zero_division=0`: a ratio
  whose denominator is zero counts 0 (precision of a class never predicted).
  Recall and F1 of a class with no examples in the split are undefined and
  reported as None; macro averages run over the classes that have examples
  (scikit-learn's `labels=<classes present>`, `average="macro"`).
* Expected calibration error (Guo et al. 2017): the top-1 confidence (the largest
  probability) falls in one of ECE_BINS equal-width bins ((m-1)/M, m/M]; ECE is
  sum_m |B_m| / n * |accuracy(B_m) - mean confidence(B_m)|, in [0, 1].
* ROC AUC is one-vs-rest on each class's probability, ties counting one half
  (the trapezoidal ROC). It is defined only for a class with both positives and
  negatives in the split; others are None, and the macro AUC averages the rest.
"""
from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence

import numpy as np

from videojax.files import write_text_atomic


ECE_BINS = 15
PER_CLASS_COLUMNS = ("class", "support", "predicted", "accuracy", "precision", "recall", "f1",
                     "roc_auc")


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


def write_per_class_csv(path: str | os.PathLike, rows: Sequence[dict]) -> None:
  """One row per class (the `per_class` list of `classification_metrics`); None is blank."""
  buf = io.StringIO()
  w = csv.writer(buf)
  w.writerow(PER_CLASS_COLUMNS)
  for row in rows:
    w.writerow(["" if row[c] is None else row[c] for c in PER_CLASS_COLUMNS])
  write_text_atomic(path, buf.getvalue())



def check_probabilities(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """probs as f64[n, k] and labels as i64[n], validated.

  Raises:
    ValueError: shapes that disagree, no examples, labels outside [0, k), or
      non-finite probabilities.
  """
  probs = np.asarray(probs, dtype=np.float64)
  labels = np.asarray(labels)
  if probs.ndim != 2 or labels.shape != probs.shape[:1]:
    raise ValueError(f"probabilities must be [n, k] with labels [n]; got {probs.shape} and "
                     f"{labels.shape}")
  if not len(labels):
    raise ValueError("no examples to evaluate")
  k = probs.shape[1]
  if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= k:
    raise ValueError(f"labels must be integers in [0, {k}) for {k} classes; got "
                     f"[{labels.min()}, {labels.max()}]")
  if not np.isfinite(probs).all():
    raise ValueError("probabilities contain NaN or inf")
  return probs, labels.astype(np.int64)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray,
                     num_classes: int) -> np.ndarray:
  """i64[k, k] counts from i[n] labels and predictions: [i, j] = class i predicted as j."""
  flat = np.asarray(labels, np.int64) * num_classes + np.asarray(predictions, np.int64)
  return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
  """Fraction of examples whose label is among the k most probable classes.

  Ties in probability rank the lower class index first (as argmax), so k=1 is
  the argmax accuracy.

  Args:
    probs: f32[n, c] class probabilities (any scores: only their order counts).
    labels: i32[n] in [0, c).
    k: 1 <= k <= c.

  Raises:
    ValueError: k outside [1, c], or the checks of `check_probabilities`.
  """
  probs, labels = check_probabilities(probs, labels)
  if not 1 <= k <= probs.shape[1]:
    raise ValueError(f"top-k needs 1 <= k <= {probs.shape[1]} classes; got k={k}")
  # A stable sort of -p keeps tied classes in index order.
  top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
  return float((top == labels[:, None]).any(axis=1).mean())


def precision_recall_f1(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Per-class precision, recall and F1, f64[k] each, from a confusion matrix.

  Zero denominators give 0 (scikit-learn's zero_division=0), except that recall
  and F1 are NaN for a class without examples (its row of `confusion` is zero).
  """
  confusion = np.asarray(confusion, dtype=np.float64)
  tp = np.diag(confusion)
  support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
  with np.errstate(invalid="ignore", divide="ignore"):
    precision = np.where(predicted > 0, tp / predicted, 0.0)
    recall = np.where(support > 0, tp / support, np.nan)
    denom = 2 * tp + (predicted - tp) + (support - tp)  # 2tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / denom, 0.0)
  f1 = np.where(support > 0, f1, np.nan)
  return precision, recall, f1


def _midranks(x: np.ndarray) -> np.ndarray:
  """Ranks 1..n of f[n], tied values sharing the mean of their ranks."""
  _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
  ends = np.cumsum(counts)
  return (ends - (counts - 1) / 2.0)[inverse]


def roc_auc_ovr(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
  """One-vs-rest ROC AUC of each class, f64[k]; NaN where a class lacks positives or negatives.

  The AUC of class c is the probability that an example of c gets a higher
  probs[:, c] than an example of another class, ties counting one half
  (Mann-Whitney U over midranks; equal to the area under the trapezoidal ROC).

  Args:
    probs: f32[n, k] class probabilities.
    labels: i32[n] in [0, k).
  """
  probs, labels = check_probabilities(probs, labels)
  n, k = probs.shape
  auc = np.full(k, np.nan)
  support = np.bincount(labels, minlength=k)
  for c in np.flatnonzero((support > 0) & (support < n)):
    positive = labels == c
    pos, neg = int(support[c]), n - int(support[c])
    rank_sum = _midranks(probs[:, c])[positive].sum()
    auc[c] = (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg)
  return auc


def calibration_bin(confidence, num_bins: int = ECE_BINS):
  """i32 index m - 1 of the bin ((m-1)/M, m/M] of each confidence in [0, 1] (0 goes to bin 0).

  Plain arithmetic, so numpy and jax.numpy arrays (traced ones too) bin alike.
  """
  upper = -((-confidence * num_bins) // 1)  # ceil(c M): bin m holds c M in (m-1, m].
  return (upper - 1).clip(0, num_bins - 1).astype("int32")


def ece_from_bins(bins: np.ndarray) -> float:
  """ECE from f[3, M] per-bin sums: example count, confidence, correct predictions.

  sum_m |correct_m - confidence_m| / n; NaN when there are no examples.
  """
  count, confidence, correct = np.asarray(bins, np.float64)
  n = count.sum()
  return float(np.abs(correct - confidence).sum() / n) if n else float("nan")


def calibration_bins(probs: np.ndarray, labels: np.ndarray,
                     num_bins: int = ECE_BINS) -> np.ndarray:
  """f64[3, M] per-bin sums of top-1 predictions: count, confidence, correct."""
  probs, labels = check_probabilities(probs, labels)
  confidence = probs.max(axis=1)
  correct = (probs.argmax(axis=1) == labels).astype(np.float64)
  index = calibration_bin(confidence, num_bins)
  return np.stack([np.bincount(index, weights=w, minlength=num_bins)
                   for w in (np.ones_like(confidence), confidence, correct)])


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray,
                               num_bins: int = ECE_BINS) -> float:
  """Expected calibration error of top-1 predictions over `num_bins` equal-width bins.

  Args:
    probs: f32[n, k] class probabilities.
    labels: i32[n] in [0, k).

  Raises:
    ValueError: the checks of `check_probabilities`.
  """
  return ece_from_bins(calibration_bins(probs, labels, num_bins))


def _optional(x: float) -> float | None:
  return None if math.isnan(x) else float(x)


def _mean_defined(x: np.ndarray) -> float | None:
  defined = x[~np.isnan(x)]
  return float(defined.mean()) if defined.size else None


def classification_metrics(probs: np.ndarray, labels: np.ndarray,
                           class_names: Sequence[str], top_k: Sequence[int] = (1, 5)) -> dict:
  """Every metric of a split from its class probabilities (conventions: module docstring).

  Args:
    probs: f32[n, k] class probabilities.
    labels: i32[n] in [0, k).
    class_names: k names.
    top_k: the k of each `top{k}_accuracy`; None where k exceeds the number of classes.

  Returns:
    {top{k}_accuracy, ece (expected calibration error, ECE_BINS bins), macro_precision,
    macro_recall, macro_f1, macro_roc_auc, num_examples, num_classes, classes_in_split, classes_with_auc, confusion
    i64[k, k], per_class: [{class, support, predicted, accuracy, precision, recall,
    f1, roc_auc}, ...]}; macro values are None when no class qualifies.

  Raises:
    ValueError: len(class_names) != k, or the checks of `check_probabilities`.
  """
  probs, labels = check_probabilities(probs, labels)
  k = probs.shape[1]
  if len(class_names) != k:
    raise ValueError(f"{len(class_names)} class names for probabilities of {k} classes")
  confusion = confusion_matrix(labels, probs.argmax(axis=1), k)
  precision, recall, f1 = precision_recall_f1(confusion)
  auc = roc_auc_ovr(probs, labels)
  support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
  present = support > 0
  out = {f"top{j}_accuracy": top_k_accuracy(probs, labels, j) if j <= k else None
         for j in top_k}
  out.update(
      ece=expected_calibration_error(probs, labels),
      macro_precision=float(precision[present].mean()),
      macro_recall=float(recall[present].mean()),
      macro_f1=float(f1[present].mean()),
      macro_roc_auc=_mean_defined(auc),
      num_examples=int(len(labels)), num_classes=k, classes_in_split=int(present.sum()),
      classes_with_auc=int((~np.isnan(auc)).sum()), confusion=confusion,
      per_class=[{"class": name, "support": int(support[i]), "predicted": int(predicted[i]),
                  "accuracy": _optional(recall[i]), "precision": float(precision[i]),
                  "recall": _optional(recall[i]), "f1": _optional(f1[i]),
                  "roc_auc": _optional(auc[i])}
                 for i, name in enumerate(class_names)])
  return out
