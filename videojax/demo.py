"""The main job on the embedded data: generate videos, extract, train each model, compare."""
from __future__ import annotations

import copy
import os
import pathlib
import platform
import sys
import time

import jax
import ml_collections

from videojax import config_check, extract, metrics, train
from videojax.data import synthetic
from videojax.data.sources import ucf101
from videojax.files import write_text_atomic


def results_table(rows: list[dict], class_names: list[str]) -> str:
  """A Markdown table: overall, order-pair and appearance-class test accuracy per model."""
  order = [class_names.index(c) for pair in synthetic.ORDER_PAIRS for c in pair]
  appearance = [class_names.index(c) for c in synthetic.APPEARANCE_CLASSES]
  lines = ["| model | test top-1 | order-only pairs | appearance classes | train+eval time |",
           "|---|---|---|---|---|"]
  for r in rows:
    conf = r["confusion"]
    lines.append(f"| {r['model']} | {r['accuracy']:.3f} | "
                 f"{metrics.subset_accuracy(conf, order):.3f} | "
                 f"{metrics.subset_accuracy(conf, appearance):.3f} | {r['seconds']:.0f} s |")
  return "\n".join(lines)


def run_demo(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
             model_names=("gru", "transformer", "meanpool"), echo=print) -> dict:
  """Runs the whole demo under `workdir`; returns {'table', 'results'}.

  Layout: videos/ (generated, UCF-101 layout), features/ (HDF5 shards),
  <model>/ (checkpoints, metrics, TensorBoard, results.json) and results.md.
  Every stage is resumable: re-running skips finished work.

  Raises:
    ConfigError: a bad config, before any video is generated.
  """
  workdir = pathlib.Path(workdir)
  checked = copy.deepcopy(config)  # The demo sets the paths itself; check the rest.
  checked.data.root = checked.data.features_dir = str(workdir)
  for stage in config_check.STAGES:
    config_check.validate(checked, stage)
  t0 = time.time()
  root = synthetic.write_dataset(workdir / "videos", seed=config.train.seed,
                                 **config.demo_data.to_dict())
  echo(f"Demo videos: {root} ({time.time() - t0:.0f} s)")
  config = copy.deepcopy(config)
  config.data.root = str(root)
  config.data.features_dir = str(workdir / "features")
  t0 = time.time()
  extract.extract_features(config, echo=echo)
  extract_seconds = time.time() - t0
  rows = []
  for name in model_names:
    c = copy.deepcopy(config)
    c.model.name = name
    rows.append(train.train_and_evaluate(c, str(workdir / name), echo=echo))
  class_names = list(rows[0]["per_class_accuracy"])
  table = results_table(rows, class_names)
  text = (f"# videojax demo results\n\n{table}\n\n"
          f"Feature extraction: {extract_seconds:.0f} s. Machine: {platform.machine()}, "
          f"{len(jax.devices())} {jax.devices()[0].platform} device(s), jax {jax.__version__}.\n")
  write_text_atomic(workdir / "results.md", text)
  return {"table": table, "results": rows, "extract_seconds": extract_seconds}


def main(config: ml_collections.ConfigDict, workdir: str | pathlib.Path, echo=print) -> dict:
  """scripts/demo.py: `run_demo`, then the table, the total time and what to try next."""
  t0 = time.time()
  out = run_demo(config, workdir, echo=echo)
  echo("\n" + out["table"])
  echo(f"\nTotal {time.time() - t0:.0f} s. Checkpoints, metrics.jsonl and TensorBoard logs: "
       f"{workdir}/<model>/; table: {workdir}/results.md")
  clip = ucf101.read_split(f"{workdir}/videos", "test")[0].path
  # The interpreter that ran the demo and the script, short (.venv/bin/python scripts/...)
  # from the checkout, absolute from anywhere else.
  root = pathlib.Path(__file__).resolve().parents[1]
  here = pathlib.Path.cwd().resolve() == root
  python = os.path.relpath(sys.executable) if here else sys.executable
  script = "scripts/predict.py" if here else root / "scripts" / "predict.py"
  echo(f"Try: {python} {script} --workdir {workdir}/gru {clip}")
  return out
