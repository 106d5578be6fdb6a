"""Raw frames as features (config.extract.frames=pixels), and the ConvLSTM trained on them."""
import copy
import functools
import json

import jax
import numpy as np
import pytest

from configs import convlstm as convlstm_config
from videojax import config_check, extract, models, train
from videojax.data import features as F
from videojax.data import synthetic
from videojax.data.sources import ucf101

B, T, S = 2, 5, 8
LENGTHS = np.array([5, 3])


def test_pixels_are_the_frames_over_255():
  frames = np.random.default_rng(0).integers(0, 256, (B, S, S, 3), np.uint8)
  frames.flat[:256] = np.arange(256)  # Every level.
  out = extract.pixels(frames)
  exact = frames.reshape(B, -1) / 255  # float64, row-major (h, w, c).
  assert out.dtype == np.float32
  assert out.shape == (B, S * S * 3)
  # Bit for bit frames * float32(1/255): what XLA computes for frames / 255.
  np.testing.assert_array_equal(
      out, np.asarray(jax.jit(lambda f: f * np.float32(1 / 255))(frames)).reshape(B, -1))
  np.testing.assert_array_equal(out, (frames * np.float32(1 / 255)).reshape(B, -1))
  np.testing.assert_allclose(out, exact, rtol=2**-22, atol=0)  # Within float32 rounding.
  # Stored as float16: exactly float16(k / 255), within 2^-11 relative, and every level
  # comes back.
  stored = out.astype(np.float16)
  np.testing.assert_array_equal(stored, exact.astype(np.float16))
  assert (np.abs(stored - exact) <= 2**-11 * exact).all()
  np.testing.assert_array_equal(np.round(stored.astype(np.float64) * 255), frames.reshape(B, -1))


def test_pixels_is_a_data_option_not_a_backbone():
  assert "pixels" not in models.BACKBONE_NAMES
  with pytest.raises(ValueError, match="unknown backbone 'pixels'"):
    models.create_backbone("pixels")
  c = convlstm_config.get_config()
  spec = extract.extraction_spec(c)
  # No backbone keys: nothing of a backbone made these features.
  assert spec["frames"] == "pixels" and not {"backbone", "weights", "seed", "pooling"} & set(spec)
  c.extract.pooling = "grid"
  c.data.root = c.data.features_dir = "/unused"
  with pytest.raises(config_check.ConfigError, match=r"config\.extract\.pooling='grid'.*pools "
                     "nothing"):
    config_check.validate(c, "extract")
  # Features of the removed 'pixels' backbone: refused, saying to re-extract.
  old = {"backbone": "pixels", "weights": "random-init", "pooling": "avg", "image_size": S}
  with pytest.raises(ValueError, match=r"removed 'pixels' backbone; re-extract.*"
                     r"extract\.frames=pixels"):
    models.feature_frame_shape(old, S * S * 3)


def test_convlstm_reads_pixels_features_as_frames():
  # One 3x3 ConvLSTM: a frame unflattened in the wrong order (h and w swapped, or
  # channels mixed into positions) meets the kernel differently and changes the logits.
  model = models.create_model("convlstm", 3, filters=(2,), dense=4)
  frames = np.random.default_rng(1).random((B, T, S, S, 3)).astype(np.float32)
  mask = np.arange(T)[None, :] < LENGTHS[:, None]
  frames[~mask] = 0
  flat = frames.reshape(B, T, -1)
  spec = {"frames": "pixels", "image_size": S}
  shape = models.model_frame_shape("convlstm", models.feature_frame_shape(spec, S * S * 3))
  assert shape == (S, S, 3)
  # An 'rbg' key: threefry inits take XLA seconds per shape to compile on CPU.
  params = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0, impl="rbg"), frames, mask)
  apply = jax.jit(functools.partial(model.apply, train=False))
  flat_apply = jax.jit(functools.partial(models.apply_to_flat(model, shape), train=False))
  want = np.asarray(apply(params, frames, mask))
  # Tolerance 0: the same params on the same numbers, only reshaped.
  np.testing.assert_array_equal(flat_apply(params, flat, mask), want)
  swapped = np.asarray(apply(params, frames.transpose(0, 1, 3, 2, 4), mask))
  assert np.abs(swapped - want).min() > 1e-6
  # NaN in the padding of the flat features changes nothing (the masked scan).
  flat[~mask] = np.nan
  np.testing.assert_array_equal(flat_apply(params, flat, mask), want)
  # The model itself takes maps only: flat features must be unflattened first.
  with pytest.raises(ValueError, match=r"\(2, 5, 8\).*model_frame_shape"):
    jax.eval_shape(lambda: model.apply(params, np.zeros((B, T, 8)), mask, train=False))


def test_convlstm_needs_a_map_per_frame():
  c = convlstm_config.get_config()
  spec = extract.extraction_spec(c)
  d = 64 * 64 * 3
  assert train.model_frame_shape(c, spec, d) == (64, 64, 3)
  cnn = {"backbone": "efficientnet_lite0", "pooling": "avg", "image_size": 64}
  with pytest.raises(ValueError, match=r"^convlstm reads a spatial map per frame, but these "
                     r"features are f32\[1280\] per frame; extract with "
                     r"config\.extract\.pooling=grid or config\.extract\.frames=pixels$"):
    train.model_frame_shape(c, cnn, 1280)
  grid = {**cnn, "pooling": "grid", "grid_size": 2}
  assert train.model_frame_shape(c, grid, 4 * 1280) == (2, 2, 1280)
  c.model.name = "gru"  # Other models read flat vectors, pixels included (if rarely usefully).
  assert train.model_frame_shape(c, spec, d) == (d,)
  assert train.model_frame_shape(c, grid, 4 * 1280) == (4 * 1280,)


@pytest.fixture(scope="module")
def pixels_run(tmp_path_factory):
  """Pixels of a tiny generated dataset at 16 px, and a 1-epoch ConvLSTM run on them."""
  base = tmp_path_factory.mktemp("pixels")
  root = synthetic.write_dataset(base / "videos", groups=3, test_groups=1, clips_per_group=1,
                                 size=16, min_frames=4, max_frames=10)
  c = convlstm_config.get_config()
  c.data.root = str(root)
  c.data.features_dir = str(base / "features")
  c.data.val_fraction = 0.5
  c.extract.image_size = 16
  c.data.num_frames = 6
  c.extract.num_devices = 1
  c.extract.num_workers = 2
  c.model.convlstm.filters = (2,)
  c.model.convlstm.dense = 2
  c.train.num_devices = 1
  c.train.batch_size = 8
  c.train.num_epochs = 1
  c.eval.batch_size = 8
  bad = copy.deepcopy(c)
  bad.extract.pooling = "grid"
  bad.data.features_dir = str(base / "refused")
  with pytest.raises(ValueError, match=r"config\.extract\.pooling='grid'"):
    extract.extract_features(bad, echo=lambda *_: None)
  extract.extract_features(c, echo=lambda *_: None)
  # rbg: the trainer inits eagerly, and every threefry draw shape compiles for seconds on CPU.
  with jax.default_prng_impl("rbg"):
    results = train.train_and_evaluate(c, str(base / "run"), echo=lambda *_: None)
  return {"base": base, "root": root, "config": c, "results": results}


def test_extracted_pixels_are_the_frames(pixels_run):
  c = pixels_run["config"]
  assert not (pixels_run["base"] / "refused").exists()  # Refused before writing anything.
  fs = F.load_split(c.data.features_dir, "test")
  assert fs.features.shape[1:] == (6, 16 * 16 * 3) and fs.features.dtype == np.float16
  example = next(e for e in ucf101.read_split(pixels_run["root"], "test")
                 if e.video_id == fs.video_ids[0])
  frames, frame_of, length = extract.read_views(example.path, fs.spec)
  want = (frames[frame_of[0]].reshape(length, -1) / 255).astype(np.float16)
  np.testing.assert_array_equal(fs.features[0, :length], want)


def test_convlstm_trains_end_to_end(pixels_run):
  workdir = pixels_run["base"] / "run"
  saved = json.loads((workdir / "results.json").read_text())
  assert saved["model"] == "convlstm"
  assert 0.0 <= saved["accuracy"] <= 1.0
  assert saved["accuracy"] == pixels_run["results"]["accuracy"]


def test_predict_embeds_raw_frames(pixels_run):
  from videojax.tools.predict import Predictor
  predictor = Predictor(pixels_run["base"] / "run")  # No backbone file to load.
  fs = F.load_split(pixels_run["config"].data.features_dir, "test")
  example = next(e for e in ucf101.read_split(pixels_run["root"], "test")
                 if e.video_id == fs.video_ids[0])
  probs = predictor.probabilities(example.path)
  # The same frames as extraction stored, through the run's model.
  mask = np.arange(fs.num_frames) < fs.lengths[0]
  want = np.asarray(predictor._apply(fs.features[:1].astype(np.float32), mask[None]))[0]
  assert probs.shape == (len(predictor.class_names),)
  np.testing.assert_allclose(probs, want, rtol=1e-5, atol=1e-7)
