"""Ablations: every cell of a sweep over config keys, for several seeds, from one command.

`run_ablation(config, out, sweeps, seeds)` crosses the swept values (sequence
length x backbone x model, or any config key), extracts features once per
distinct extraction setting, trains each cell once per seed with
`train.train_and_evaluate`, and writes tables and plots. Layout of `out`:

  features/<name>/           HDF5 shards, one folder per extraction setting
  runs/<cell>/seed<k>/       a train.py workdir, plus run_config.json
  ablation.json              the sweep: keys, values, seeds, features folders
  results.csv                one row per run
  summary.csv, summary.md    one row per cell: mean and sample std over seeds
  accuracy.png, curves.png   test accuracy vs the first axis; val accuracy per epoch

The linear probe (model linear_probe: mean of the frames + one linear layer, same loop)
is trained beside every sweep, on the same features and seeds, so each table has the
baseline its models are read against (`probe_cells`); `probe=False` (scripts/ablate.py
--no_probe) leaves it out.

Sequence length: features are extracted once at the longest swept
`data.num_frames` (into features/<extraction keys>,num_frames=<T>) and each
shorter T is subsampled from them at training time (`features.subsample_frames`).

Every stage resumes: finished shards are skipped, a run with results.json is
skipped and its results reused (after checking that its run_config.json is this
config), an interrupted run resumes from its checkpoints. Processes of a
multi-host job all train; process 0 writes the files (the folder must be on a
filesystem every host sees, as for checkpoints).
"""
from __future__ import annotations

import copy
import csv
import dataclasses
import hashlib
import io
import itertools
import json
import math
import pathlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from videojax import config_check, extract, models, train
from videojax import config_variants as variants
from videojax.tools import plots, report
from videojax.checkpoint import CheckpointMismatch
from videojax.files import write_json_atomic, write_text_atomic
from videojax.progress import Progress
from videojax.provenance import flat_config

# data.* keys that only change training; every other data.* key and every
# extract.* key changes the features, so it gets its own features folder.
TRAINING_DATA_KEYS = ("data.num_frames", "data.val_fraction", "data.num_parts")
# Keys that cannot be swept: the ablation sets them itself.
RESERVED_KEYS = {
    "data.features_dir": "the ablation puts features under <workdir>/features/",
    "train.seed": "give the seeds with --seeds",
}
# Keys that change how fast a run goes, not what it computes: a finished run
# made with other values of these is still reused.
# data.root may move; data.features_dir follows --workdir (its name holds the settings).
RUNTIME_KEYS = ("extract.batch_size", "extract.num_workers", "extract.num_devices",
                "train.num_devices", "eval.batch_size", "data.root", "data.features_dir",
                "log.every_steps", "log.wandb_project")
# Swept string keys whose accepted values are known up front.
CHOICES = {"model.name": models.MODEL_NAMES, "extract.backbone": models.BACKBONE_NAMES}
STD = "sample standard deviation (ddof=1) over seeds"
PROBE = "linear_probe"  # The baseline model every sweep is trained beside.
RESULT_COLUMNS = ("seed", "test_accuracy", "test_loss", "best_val_accuracy", "epochs",
                  "total_steps", "batch_size", "train_seconds", "seconds",
                  "examples_per_second", "num_train", "run_dir")
STAT_COLUMNS = ("test_accuracy", "best_val_accuracy", "train_seconds", "seconds",
                "examples_per_second")


class SweepError(variants.VariantError):
  """A --sweep or --seeds value that names no config key or does not parse."""


@dataclasses.dataclass(frozen=True)
class Axis:
  """One swept key: `key` is a dotted config key, `values` parsed to its type."""
  key: str
  values: tuple


@dataclasses.dataclass
class Cell:
  """One cell of the sweep at one seed: its swept values, config (features_dir and seed
  set) and folders."""
  values: dict[str, Any]
  name: str
  seed: int
  config: ml_collections.ConfigDict
  workdir: pathlib.Path
  features_name: str
  features_frames: int  # T of the features: the longest data.num_frames of the sweep

  def extraction_config(self) -> ml_collections.ConfigDict:
    """The config that extracts this cell's features (data.num_frames = features_frames)."""
    c = copy.deepcopy(self.config)
    c.data.num_frames = self.features_frames
    return c

  @property
  def done(self) -> bool:
    return (self.workdir / "results.json").exists()


# Parsing --sweep.

def parse_sweep(config: ml_collections.ConfigDict, spec: str) -> Axis:
  """'key=v1,v2,...' -> Axis, values parsed to the type of config's `key`.

  Raises:
    SweepError: no '=', an unknown or reserved key, a bad or repeated value, a
      model.name / extract.backbone outside the registry, data.num_frames < 1.
  """
  flag = f"--sweep {spec}"
  key, sep, text = spec.partition("=")
  key = key.strip()
  if not sep or not key or not text.strip():
    raise SweepError(f"--sweep {spec!r}: expected KEY=VALUE[,VALUE...], e.g. "
                     "--sweep data.num_frames=8,16,32")
  if key in RESERVED_KEYS:
    raise SweepError(f"{flag}: {key} cannot be swept: {RESERVED_KEYS[key]}")
  try:
    current = variants.leaf(config, key)
    values = tuple(variants.parse_value(current, v, key) for v in variants.split_items(text))
  except variants.VariantError as e:
    raise SweepError(f"{flag}: {e}") from None
  if len(set(map(repr, values))) != len(values):
    raise SweepError(f"{flag}: a value of {key} is given twice")
  if key in CHOICES:
    for v in values:
      if v not in CHOICES[key]:
        raise SweepError(f"{flag}: {key}={v!r}; accepted: {', '.join(CHOICES[key])}")
  if key == "data.num_frames" and min(values) < 1:
    raise SweepError(f"{flag}: swept data.num_frames must be >= 1")
  return Axis(key, values)


def parse_seeds(text: str | Sequence[int | str]) -> tuple[int, ...]:
  """'0,1,2' or [0, 1, 2] -> (0, 1, 2); SweepError naming --seeds otherwise."""
  items = variants.split_items(text) if isinstance(text, str) else list(text)
  try:
    seeds = tuple(int(s) for s in items)
  except ValueError:
    raise SweepError(f"--seeds {text!r}: expected integers, e.g. --seeds 0,1,2") from None
  if not seeds or len(set(seeds)) != len(seeds):
    raise SweepError(f"--seeds {text!r}: give one or more distinct integers, e.g. 0,1,2")
  return seeds


# Planning the runs.

def format_value(value: Any) -> str:
  """A swept value as it appears in folder names and tables: (16, 8) -> 16-8."""
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, (tuple, list)):
    return "-".join(format_value(v) for v in value)
  return str(value)


def cell_name(cell: Mapping[str, Any]) -> str:
  """A folder name for a cell: 'data.num_frames=8,model.name=gru' ('base' when empty)."""
  if not cell:
    return "base"
  name = ",".join(f"{k}={format_value(v)}" for k, v in cell.items())
  name = re.sub(r"[^A-Za-z0-9._=,+-]", "_", name)
  if len(name) > 150:  # Folder names stop at 255 bytes.
    name = name[:130] + "-" + hashlib.sha256(name.encode()).hexdigest()[:12]
  return name


def is_extraction_key(key: str) -> bool:
  """Whether `key` changes the features (extract.*, data.* but the training ones)."""
  return key.startswith("extract.") or (key.startswith("data.")
                                        and key not in TRAINING_DATA_KEYS)


def probe_cells(config: ml_collections.ConfigDict,
                cells: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
  """The linear-probe cells to add to `cells`: one per setting of the keys the probe reads.

  Each cell gives one with model.name = PROBE (appended last when model.name is not
  swept, so the cells' own folder names stay as they were) and without the keys of
  other models (model.<name>.*), which the probe does not read. A cell that is
  already a probe run, or a probe cell already there, is not repeated.
  """
  def is_probe(cell):
    return cell.get("model.name", config.model.name) == PROBE

  seen = {cell_name(c) for c in cells if is_probe(c)}
  out = []
  for cell in cells:
    if is_probe(cell):
      continue
    probe = {k: v for k, v in cell.items()
             if not k.startswith("model.") or k == "model.name" or k.startswith(f"model.{PROBE}.")}
    probe["model.name"] = PROBE
    if cell_name(probe) not in seen:
      seen.add(cell_name(probe))
      out.append(probe)
  return out


def plan_runs(config: ml_collections.ConfigDict, axes: Sequence[Axis], seeds: Sequence[int],
              out: str | pathlib.Path, probe: bool = True) -> list[Cell]:
  """Every cell x seed, ordered seed-major so that a full seed comes early.

  Sets in each run's config: the swept values, train.seed and data.features_dir
  (<out>/features/<name>, one per extraction setting, extracted at the longest
  data.num_frames of the sweep). With `probe`, the cells of `probe_cells` follow
  the swept ones.

  Raises:
    SweepError: a key swept twice, or two cells with the same folder name.
  """
  out = pathlib.Path(out)
  keys = [a.key for a in axes]
  if len(set(keys)) != len(keys):
    raise SweepError(f"--sweep: a key is swept twice: {', '.join(keys)}")
  longest = max(next((a.values for a in axes if a.key == "data.num_frames"),
                      (config.data.num_frames,)))
  cells = [dict(zip(keys, values)) for values in itertools.product(*(a.values for a in axes))]
  if probe:
    cells += probe_cells(config, cells)
  runs, names = [], {}
  for cell in cells:
    c = copy.deepcopy(config)
    for k, v in cell.items():
      variants.set_leaf(c, k, v)
    name = cell_name(cell)
    if names.setdefault(name, cell) != cell:
      raise SweepError(f"--sweep: cells {names[name]} and {cell} get the same folder name "
                       f"{name!r}; give values that differ in letters or digits")
    features = {k: v for k, v in cell.items() if is_extraction_key(k)}
    features["num_frames"] = longest
    features_name = cell_name(features)
    c.data.features_dir = str(out / "features" / features_name)
    runs.append((cell, name, c, features_name))
  return [Cell(values=cell, name=name, seed=seed, config=_with_seed(c, seed),
              workdir=out / "runs" / name / f"seed{seed}", features_name=features_name,
               features_frames=longest)
          for seed in seeds for cell, name, c, features_name in runs]


def _with_seed(config: ml_collections.ConfigDict, seed: int) -> ml_collections.ConfigDict:
  c = copy.deepcopy(config)
  c.train.seed = seed
  return c


def check_finished_run(run: Cell) -> None:
  """Refuses to reuse a finished run made with another config.

  Compares the run's run_config.json with this sweep's config of it, on the keys
  both have, RUNTIME_KEYS aside.

  Raises:
    CheckpointMismatch: naming the keys that differ.
  """
  path = run.workdir / "run_config.json"
  if not path.exists():
    return  # Made by hand or by an older version: nothing to compare.
  found = json.loads(path.read_text())
  want = flat_config(run.config)
  # Keys on one side only were added or removed by a code change since: not compared.
  diffs = [k for k in sorted(set(found) & set(want))
           if k not in RUNTIME_KEYS and found[k] != want[k]]
  if diffs:
    shown = "; ".join(f"{k}: this sweep {want.get(k)!r}, the run {found.get(k)!r}"
                      for k in diffs[:5])
    raise CheckpointMismatch(
        f"{run.workdir} finished with another config ({shown}). Use a new --workdir, or the "
        "config it was made with; to train it longer, delete its results.json and re-run "
        "(it resumes from its checkpoints).")


# Results.

def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
  """The per-epoch lines of `workdir`/metrics.jsonl, one per step (a resumed run's last wins)."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  if not path.exists():
    return []
  by_step = {}
  for line in path.read_text().splitlines():
    if line.strip():
      record = json.loads(line)
      by_step[record["step"]] = record
  return [by_step[s] for s in sorted(by_step)]


def result_row(run: Cell, results: Mapping[str, Any], out: pathlib.Path) -> dict[str, Any]:
  """One results.csv row: swept values, seed, test and best val accuracy, timing.

  examples_per_second = last_step * batch_size / train_seconds (train_seconds of
  the session that finished the run: a resumed run overstates it).
  """
  metrics = read_metrics(run.workdir)
  val = [m["val_accuracy"] for m in metrics if "val_accuracy" in m]
  batch = run.config.train.batch_size
  train_seconds = float(results.get("train_seconds", math.nan))
  # The steps trained: fewer than total_steps when early stopping ended the run.
  steps = int(results.get("last_step", results.get("total_steps", 0)))
  return {"cell": run.name, "model.name": run.config.model.name,
          **{k: format_value(v) for k, v in run.values.items()}, "seed": run.seed, "test_accuracy": float(results["accuracy"]),
          "test_loss": float(results.get("test_loss", math.nan)),
          "best_val_accuracy": max(val) if val else math.nan,
          "epochs": metrics[-1].get("epoch", math.nan) if metrics else math.nan,
          "total_steps": steps, "batch_size": batch, "train_seconds": train_seconds,
          "seconds": float(results.get("seconds", math.nan)),
          "examples_per_second": steps * batch / train_seconds if train_seconds > 0 else math.nan,
          "num_train": results.get("num_train", ""),
          "run_dir": str(run.workdir.relative_to(out))}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
  """Mean and sample std (ddof=1) of the finite values; std NaN below two values."""
  x = np.asarray([v for v in values if v is not None and not math.isnan(v)], np.float64)
  if not len(x):
    return math.nan, math.nan
  return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan


def summarize(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
  """One row per cell (first-seen order): swept values, seeds, mean and std of STAT_COLUMNS."""
  cells: dict[str, list[Mapping[str, Any]]] = {}
  for r in rows:
    cells.setdefault(r["cell"], []).append(r)
  out = []
  for name, group in cells.items():
    # A probe cell leaves out the other models' keys: blank in its row.
    row = {"cell": name, **{k: group[0].get(k, "") for k in keys}, "seeds": len(group)}
    for col in STAT_COLUMNS:
      row[f"{col}_mean"], row[f"{col}_std"] = mean_std([float(r[col]) for r in group])
    out.append(row)
  return out


def _csv_text(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
  buf = io.StringIO()
  w = csv.DictWriter(buf, columns, lineterminator="\n")
  w.writeheader()
  for r in rows:
    w.writerow({c: "" if isinstance(r.get(c), float) and math.isnan(r[c]) else r.get(c, "")
                for c in columns})
  return buf.getvalue()


def summary_markdown(summary: Sequence[Mapping[str, Any]], keys: Sequence[str],
                     num_runs: int) -> str:
  """summary.md: the per-cell table, best mean test accuracy in bold, and what ± means."""
  header, body = report.summary_table(summary, keys)
  seeds = sorted({r["seeds"] for r in summary})
  std = (f"± is the {STD}." if max(seeds, default=1) > 1
         else "One seed per cell: no spread shown.")
  probe = (f" Rows of model.name={PROBE}: the linear probe (mean of the frames + one linear "
           "layer, the same loop, features and seeds), the baseline each model is read "
           "against." if any(r.get("model.name") == PROBE for r in summary) else "")
  return (f"# Ablation summary\n\n{len(summary)} cells, {num_runs} runs. {std} Times are "
          "per run (train: the training loop and validation; examples/s = steps x batch / "
          f"train time).{probe}\n\n{report.markdown_table(header, body)}\n")


def table_keys(axes: Sequence[Axis], runs: Sequence[Cell]) -> list[str]:
  """The swept keys, and model.name where the probe's cells add it to an unswept model."""
  keys = [a.key for a in axes]
  if "model.name" not in keys and any("model.name" in r.values for r in runs):
    keys.append("model.name")
  return keys


def write_outputs(out: pathlib.Path, rows: list[dict], axes: Sequence[Axis],
                  runs: Sequence[Cell]) -> dict[str, pathlib.Path]:
  """results.csv, summary.csv, summary.md, accuracy.png and curves.png under `out`."""
  keys = table_keys(axes, runs)
  summary = summarize(rows, keys)
  files = {
      "results": write_text_atomic(out / "results.csv",
                                   _csv_text(rows, ["cell", *keys, *RESULT_COLUMNS])),
      "summary_csv": write_text_atomic(
          out / "summary.csv",
          _csv_text(summary, ["cell", *keys, "seeds",
                              *(f"{c}_{s}" for c in STAT_COLUMNS for s in ("mean", "std"))])),
      "summary_md": write_text_atomic(out / "summary.md",
                                      summary_markdown(summary, keys, len(rows))),
  }
  files["accuracy_png"] = _accuracy_plot(out / "accuracy.png", summary, keys)
  files["curves_png"] = _curves_plot(out / "curves.png", runs)
  return files


def _accuracy_plot(path: pathlib.Path, summary: Sequence[Mapping[str, Any]],
                   keys: Sequence[str]) -> pathlib.Path:
  """Test accuracy (mean ± std) against data.num_frames, else the first key of the table."""
  x_key = "data.num_frames" if "data.num_frames" in keys else (keys[0] if keys else None)
  series: dict[str, tuple[list, list, list]] = {}
  for r in summary:
    label = ", ".join(f"{k}={r[k]}" for k in keys if k != x_key and r[k] != "") or "all"
    xs, ms, ss = series.setdefault(label, ([], [], []))
    xs.append(int(r[x_key]) if x_key == "data.num_frames" else (r[x_key] if x_key else "base"))
    ms.append(r["test_accuracy_mean"])
    ss.append(r["test_accuracy_std"])
  xlabel = "T = data.num_frames" if x_key == "data.num_frames" else (x_key or "")
  return plots.errorbar_png(path, series, xlabel=xlabel, ylabel="test accuracy",
                            title="Test accuracy, mean ± sample std over seeds")


def _curves_plot(path: pathlib.Path, runs: Sequence[Cell]) -> pathlib.Path:
  """Validation accuracy per epoch of each cell, the mean over its seeds."""
  per_cell: dict[str, dict[float, list[float]]] = {}
  for run in runs:
    epochs = per_cell.setdefault(run.name, {})
    for m in read_metrics(run.workdir):
      if "val_accuracy" in m:
        epochs.setdefault(round(float(m.get("epoch", m["step"])), 3), []).append(
            m["val_accuracy"])
  labels = {run.name: ", ".join(f"{k}={format_value(v)}" for k, v in run.values.items())
            or "base" for run in runs}
  curves = {labels[name]: (sorted(e), [float(np.mean(e[x])) for x in sorted(e)])
            for name, e in per_cell.items() if e}
  return plots.curves_png(path, {"val accuracy": curves}, xlabel="epoch",
                          title="Validation accuracy per epoch, mean over seeds")


def _validate_cells(runs: Sequence[Cell], features: Mapping[str, ml_collections.ConfigDict]
                    ) -> None:
  """Checks every unfinished cell's config before anything is extracted or written.

  A sweep may override base values, so each cell is checked as it will run.

  Raises:
    ConfigError: naming the first bad cell and every bad key of it.
  """
  todo = [("extract", n, c) for n, c in features.items()
          if not all(r.done for r in runs if r.features_name == n)]
  todo += [("train", f"{r.name} seed {r.seed}", r.config) for r in runs if not r.done]
  for stage, name, c in todo:
    try:
      config_check.validate(c, stage)
    except config_check.ConfigError as e:
      raise config_check.ConfigError(f"ablation cell {name}: {e}") from e


def run_ablation(config: ml_collections.ConfigDict, out: str | pathlib.Path,
                 sweeps: Sequence[str | Axis], seeds: Sequence[int] | str = (0,),
                 echo: Callable[[str], Any] = print, probe: bool = True) -> dict[str, Any]:
  """Extracts, trains and summarises every cell x seed of a sweep under `out`.

  Args:
    config: the base experiment config; data.root must name the dataset (unless
      every features folder is already complete).
    out: the ablation folder (layout: module docstring).
    sweeps: 'key=v1,v2' strings (or Axis); their cross product makes the cells.
    seeds: train.seed values; each cell trains once per seed.
    echo: where messages go (train_and_evaluate's epoch lines included).
    probe: also train the linear probe on the same features and seeds (`probe_cells`).

  Returns:
    {'rows': results.csv rows, 'summary': summary.csv rows, 'trained': run
    folders trained now, 'skipped': run folders reused, 'extracted': features
    folders extraction ran for, 'files': {name: path} written (process 0)}.

  Raises:
    SweepError: a bad sweep or seed.
    CheckpointMismatch: a run folder (finished or not) of another config.
    FeatureError, ValueError: from extraction and training.
  """
  out = pathlib.Path(out)
  seeds = parse_seeds(seeds)
  axes = [s if isinstance(s, Axis) else parse_sweep(config, s) for s in sweeps]
  runs = plan_runs(config, axes, seeds, out, probe)
  keys = table_keys(axes, runs)
  writer = jax.process_index() == 0
  for run in runs:
    if run.done:
      check_finished_run(run)
  features = {}
  for run in runs:
    if run.features_name not in features:
      features[run.features_name] = run.extraction_config()
  _validate_cells(runs, features)
  if writer:
    write_json_atomic(out / "ablation.json", {
        "sweep": {a.key: [format_value(v) for v in a.values] for a in axes},
        "seeds": list(seeds), "std": STD, "num_runs": len(runs), "linear_probe": probe,
        "features": {n: {"dir": str(out / "features" / n),
                         "num_frames": c.data.num_frames}
                     for n, c in features.items()}})

  extracted = []
  for name, c in features.items():
    if all(r.done for r in runs if r.features_name == name):
      continue
    echo(f"Features {name}: extracting at T={c.data.num_frames} into "
         f"{c.data.features_dir}")
    extract.extract_features(c, worker=jax.process_index(), num_workers=jax.process_count(),
                             echo=echo)
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices(f"ablation features {name}")
    extracted.append(name)

  rows, trained, skipped = [], [], []
  bar = Progress(len(runs), "ablation", "run")
  for i, run in enumerate(runs):
    if run.done:
      results = json.loads((run.workdir / "results.json").read_text())
      skipped.append(run.workdir)
    else:
      if writer:
        write_json_atomic(run.workdir / "run_config.json", flat_config(run.config))
      echo(f"[{i + 1}/{len(runs)}] {run.name} seed {run.seed}")
      results = train.train_and_evaluate(run.config, str(run.workdir), echo=echo)
      trained.append(run.workdir)
    if writer:
      rows.append(result_row(run, results, out))
      write_text_atomic(out / "results.csv",
                        _csv_text(rows, ["cell", *keys, *RESULT_COLUMNS]))
    bar.update(1, postfix=f"last {run.name} seed{run.seed}")
  bar.close()
  files = write_outputs(out, rows, axes, runs) if writer else {}
  if writer:
    echo(f"{len(trained)} run(s) trained, {len(skipped)} reused; summary in "
         f"{files['summary_md']}")
  return {"rows": rows, "summary": summarize(rows, keys) if writer else [],
          "trained": trained, "skipped": skipped, "extracted": extracted, "files": files}
