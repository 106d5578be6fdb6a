"""Figures of a run's results, written as PNG files.

matplotlib runs with the Agg backend (no display needed); every file is written
to a temporary name beside its destination, then renamed, so a PNG that exists
is whole.
"""
from __future__ import annotations

import os
import pathlib
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # Before pyplot: headless machines and CI have no display.

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure_atomic(fig, path: str | os.PathLike, dpi: int = 100) -> pathlib.Path:
  """Saves `fig` as a PNG at `path` (temporary file, then rename) and closes it."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
  try:
    fig.savefig(tmp, format="png", dpi=dpi)
    os.replace(tmp, path)
  finally:
    plt.close(fig)
    tmp.unlink(missing_ok=True)
  return path


def confusion_png(path: str | os.PathLike, confusion: np.ndarray,
                  class_names: Sequence[str]) -> pathlib.Path:
  """Draws a confusion matrix as a heat map, rows normalised to the true class.

  Colours show each row as a fraction of its class's examples (a row of a class
  without examples stays blank), so rare classes are as readable as common ones;
  counts are written in the cells while the matrix is small enough to read them.

  Args:
    path: the PNG file to write.
    confusion: i64[k, k] counts, confusion[i, j] = examples of class i predicted as j.
    class_names: k names.

  Raises:
    ValueError: confusion is not [k, k] with k = len(class_names).
  """
  confusion = np.asarray(confusion)
  k = len(class_names)
  if confusion.shape != (k, k):
    raise ValueError(f"confusion has shape {confusion.shape}; {k} class names need ({k}, {k})")
  support = confusion.sum(axis=1, keepdims=True)
  with np.errstate(invalid="ignore", divide="ignore"):
    rate = np.where(support > 0, confusion / np.maximum(support, 1), np.nan)
  # Grows with k up to a cap; past ~40 classes the tick labels get small, not unreadable.
  side = min(4 + 0.25 * k, 30)
  fig, ax = plt.subplots(figsize=(side + 1.5, side))
  image = ax.imshow(rate, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
  fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
  # Half a row's height (the axes take ~3/4 of the figure, 72 points an inch), 3 to 9 points.
  font = float(np.clip(0.5 * 72 * 0.75 * side / max(k, 1), 3.0, 9.0))
  ax.set_xticks(range(k), labels=class_names, rotation=90, fontsize=font)
  ax.set_yticks(range(k), labels=class_names, fontsize=font)
  title = max(10.0, side)  # big figures get big titles, or they vanish
  ax.set_xlabel("predicted", fontsize=title)
  ax.set_ylabel("true", fontsize=title)
  ax.set_title(f"Confusion ({int(confusion.sum())} clips)", fontsize=title * 1.2)
  if k <= 30:
    for i, j in zip(*np.nonzero(confusion)):
      ax.text(j, i, str(int(confusion[i, j])), ha="center", va="center", fontsize=font,
              color="white" if rate[i, j] > 0.5 else "black")
  fig.tight_layout()
  return save_figure_atomic(fig, path)


def _legend(ax, count: int) -> None:
  """A legend inside the axes while it is short, beside them when it is long."""
  if count > 6:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
  elif count:
    ax.legend(fontsize=8)


def errorbar_png(path: str | os.PathLike,
                 series: Mapping[str, tuple[Sequence, Sequence[float], Sequence[float]]], *,
                 xlabel: str, ylabel: str, title: str = "") -> pathlib.Path:
  """Draws one line with error bars per series, e.g. accuracy against sequence length.

  Args:
    path: the PNG file to write.
    series: label -> (xs, means, stds), three sequences of equal length n. Numeric
      xs share a numeric axis; otherwise the distinct xs are categories, in
      first-seen order. A NaN std draws no bar (one seed).
    xlabel, ylabel, title: the axis labels and the title.

  Raises:
    ValueError: a series whose three sequences differ in length.
  """
  for label, (xs, ms, ss) in series.items():
    if not len(xs) == len(ms) == len(ss):
      raise ValueError(f"series {label!r}: {len(xs)} xs, {len(ms)} means, {len(ss)} stds")
  all_x = [x for xs, _, _ in series.values() for x in xs]
  numeric = all(isinstance(x, (int, float, np.integer, np.floating)) for x in all_x)
  categories = list(dict.fromkeys(map(str, all_x)))
  fig, ax = plt.subplots(figsize=(7 + (2.5 if len(series) > 6 else 0), 4.5))
  for label, (xs, ms, ss) in series.items():
    order = np.argsort(np.asarray(xs, float)) if numeric else np.arange(len(xs))
    px = (np.asarray(xs, float)[order] if numeric
          else np.array([categories.index(str(xs[i])) for i in order], float))
    ms, ss = np.asarray(ms, float)[order], np.asarray(ss, float)[order]
    ax.errorbar(px, ms, yerr=np.where(np.isnan(ss), 0.0, ss), marker="o", capsize=4,
                label=label)
  if numeric:
    ax.set_xticks(sorted(set(float(x) for x in all_x)))
    ax.xaxis.set_major_formatter("{x:g}")
  else:
    ax.set_xticks(range(len(categories)), labels=categories,
                  rotation=30 if max(map(len, categories), default=0) > 8 else 0)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_title(title)
  ax.grid(alpha=0.3)
  _legend(ax, len(series))
  fig.tight_layout()
  return save_figure_atomic(fig, path)


def curves_png(path: str | os.PathLike,
               panels: Mapping[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]], *,
               xlabel: str, title: str = "") -> pathlib.Path:
  """Draws curves side by side, one panel per metric, e.g. loss and accuracy per epoch.

  Args:
    path: the PNG file to write.
    panels: y label -> {line label -> (xs, ys)}; an empty mapping draws one empty
      panel saying there is nothing to plot.
    xlabel: the x axis of every panel.
    title: the figure title.
  """
  panels = dict(panels) or {"": {}}
  long_legend = max(len(lines) for lines in panels.values()) > 6
  fig, axes = plt.subplots(1, len(panels), squeeze=False,
                           figsize=(6 * len(panels) + (2.5 if long_legend else 0), 4.2))
  for ax, (ylabel, lines) in zip(axes[0], panels.items()):
    for label, (xs, ys) in lines.items():
      ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=label)
    if not lines:
      ax.text(0.5, 0.5, "nothing logged yet", ha="center", va="center",
              transform=ax.transAxes)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    _legend(ax, len(lines))
  fig.suptitle(title)
  fig.tight_layout()
  return save_figure_atomic(fig, path)
