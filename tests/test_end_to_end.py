"""The whole path on a tiny generated dataset: extract, train, resume, predict, on 1 and 8 devices.

Extraction and training each run once per setting in module fixtures; the tests
then compare what they wrote.
"""
import copy
import json
import os
import pathlib
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import demo as demo_config
from videojax import extract, train
from videojax.checkpoint import CheckpointMismatch, Checkpoints
from videojax.data import features as F
from videojax.data import synthetic, video
from videojax.data.sources import ucf101
from videojax.models import backbone_feature_dim, preprocess_frames
from videojax.tools.predict import Predictor

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """A tiny dataset extracted on 8 and on 1 device, and its config."""
  base = tmp_path_factory.mktemp("e2e")
  root = synthetic.write_dataset(base / "videos", groups=4, test_groups=1, clips_per_group=1,
                                 size=64, min_frames=6, max_frames=20)
  c = demo_config.get_config()
  c.data.root = str(root)
  c.data.val_fraction = 0.34
  # 96 px: XLA's CPU conv is pathologically slow on the 2x2 maps that 64 px gives.
  c.extract.image_size = 96
  c.data.num_frames = 8
  c.extract.batch_size = 64
  c.extract.shard_size = 10
  c.train.batch_size = 8
  c.train.num_epochs = 3
  c.eval.batch_size = 8
  # The plain recipe: a cosine schedule depends on num_epochs, and "resumed" changes it.
  c.train.schedule, c.train.warmup_epochs, c.train.frame_dropout = "constant", 0.0, 0.0
  c.log.every_steps = 1  # A per-step record at each of the 6 steps (3 epochs of 2).
  reports = {}
  for n in (8, 1):
    c.data.features_dir = str(base / f"features{n}")
    c.extract.num_devices = n
    reports[n] = extract.extract_features(c, echo=lambda *_: None)
  c.data.features_dir = str(base / "features8")
  c.extract.num_devices = 0
  return {"base": base, "root": root, "config": c, "reports": reports}


@pytest.fixture(scope="module")
def runs(tiny):
  """The GRU trained on 8 devices, on 1 device, and in two halves (resumed)."""
  out = {}
  for name, devices, epochs in [("dev8", 0, 3), ("dev1", 1, 3), ("resumed", 0, 1),
                                ("resumed", 0, 3)]:
    c = copy.deepcopy(tiny["config"])
    c.train.num_devices, c.train.num_epochs = devices, epochs
    out[name] = train.train_and_evaluate(c, str(tiny["base"] / name), echo=lambda *_: None)
  return out


def _params(workdir):
  ckpts = Checkpoints(workdir / "checkpoints")
  params = ckpts.restore_raw(ckpts.latest_step())["params"]
  ckpts.close()
  return params


def test_extraction_wrote_every_clip_with_masks(tiny):
  fs = F.load_split(tiny["config"].data.features_dir, "train")
  examples = ucf101.read_split(tiny["root"], "train")
  assert sorted(fs.video_ids) == sorted(e.video_id for e in examples)
  width = backbone_feature_dim(tiny["config"].extract.backbone, "grid", 2)
  assert fs.features.shape[1:] == (8, width) and not fs.failed
  assert (fs.lengths >= 6).all() and (fs.lengths <= 8).all()
  assert not fs.features[np.arange(8)[None, :] >= fs.lengths[:, None]].any()
  assert tiny["reports"][8]["extracted"] == len(list(pathlib.Path(
      tiny["config"].data.features_dir).glob("*.h5")))


def test_packed_batches_equal_embedding_each_clip_alone(tiny):
  """Frames of many clips share device batches; each clip must get its own features."""
  c = tiny["config"]
  fs = F.load_split(c.data.features_dir, "test")
  module, variables = extract.load_or_init_backbone(extract.extraction_spec(c),
                                                    pathlib.Path(c.data.features_dir))
  for i in (0, len(fs) - 1):
    frames, length = video.read_video(tiny["root"] / f"{fs.video_ids[i]}.avi", 8, 96)
    want = np.asarray(module.apply(variables, preprocess_frames(c.extract.backbone, frames[:length])))
    assert length == fs.lengths[i]
    # float16 storage: relative error 2^-11, so compare at 1e-2 relative to the scale.
    np.testing.assert_allclose(fs.features[i, :length], want, rtol=1e-2,
                               atol=1e-2 * np.abs(want).max())


def test_extraction_same_on_1_and_8_devices(tiny):
  a = F.load_split(tiny["base"] / "features8", "train")
  b = F.load_split(tiny["base"] / "features1", "train")
  assert a.video_ids == b.video_ids
  np.testing.assert_array_equal(a.lengths, b.lengths)
  np.testing.assert_allclose(a.features.astype(np.float32), b.features.astype(np.float32),
                             rtol=1e-2, atol=1e-3)  # float16 storage


def test_rerun_skips_finished_shards_and_reports_bad_videos(tiny, tmp_path):
  """Break two clips, delete their shard, leave a half-written file: only that shard is redone."""
  c = copy.deepcopy(tiny["config"])
  root = tmp_path / "videos"
  shutil.copytree(tiny["root"], root)
  feats = tmp_path / "features"
  shutil.copytree(c.data.features_dir, feats)
  c.data.root, c.data.features_dir = str(root), str(feats)
  first = ucf101.read_split(root, "train")[:2]
  first[0].path.write_text("this is not a video")
  first[1].path.unlink()
  shard = feats / F.shard_name("train", 0, 3)
  shard.unlink()
  (feats / f".{shard.name}.tmp-1").write_bytes(b"half")
  report = extract.extract_features(c, echo=lambda *_: None)
  assert report["extracted"] == 1 and report["skipped"] == 3  # 3 train + 1 test shards
  assert sorted(f[1] for f in report["failed"]) == sorted(e.video_id for e in first)
  assert all(str(e.path) in f[2] for f, e in zip(sorted(report["failed"]), first))
  assert "not a video" not in (feats / "failed_videos.csv").read_text().split("\n")[0]
  assert len((feats / "failed_videos.csv").read_text().strip().split("\n")) == 3
  fs = F.load_split(feats, "train")
  assert len(fs) == len(ucf101.read_split(root, "train")) - 2


def test_multiscale_extraction_averages_views_per_position(tiny, tmp_path):
  c = copy.deepcopy(tiny["config"])
  c.data.features_dir = str(tmp_path / "features")
  scales = (1.0, 0.5, 1.5)
  c.extract.temporal_scales = scales
  extract.extract_features(c, splits=("test",), echo=lambda *_: None)
  fs = F.load_split(c.data.features_dir, "test")
  assert fs.spec["temporal_scales"] == list(scales)
  module, variables = extract.load_or_init_backbone(fs.spec, tmp_path / "features")
  clip = int(np.argmax(fs.lengths))
  frames, frame_of, length = video.read_video_views(
      tiny["root"] / f"{fs.video_ids[clip]}.avi", 8, 96, scales)
  embedded = np.asarray(module.apply(variables, preprocess_frames(c.extract.backbone, frames)))
  views = np.where((frame_of >= 0)[..., None], embedded[frame_of], 0)  # [views, t, d]
  want = views.sum(0) / (frame_of >= 0).sum(0)[:, None]
  assert length == fs.lengths[clip] and (frame_of[2] < 0).any()  # 1.5 runs past the ends.
  np.testing.assert_allclose(fs.features[clip, :length], want, rtol=1e-2,
                             atol=1e-2 * np.abs(want).max())  # float16 storage
  assert not np.allclose(want, embedded[frame_of[0]], atol=1e-2 * np.abs(want).max())


def test_extraction_refuses_a_features_dir_of_other_settings(tiny):
  c = copy.deepcopy(tiny["config"])
  c.data.num_frames = 12
  with pytest.raises(F.FeatureError, match="num_frames: expected 12, found 8"):
    extract.extract_features(c, echo=lambda *_: None)


def test_training_writes_results_and_logs(tiny, runs):
  r = runs["dev8"]
  work = tiny["base"] / "dev8"
  assert r["num_examples"] == len(ucf101.read_split(tiny["root"], "test"))
  assert np.asarray(r["confusion"]).sum() == r["num_examples"]
  assert (work / "results.json").exists() and (work / "confusion.csv").exists()
  assert len((work / "metrics.jsonl").read_text().splitlines()) == 3
  assert r["num_devices"] == 8 and runs["dev1"]["num_devices"] == 1
  saved = json.loads((work / "results.json").read_text())
  assert saved["top5_accuracy"] == r["top5_accuracy"] and saved["best_step"] == r["best_step"]
  if len(r["per_class_accuracy"]) >= 5:
    assert r["accuracy"] <= r["top5_accuracy"] <= 1
  else:
    assert r["top5_accuracy"] is None


def _tensorboard(workdir) -> dict[str, dict[int, float]]:
  """{tag: {step: value}} of every event file of workdir/tensorboard."""
  import tensorflow as tf
  out = {}
  for path in sorted((workdir / "tensorboard").glob("events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(str(path)):
      for v in event.summary.value:
        out.setdefault(v.tag, {})[event.step] = (
            float(tf.make_ndarray(v.tensor)) if v.metadata.plugin_data.plugin_name == "scalars"
            else None)
  return out


def test_tensorboard_has_step_epoch_and_test_scalars_and_hparams(tiny, runs):
  r, c = runs["dev8"], tiny["config"]
  tags = _tensorboard(tiny["base"] / "dev8")
  for tag in ("loss", "accuracy", "grad_norm", "learning_rate", "steps_per_sec",
              "examples_per_sec"):
    assert sorted(tags[tag]) == [1, 2, 3, 4, 5, 6], tag
  assert all(v == pytest.approx(c.train.learning_rate) for v in tags["learning_rate"].values())
  assert all(0 < v < 1e3 for v in tags["grad_norm"].values())
  for step in range(1, 7):
    assert tags["examples_per_sec"][step] == pytest.approx(
        tags["steps_per_sec"][step] * c.train.batch_size, rel=1e-5)
  assert sorted(tags["train_loss"]) == sorted(tags["val_accuracy"]) == [2, 4, 6]
  # An epoch's record is the mean of its steps' (every step logged here).
  for end in (2, 4, 6):
    for k in ("loss", "grad_norm"):
      assert tags[f"train_{k}"][end] == pytest.approx(
          (tags[k][end - 1] + tags[k][end]) / 2, rel=1e-5)
  assert tags["test_accuracy"] == {r["best_step"]: pytest.approx(r["accuracy"])}
  assert tags["test_loss"] == {r["best_step"]: pytest.approx(r["test_loss"])}
  assert tags["test_top5_accuracy"] == {r["best_step"]: pytest.approx(r["top5_accuracy"])}
  assert "_hparams_/session_start_info" in tags


def test_workdir_records_config_and_environment(tiny, runs):
  from videojax import provenance
  work = tiny["base"] / "dev8"
  saved = provenance.load_config(work / "config.json")
  c = copy.deepcopy(tiny["config"])
  c.train.num_devices = 0
  assert provenance.flat_config(saved) == provenance.flat_config(c)
  env = json.loads((work / "environment.json").read_text())
  assert env["versions"]["jax"] == jax.__version__
  assert env["versions"]["tensorflow"] and env["versions"]["orbax-checkpoint"]
  assert env["device_count"] == jax.device_count() and env["process_count"] == 1
  assert env["device_kind"] == jax.devices()[0].device_kind
  assert env["git"] is None or len(env["git"]["revision"]) == 40
  assert env["start_step"] == 0 and env["command"]
  # The second half of the resumed run records where it started.
  assert json.loads((tiny["base"] / "resumed" / "environment.json").read_text())[
      "start_step"] == 2


def _logged(workdir):
  return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_training_same_on_1_and_8_devices(tiny, runs):
  """Same data, same dropout masks; only the order of float reductions differs.

  Losses agree to 1e-4 relative. Parameters get a looser bound: Adam divides by
  sqrt(v), so a gradient entry near zero turns a rounding difference into a step
  of up to +-lr; after 9 steps at lr 3e-3 we allow 2e-3 (a tenth of the most
  any entry could move, 2 * 9 * 3e-3).
  """
  for x, y in zip(_logged(tiny["base"] / "dev8"), _logged(tiny["base"] / "dev1")):
    for k in ("train_loss", "val_loss"):
      np.testing.assert_allclose(x[k], y[k], rtol=1e-4)
  a, b = _params(tiny["base"] / "dev8"), _params(tiny["base"] / "dev1")
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=2e-3), a, b)
  np.testing.assert_allclose(runs["dev8"]["test_loss"], runs["dev1"]["test_loss"], rtol=1e-3)


def test_resumed_run_equals_uninterrupted_run(tiny, runs):
  a, b = _params(tiny["base"] / "dev8"), _params(tiny["base"] / "resumed")
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7), a, b)


def test_checkpoint_of_another_config_is_refused(tiny, runs):
  c = copy.deepcopy(tiny["config"])
  c.model.gru.hidden = (32, 8)
  with pytest.raises(CheckpointMismatch, match="model_kwargs"):
    train.train_and_evaluate(c, str(tiny["base"] / "dev8"), echo=lambda *_: None)


def test_training_without_features_names_the_directory(tiny, tmp_path):
  c = copy.deepcopy(tiny["config"])
  c.data.features_dir = str(tmp_path)
  with pytest.raises(F.FeatureError, match=f"{tmp_path}: no feature shards for split 'train'"):
    train.train_and_evaluate(c, str(tmp_path / "run"), echo=lambda *_: None)


def test_predictor_matches_training_features(tiny, runs):
  p = Predictor(tiny["base"] / "dev8")
  clip = ucf101.read_split(tiny["root"], "test")[0]
  probs = p.probabilities(clip.path)
  assert probs.shape == (len(synthetic.CLASS_NAMES),) and abs(probs.sum() - 1) < 1e-5
  top = p.top_k(clip.path, 3)
  assert [n for n, _ in top][0] == p.class_names[int(np.argmax(probs))]
  assert top[0][1] >= top[1][1] >= top[2][1]


def test_predict_script(tiny, runs, tmp_path):
  bad = tmp_path / "broken.avi"
  bad.write_text("not a video")
  clip = ucf101.read_split(tiny["root"], "test")[0].path
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  out = subprocess.run([sys.executable, str(ROOT / "scripts" / "predict.py"), "--workdir",
                        str(tiny["base"] / "dev8"), "--top_k", "2", str(clip), str(bad)],
                       capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
  assert out.returncode == 1, out.stderr
  lines = out.stdout.splitlines()
  assert lines[0] == str(clip) and len([l for l in lines if "%" in l]) == 2
  assert f"{bad}: error:" in out.stdout


def test_convlstm_features_reads_the_extracted_grid(tiny, tmp_path):
  c = copy.deepcopy(tiny["config"])
  assert (c.extract.pooling, c.extract.grid_size) == ("grid", 2)
  # The map's layout (2, 2, c) comes from the features' spec: no grid_size to keep equal.
  assert "grid_size" not in c.model.convlstm_features
  c.model.name = "convlstm_features"
  c.train.num_epochs = 1
  result = train.train_and_evaluate(c, str(tmp_path / "run2"), echo=lambda *_: None)
  assert np.asarray(result["confusion"]).sum() == result["num_examples"]
