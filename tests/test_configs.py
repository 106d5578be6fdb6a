"""Every config in configs/ loads, names known parts, and builds its model."""

import importlib
import pathlib

import jax
import jax.numpy as jnp
import pytest

from videojax import models, train

CONFIGS = sorted(p.stem for p in (pathlib.Path(__file__).parent.parent / "configs").glob("*.py")
                 if p.stem != "__init__")


@pytest.mark.parametrize("name", CONFIGS)
def test_config_builds_its_model(name):
  c = importlib.import_module(f"configs.{name}").get_config()
  assert c.extract.backbone in models.BACKBONE_NAMES
  assert c.model.name in models.MODEL_NAMES
  d = models.backbone_feature_dim(c.extract.backbone, c.extract.pooling, c.extract.grid_size)
  model = models.create_model(c.model.name, 5, **train.model_kwargs(c))
  t = c.extract.num_frames
  out = jax.eval_shape(lambda: model.init_with_output(
      jax.random.key(0), jnp.zeros((2, t, d)), jnp.ones((2, t), bool), train=False)[0])
  assert out.shape == (2, 5)


def test_keras_cnn_rnn_mirrors_the_example():
  c = importlib.import_module("configs.keras_cnn_rnn").get_config()
  assert (c.extract.num_frames, c.extract.pooling) == (20, "avg")
  assert dict(c.model.gru) == {"hidden": (16, 8), "dropout": 0.4, "dense": 8}
