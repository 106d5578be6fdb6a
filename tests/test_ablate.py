"""scripts/ablate.py and scripts/report.py on a tiny sweep: 2 lengths x 1 model x 2 seeds.

The linear probe is trained beside it (a second model), so the sweep runs once in a
module fixture (extraction, 8 one-epoch runs), then
once more to check that nothing is redone; the tests read what it wrote.
"""
import csv
import json
import os
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest

from configs import default
from videojax.tools import ablate, plots, report
from videojax.checkpoint import CheckpointMismatch
from videojax.data import synthetic

ROOT = pathlib.Path(__file__).resolve().parents[1]
SWEEPS = ["data.num_frames=4,6", "model.name=gru"]
SEEDS = (0, 1)
MODELS = ("gru", "linear_probe")  # The swept one and the probe.


def tiny_config(root):
  """Raw 16 px frames as features (no backbone to compile), one short epoch, one device."""
  c = default.get_config()
  c.data.root = str(root)
  c.data.val_fraction = 0.34
  c.extract.frames, c.extract.pooling, c.extract.image_size = "pixels", "avg", 16
  c.data.num_frames = 20  # Each cell sets its own; features are extracted at the longest (6).
  c.extract.batch_size = 32
  c.extract.shard_size = 64
  c.extract.num_workers = 2
  c.extract.num_devices = 1
  c.model.gru.update(hidden=(8,), dense=8)
  c.model.meanpool.hidden = 8
  c.train.batch_size = 8
  c.train.num_epochs = 1
  c.train.num_devices = 1
  c.eval.batch_size = 8
  return c


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
  base = tmp_path_factory.mktemp("ablate")
  root = synthetic.write_dataset(base / "videos", groups=3, test_groups=1, clips_per_group=1,
                                 size=32, min_frames=6, max_frames=12)
  config = tiny_config(root)
  out = base / "ablation"
  first = ablate.run_ablation(config, out, SWEEPS, SEEDS, echo=lambda *_: None)
  mtimes = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/results.json")}
  second = ablate.run_ablation(config, out, SWEEPS, SEEDS, echo=lambda *_: None)
  return {"out": out, "config": config, "first": first, "second": second, "mtimes": mtimes}


def _csv(path):
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def test_features_extracted_once_at_the_longest_length(sweep):
  out = sweep["out"]
  dirs = [p for p in (out / "features").iterdir() if p.is_dir()]
  assert [p.name for p in dirs] == ["num_frames=6"]
  assert json.loads((dirs[0] / "spec.json").read_text())["spec"]["num_frames"] == 6
  assert sweep["first"]["extracted"] == ["num_frames=6"]


def test_every_cell_and_seed_trained_once_with_one_row_each(sweep):
  out, first = sweep["out"], sweep["first"]
  assert len(first["trained"]) == 8 and not first["skipped"]
  assert len(list(out.glob("runs/*/seed*/results.json"))) == 8
  rows = _csv(out / "results.csv")
  assert len(rows) == 8
  assert {(r["data.num_frames"], r["model.name"], r["seed"]) for r in rows} == {
      (t, m, s) for t in ("4", "6") for m in MODELS for s in ("0", "1")}
  for r in rows:
    run = json.loads((out / r["run_dir"] / "results.json").read_text())
    assert float(r["test_accuracy"]) == run["accuracy"]
    assert float(r["examples_per_second"]) == pytest.approx(
        run["total_steps"] * 8 / run["train_seconds"])
    assert 0 <= float(r["best_val_accuracy"]) <= 1
  # Each run trained on its own T, subsampled from the 6 extracted positions.
  meta = json.loads((out / "runs" / "data.num_frames=4,model.name=gru" / "seed1" /
                     "run_config.json").read_text())
  assert meta["data.num_frames"] == 4 and meta["data.features_dir"].endswith("num_frames=6")
  assert meta["train.seed"] == 1


def test_summary_is_numpy_mean_and_sample_std_over_seeds(sweep):
  out = sweep["out"]
  rows, summary = _csv(out / "results.csv"), _csv(out / "summary.csv")
  assert len(summary) == 4
  for s in summary:
    group = [r for r in rows if r["cell"] == s["cell"]]
    assert int(s["seeds"]) == len(group) == 2
    for col in ("test_accuracy", "best_val_accuracy", "train_seconds"):
      x = np.array([float(r[col]) for r in group])
      assert float(s[f"{col}_mean"]) == pytest.approx(x.mean(), abs=1e-12)
      assert float(s[f"{col}_std"]) == pytest.approx(x.std(ddof=1), abs=1e-12)
  md = (out / "summary.md").read_text()
  assert "sample standard deviation (ddof=1)" in md and md.count("\n| ") == 6
  assert "model.name=linear_probe: the linear probe" in md


def test_rerun_skips_every_run(sweep):
  second = sweep["second"]
  assert not second["trained"] and not second["extracted"] and len(second["skipped"]) == 8
  after = {p: p.stat().st_mtime_ns for p in sweep["out"].glob("runs/*/*/results.json")}
  assert after == sweep["mtimes"]
  assert [r["test_accuracy"] for r in second["rows"]] == [
      r["test_accuracy"] for r in sweep["first"]["rows"]]


def test_plots_decode(sweep):
  for name in ("accuracy.png", "curves.png"):
    image = cv2.imread(str(sweep["out"] / name))
    assert image is not None and image.shape[0] > 100 and image.shape[1] > 100, name


def test_finished_run_of_another_config_is_not_reused(sweep):
  c = sweep["config"].copy_and_resolve_references()
  c.train.learning_rate = 0.5
  with pytest.raises(CheckpointMismatch, match="train.learning_rate: this sweep 0.5"):
    ablate.run_ablation(c, sweep["out"], SWEEPS, SEEDS, echo=lambda *_: None)


@pytest.mark.parametrize("spec, message", [
    ("data.num_frame=4,8", "unknown config key 'data.num_frame'; keys under 'data': .*num_frames"),
    ("dat.num_frames=4", "unknown config key 'dat.num_frames'; keys under 'the config': data"),
    ("data.num_frames=4,x", "'x' is not a valid value of data.num_frames \\(an integer"),
    ("data.num_frames=4,4", "given twice"),
    ("data.num_frames=0,4", "must be >= 1"),
    ("model.name=gru,lstmx", "model.name='lstmx'; accepted: gru, meanpool"),
    ("extract.backbone=resnet19", "accepted: .*resnet18"),
    ("train.learning_rate=fast", "a number"),
    ("train.switch=maybe", "true or false"),
    ("model.gru.hidden=16", "a tuple in brackets"),
    ("model.gru", "expected KEY=VALUE"),
    ("model.gru=1", "is a group of keys"),
    ("train.seed=0,1", "--seeds"),
    ("data.features_dir=/x", "<workdir>/features"),
])
def test_bad_sweeps_are_refused_naming_the_key(spec, message):
  with pytest.raises(ablate.SweepError, match=message):
    ablate.parse_sweep(_config_with_a_switch(), spec)


def _config_with_a_switch():
  """The default config plus a bool key (it has none since train.feature_norm)."""
  c = default.get_config()
  c.train.switch = True
  return c


def test_values_parse_to_the_field_type():
  c = _config_with_a_switch()
  assert ablate.parse_sweep(c, "data.num_frames=8,16").values == (8, 16)
  assert ablate.parse_sweep(c, "train.learning_rate=1e-3,3").values == (1e-3, 3.0)
  assert ablate.parse_sweep(c, "train.switch=true,False").values == (True, False)
  assert ablate.parse_sweep(c, "model.gru.hidden=(16,8),(32,)").values == ((16, 8), (32,))
  assert ablate.parse_sweep(c, "extract.temporal_scales=(1.0,),(1,0.85,1.15)").values == (
      (1.0,), (1, 0.85, 1.15))
  assert ablate.parse_seeds("0, 1,2") == (0, 1, 2)
  with pytest.raises(ablate.SweepError, match="--seeds"):
    ablate.parse_seeds("0,a")


def test_features_are_planned_at_the_longest_swept_length(tmp_path):
  c = default.get_config()
  with pytest.raises(ablate.SweepError, match="unknown config key 'extract.num_frames'"):
    ablate.parse_sweep(c, "extract.num_frames=16,32")  # One knob: data.num_frames.
  lengths = ablate.parse_sweep(c, "data.num_frames=8,32")
  backbones = ablate.parse_sweep(c, "extract.backbone=resnet18,efficientnet_lite0")
  runs = ablate.plan_runs(c, [lengths, backbones], (0, 1), tmp_path, probe=False)
  assert len(runs) == 8 and len({r.config.data.features_dir for r in runs}) == 2
  assert {r.config.data.num_frames for r in runs} == {8, 32}
  assert {r.extraction_config().data.num_frames for r in runs} == {32}
  assert all(r.config.data.features_dir.endswith("num_frames=32") for r in runs)
  # Not swept: the config's own length.
  runs = ablate.plan_runs(c, [backbones], (0,), tmp_path)
  assert {r.extraction_config().data.num_frames for r in runs} == {c.data.num_frames} == {20}


def test_the_probe_is_planned_beside_every_cell_on_the_same_features_and_seeds(tmp_path):
  c = default.get_config()  # model.name gru, not swept.
  axes = [ablate.parse_sweep(c, "data.num_frames=8,16"),
          ablate.parse_sweep(c, "model.gru.hidden=(8,),(16,)")]
  runs = ablate.plan_runs(c, axes, (0, 1), tmp_path)
  probes = [r for r in runs if r.config.model.name == "linear_probe"]
  others = [r for r in runs if r.config.model.name == "gru"]
  assert len(others) == 8 and len(probes) == 4  # The gru widths do not concern the probe.
  # The swept cells keep their folder names; the probe's add model.name last.
  assert {r.name for r in others} == {f"data.num_frames={t},model.gru.hidden={h}"
                                      for t in (8, 16) for h in ("8", "16")}
  assert {(r.name, r.seed) for r in probes} == {
      (f"data.num_frames={t},model.name=linear_probe", s) for t in (8, 16) for s in (0, 1)}
  for p in probes:  # Same features, length and seed as the cells it is read against.
    same = [r for r in others if r.config.data.num_frames == p.config.data.num_frames
            and r.seed == p.seed]
    assert {r.config.data.features_dir for r in same} == {p.config.data.features_dir}
  assert ablate.table_keys(axes, runs) == ["data.num_frames", "model.gru.hidden", "model.name"]
  # A swept model.name: one probe per other setting, never twice, even if swept itself.
  axes = [ablate.parse_sweep(c, "model.name=gru,linear_probe,meanpool")]
  runs = ablate.plan_runs(c, axes, (0,), tmp_path)
  assert sorted(r.name for r in runs) == [f"model.name={m}" for m in
                                          ("gru", "linear_probe", "meanpool")]
  assert len(ablate.plan_runs(c, axes, (0,), tmp_path, probe=False)) == 3
  assert len(ablate.plan_runs(c, [], (0,), tmp_path)) == 2  # base and the probe.


def test_a_bad_cell_is_refused_before_anything_is_written(tmp_path):
  config = tiny_config(tmp_path / "videos")
  out = tmp_path / "ablation"
  with pytest.raises(ablate.config_check.ConfigError,
                     match=r"cell train.batch_size=0 seed 0: .*config.train.batch_size=0"):
    ablate.run_ablation(config, out, ["train.batch_size=8,0"], (0,), echo=lambda *_: None)
  assert not out.exists()


def test_report_of_the_ablation_names_every_cell(sweep):
  out = sweep["out"]
  result = subprocess.run([sys.executable, str(ROOT / "scripts" / "report.py"), "--workdir",
                           str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120)
  assert result.returncode == 0, result.stderr
  md, page = (out / "report.md").read_text(), (out / "report.html").read_text()
  for t in ("4", "6"):
    for m in MODELS:
      assert f"| {t} | {m} | 2 |" in md
      assert f"<td>{t}</td><td>{m}</td><td>2</td>" in page
  assert "](accuracy.png)" in md and "](curves.png)" in md
  assert page.count("data:image/png;base64,") == 2


def test_report_of_a_run_with_an_evaluation(sweep, tmp_path):
  run = sweep["out"] / "runs" / "data.num_frames=6,model.name=gru" / "seed0"
  results = json.loads((run / "results.json").read_text())
  eval_dir = tmp_path / "eval"
  plots.confusion_png(eval_dir / "confusion.png", np.asarray(results["confusion"]),
                      list(results["per_class_accuracy"]))
  (eval_dir / "metrics.json").write_text(json.dumps({"top1_accuracy": 0.5, "tta": ["original"],
                                                     "per_class": [{"class": "a"}]}))
  out = report.write_report(run, eval_dir=eval_dir, out_dir=tmp_path / "report")
  md = out["markdown"].read_text()
  assert out["kind"] == "run" and "`model.name` | gru" in md and "top1_accuracy | 0.5" in md
  assert f"accuracy | {results['accuracy']:.4g}" in md
  assert "training_curves.png)" in md and f"{os.path.relpath(eval_dir, tmp_path / 'report')}" \
      "/confusion.png)" in md
  assert cv2.imread(str(tmp_path / "report" / "training_curves.png")) is not None
  assert out["html"].read_text().count("data:image/png;base64,") == 2
  # Without an evaluation folder, the piece is skipped with a line saying so.
  md = report.write_report(run, out_dir=tmp_path / "bare")["markdown"].read_text()
  assert f"Skipped: no evaluation folder {run / 'eval'}" in md


def test_report_refuses_a_folder_of_neither_kind(tmp_path):
  with pytest.raises(FileNotFoundError, match="neither a run"):
    report.write_report(tmp_path)
