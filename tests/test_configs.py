"""Every config in configs/ loads, names known parts, and builds its model."""

import importlib
import pathlib

import jax
import jax.numpy as jnp
import pytest

from videojax import extract, models, train

CONFIGS = sorted(p.stem for p in (pathlib.Path(__file__).parent.parent / "configs").glob("*.py")
                 if p.stem != "__init__")


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_its_model(name):
  c = importlib.import_module(f"configs.{name}").get_config()
  assert c.extract.backbone in models.BACKBONE_NAMES
  assert c.model.name in models.MODEL_NAMES
  d = (c.extract.image_size ** 2 * 3 if c.extract.frames == "pixels" else
       models.backbone_feature_dim(c.extract.backbone, c.extract.pooling, c.extract.grid_size))
  frame = train.model_frame_shape(c, extract.extraction_spec(c), d)
  model = models.create_model(c.model.name, 5, **train.model_kwargs(c))
  t = c.extract.num_frames
  out = jax.eval_shape(lambda: model.init_with_output(
      jax.random.key(0), jnp.zeros((2, t, *frame)), jnp.ones((2, t), bool), train=False)[0])
  assert out.shape == (2, 5)


def test_keras_cnn_rnn_mirrors_the_example():
  c = importlib.import_module("configs.keras_cnn_rnn").get_config()
  assert (c.extract.num_frames, c.extract.pooling) == (20, "avg")
  assert dict(c.model.gru) == {"hidden": (16, 8), "dropout": 0.4, "dense": 8}


def test_bilstm_attention_mirrors_the_issue():
  c = importlib.import_module("configs.bilstm_attention").get_config()
  assert (c.extract.backbone, c.extract.num_frames) == ("efficientnet_lite0", 64)
  assert tuple(c.extract.temporal_scales) == (1.0, 0.85, 1.15)
  # 768 per direction: our width is the BiLSTM's output, both directions.
  assert dict(c.model.bilstm_attention) == {
      "width": 1536, "num_layers": 4, "num_heads": 12, "dropout": 0.4}
  assert c.train.label_smoothing == 0.1
  assert tuple(c.ensemble.seeds) == (0, 1, 2, 3)
  assert tuple(c.eval.tta) == ("original", "faster", "slower")


def test_convlstm_mirrors_the_tutorial_input():
  c = importlib.import_module("configs.convlstm").get_config()
  assert (c.extract.frames, c.extract.image_size, c.extract.num_frames) == ("pixels", 64, 20)
  assert c.model.name == "convlstm" and not c.train.normalize_features
