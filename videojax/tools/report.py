"""One-page Markdown and HTML reports of a training run or an ablation, from what is on disk.

`write_report(directory)` tells the two apart (an ablation has ablation.json or
summary.csv; a run has results.json, metrics.jsonl or checkpoints/) and writes
report.md (images as relative links) and report.html (images embedded, so the
file is self-contained). A piece that is not on disk is left out with a line
saying so. Nothing here imports JAX: reports are quick to make anywhere.
"""
from __future__ import annotations

import base64
import csv
import html
import json
import math
import os
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from videojax.files import write_text_atomic
from videojax.tools import plots

# The config keys a run report shows (besides model.<name>.*), when run_config.json exists.
CONFIG_KEYS = ("data.root", "data.layout", "data.features_dir", "data.num_frames",
               "data.val_fraction", "extract.backbone", "extract.weights", "extract.pooling",
               "extract.image_size", "extract.temporal_scales",
               "model.name", "train.batch_size", "train.num_epochs", "train.learning_rate",
               "train.weight_decay", "train.label_smoothing", "train.feature_norm",
               "train.seed")
META_KEYS = ("model", "model_kwargs", "num_frames", "feature_dim", "features_dir",
             "batch_size", "learning_rate", "train_seed", "label_smoothing")
RESULT_KEYS = ("accuracy", "test_loss", "test_ece", "val_ece", "num_examples", "best_step",
               "total_steps", "num_train", "num_val", "train_seconds", "seconds", "num_devices")


# Formatting shared with the ablation's summary.md.

def _num(value: Any) -> float:
  """A number from a float, an int or CSV text; NaN for '' or None."""
  if value is None or value == "":
    return math.nan
  return float(value)


def mean_std_text(mean: Any, std: Any, digits: int = 3) -> str:
  """'0.812 ± 0.013'; just the mean when std is missing (one seed); '' when both are."""
  mean, std = _num(mean), _num(std)
  if math.isnan(mean):
    return ""
  return f"{mean:.{digits}f}" + ("" if math.isnan(std) else f" ± {std:.{digits}f}")


def summary_table(summary: Sequence[Mapping[str, Any]],
                  keys: Sequence[str]) -> tuple[list[str], list[list[str]]]:
  """Header and rows of the per-cell table (summary.csv rows, as dicts or CSV text).

  Accuracies are mean ± std over seeds; the best mean test accuracy is in bold.
  """
  header = [*keys, "seeds", "test accuracy", "best val accuracy", "train s / run",
            "examples/s"]
  means = [_num(r["test_accuracy_mean"]) for r in summary]
  finite = [m for m in means if not math.isnan(m)]
  best = max(finite) if finite else None
  rows = []
  for r, m in zip(summary, means):
    test = mean_std_text(r["test_accuracy_mean"], r["test_accuracy_std"])
    rows.append([*(str(r[k]) for k in keys), str(r["seeds"]),
                 f"**{test}**" if best is not None and m == best and len(summary) > 1 else test,
                 mean_std_text(r["best_val_accuracy_mean"], r["best_val_accuracy_std"]),
                 mean_std_text(r["train_seconds_mean"], r["train_seconds_std"], 1),
                 mean_std_text(r["examples_per_second_mean"], r["examples_per_second_std"], 0)])
  return header, rows


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
  """A GitHub-flavoured Markdown table; '|' in cells is escaped."""
  def line(cells):
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
  return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in rows)])


# A document rendered both ways.

class Document:
  """Headings, paragraphs, tables and images, rendered as Markdown or as one HTML file.

  Text may use `code` and **bold**; images are files on disk.
  """

  def __init__(self, title: str):
    self.title = title
    self.blocks: list[tuple] = []

  def heading(self, text: str) -> None:
    self.blocks.append(("h2", text))

  def text(self, text: str) -> None:
    self.blocks.append(("p", text))

  def skipped(self, text: str) -> None:
    """A piece that is not on disk: said in place of the piece."""
    self.blocks.append(("p", f"*Skipped: {text}*"))

  def table(self, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    self.blocks.append(("table", list(header), [[str(c) for c in r] for r in rows]))

  def image(self, path: str | os.PathLike, alt: str) -> None:
    self.blocks.append(("img", pathlib.Path(path), alt))

  def markdown(self, out_dir: pathlib.Path) -> str:
    """The Markdown text; images link relative to `out_dir`, where the file goes."""
    parts = [f"# {self.title}"]
    for block in self.blocks:
      kind = block[0]
      if kind == "h2":
        parts.append(f"## {block[1]}")
      elif kind == "p":
        parts.append(block[1])
      elif kind == "table":
        parts.append(markdown_table(block[1], block[2]))
      else:
        rel = pathlib.Path(os.path.relpath(block[1], out_dir)).as_posix()
        if re.search(r"[\s()<>]", rel):  # CommonMark: such a link goes in <...>.
          rel = f"<{rel}>"
        parts.append(f"![{block[2]}]({rel})")
    return "\n\n".join(parts) + "\n"

  def html(self) -> str:
    """A self-contained HTML page: images embedded as base64 PNG."""
    body = [f"<h1>{_inline(self.title)}</h1>"]
    for block in self.blocks:
      kind = block[0]
      if kind == "h2":
        body.append(f"<h2>{_inline(block[1])}</h2>")
      elif kind == "p":
        body.append(f"<p>{_inline(block[1])}</p>")
      elif kind == "table":
        head = "".join(f"<th>{_inline(c)}</th>" for c in block[1])
        rows = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>"
                       for r in block[2])
        body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
      else:
        data = base64.b64encode(block[1].read_bytes()).decode("ascii")
        body.append(f'<figure><img alt="{html.escape(block[2])}" '
                    f'src="data:image/png;base64,{data}"><figcaption>'
                    f"{html.escape(block[2])}</figcaption></figure>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;"
             "text-align:left}img{max-width:100%}figure{margin:1em 0}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>"
            f"{html.escape(self.title)}</title><style>{style}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _inline(text: str) -> str:
  """Escaped HTML of one line of text with `code`, **bold** and *italic*."""
  text = html.escape(str(text), quote=False)
  text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
  text = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)
  return re.sub(r"\*([^*]+)\*", r"<i>\1</i>", text)


def _value(v: Any) -> str:
  if isinstance(v, float):
    return f"{v:.4g}"
  if isinstance(v, (dict, list)):
    return json.dumps(v)
  return str(v)


def _read_json(path: pathlib.Path) -> Any | None:
  return json.loads(path.read_text()) if path.is_file() else None


def _read_csv(path: pathlib.Path) -> list[dict[str, str]] | None:
  if not path.is_file():
    return None
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


# A run directory.

def _checkpoint_meta(directory: pathlib.Path, results: Mapping | None) -> dict | None:
  """The meta JSON of the run's best (else newest) checkpoint, read as a file."""
  candidates = []
  if results and results.get("checkpoint"):
    candidates.append(pathlib.Path(results["checkpoint"]))
  steps = [p for p in (directory / "checkpoints").glob("*") if p.name.isdigit()]
  candidates += sorted(steps, key=lambda p: -int(p.name))
  for step in candidates:
    meta = step / "meta" / "metadata"
    if meta.is_file():
      return json.loads(meta.read_text())
  return None


def _run_config(doc: Document, directory: pathlib.Path, results: Mapping | None) -> None:
  doc.heading("Configuration")
  config = _read_json(directory / "run_config.json")
  if config is not None:
    name = config.get("model.name")
    keys = [k for k in CONFIG_KEYS if k in config]
    keys += sorted(k for k in config if name and k.startswith(f"model.{name}."))
    doc.table(["key", "value"], [[f"`{k}`", _value(config[k])] for k in keys])
    return
  meta = _checkpoint_meta(directory, results)
  if meta is None:
    doc.skipped(f"no run_config.json nor checkpoint meta in {directory}")
    return
  doc.text("From the checkpoint's meta (no run_config.json: not made by scripts/ablate.py).")
  rows = [[k, _value(meta[k])] for k in META_KEYS if k in meta]
  spec = meta.get("feature_spec", {})
  rows += [[f"features: {k}", _value(v)] for k, v in spec.items() if k != "weights_sha256"]
  if "class_names" in meta:
    rows.append(["classes", str(len(meta["class_names"]))])
  doc.table(["key", "value"], rows)


def _run_results(doc: Document, results: Mapping | None, directory: pathlib.Path) -> None:
  doc.heading("Test results")
  if results is None:
    doc.skipped(f"no results.json in {directory} (the run has not finished)")
    return
  doc.table(["metric", "value"], [[k, _value(results[k])] for k in RESULT_KEYS if k in results])
  per_class = {k: v for k, v in results.get("per_class_accuracy", {}).items() if v is not None}
  if per_class:
    worst = sorted(per_class.items(), key=lambda kv: kv[1])[:5]
    doc.text("Hardest classes (test accuracy): "
             + ", ".join(f"{name} {acc:.2f}" for name, acc in worst) + ".")


def _run_curves(doc: Document, directory: pathlib.Path, out_dir: pathlib.Path) -> None:
  doc.heading("Training curves")
  path = directory / "metrics.jsonl"
  if not path.is_file():
    doc.skipped(f"no metrics.jsonl in {directory}")
    return
  by_step = {}
  for line in path.read_text().splitlines():
    if line.strip():
      record = json.loads(line)
      by_step[record["step"]] = record  # A resumed run may log a step twice: the last wins.
  records = [by_step[s] for s in sorted(by_step)]
  if not records:
    doc.skipped(f"{path} is empty")
    return
  x = [r.get("epoch", r["step"]) for r in records]
  panels = {}
  for metric in ("loss", "accuracy"):
    lines = {}
    for split in ("train", "val"):
      pts = [(xi, r[f"{split}_{metric}"]) for xi, r in zip(x, records) if f"{split}_{metric}" in r]
      if pts:
        lines[split] = ([p[0] for p in pts], [p[1] for p in pts])
    if lines:
      panels[metric] = lines
  image = plots.curves_png(out_dir / "training_curves.png", panels,
                           xlabel="epoch" if "epoch" in records[0] else "step",
                           title=f"Training curves: {directory.name}")
  val = [(r["val_accuracy"], xi) for xi, r in zip(x, records) if "val_accuracy" in r]
  text = f"{len(records)} logged epochs."
  if val:
    acc, at = max(val, key=lambda v: (v[0], v[1]))
    text += f" Best validation accuracy {acc:.4f} at epoch {at:g}."
  doc.text(text)
  doc.image(image, "training curves")


def _run_eval(doc: Document, eval_dir: pathlib.Path, directory: pathlib.Path) -> None:
  doc.heading("Evaluation")
  if not eval_dir.is_dir():
    doc.skipped(f"no evaluation folder {eval_dir} (make one with scripts/evaluate.py "
                f"--workdir {directory} --out {eval_dir}, or give --eval_dir)")
    return
  metrics = _read_json(eval_dir / "metrics.json")
  if metrics is None:
    doc.skipped(f"no metrics.json in {eval_dir}")
  else:
    rows = [[k, _value(v)] for k, v in metrics.items()
            if isinstance(v, (int, float, str)) or v is None]
    if isinstance(metrics.get("tta"), list):
      rows.append(["tta", ", ".join(map(str, metrics["tta"]))])
    doc.table(["metric", "value"], rows)
  if (eval_dir / "confusion.png").is_file():
    doc.image(eval_dir / "confusion.png", "confusion matrix")
  else:
    doc.skipped(f"no confusion.png in {eval_dir}")


def run_document(directory: pathlib.Path, out_dir: pathlib.Path,
                 eval_dir: pathlib.Path | None = None) -> Document:
  """The report of a train.py workdir; writes training_curves.png into `out_dir`."""
  # An ablation's runs are <cell>/seed<k>: the cell says more than the seed.
  name = directory.name
  if re.fullmatch(r"seed\d+", name) and directory.parent.name:
    name = f"{directory.parent.name}/{name}"
  doc = Document(f"Run report: {name}")
  doc.text(f"Run directory `{directory}`.")
  results = _read_json(directory / "results.json")
  _run_config(doc, directory, results)
  _run_results(doc, results, directory)
  _run_curves(doc, directory, out_dir)
  _run_eval(doc, eval_dir or directory / "eval", directory)
  return doc


# An ablation directory.

def ablation_document(directory: pathlib.Path) -> Document:
  """The report of a scripts/ablate.py --out folder: sweep, summary table, plots."""
  doc = Document(f"Ablation report: {directory.name}")
  meta = _read_json(directory / "ablation.json")
  summary = _read_csv(directory / "summary.csv")
  results = _read_csv(directory / "results.csv")
  if meta is not None:
    sweep = "; ".join(f"`{k}` ∈ {{{', '.join(map(str, v))}}}" for k, v in meta["sweep"].items())
    doc.text(f"Swept: {sweep or 'nothing (one cell)'}. Seeds: "
             f"{', '.join(map(str, meta['seeds']))}. {meta['num_runs']} runs in all; "
             f"{len(results) if results is not None else 0} with results."
             + (" The linear probe (model.name=linear_probe: mean of the frames + one linear "
                "layer) is trained beside them on the same features and seeds."
                if meta.get("linear_probe") else ""))
  else:
    doc.skipped(f"no ablation.json in {directory}")
  doc.heading("Summary")
  if summary:
    columns = list(summary[0])
    keys = columns[columns.index("cell") + 1:columns.index("seeds")]
    doc.text("Accuracy: mean ± sample standard deviation (ddof=1) over seeds; one seed shows "
             "the value alone. Best mean test accuracy in bold. Per-run rows: `results.csv`.")
    doc.table(*summary_table(summary, keys))
  else:
    doc.skipped(f"no summary.csv in {directory} (written when scripts/ablate.py finishes)")
  doc.heading("Plots")
  for name, alt in (("accuracy.png", "test accuracy per cell"),
                    ("curves.png", "validation accuracy per epoch")):
    if (directory / name).is_file():
      doc.image(directory / name, alt)
    else:
      doc.skipped(f"no {name} in {directory}")
  return doc


def report_kind(directory: pathlib.Path) -> str:
  """'ablation' or 'run'.

  Raises:
    FileNotFoundError: neither kind of folder.
  """
  if (directory / "ablation.json").is_file() or (directory / "summary.csv").is_file():
    return "ablation"
  if any((directory / n).exists() for n in ("results.json", "metrics.jsonl", "checkpoints")):
    return "run"
  raise FileNotFoundError(
      f"{directory}: neither a run (results.json, metrics.jsonl or checkpoints/ from "
      "scripts/train.py) nor an ablation (ablation.json or summary.csv from scripts/ablate.py)")


def write_report(directory: str | os.PathLike, *, eval_dir: str | os.PathLike | None = None,
                 out_dir: str | os.PathLike | None = None) -> dict[str, Any]:
  """Writes report.md and report.html of a run or an ablation folder.

  Args:
    directory: a train.py workdir or an ablate.py --out folder.
    eval_dir: a run's scripts/evaluate.py --out folder (default <directory>/eval).
    out_dir: where the reports go (default `directory`).

  Returns:
    {'kind': 'run' | 'ablation', 'markdown': path, 'html': path}.

  Raises:
    FileNotFoundError: `directory` is neither kind of folder.
  """
  directory = pathlib.Path(directory)
  out_dir = pathlib.Path(out_dir) if out_dir else directory
  kind = report_kind(directory)
  if kind == "run":
    doc = run_document(directory, out_dir, pathlib.Path(eval_dir) if eval_dir else None)
  else:
    doc = ablation_document(directory)
  md = write_text_atomic(out_dir / "report.md", doc.markdown(out_dir))
  page = write_text_atomic(out_dir / "report.html", doc.html())
  return {"kind": kind, "markdown": md, "html": page}
