"""config.train.feature_norm: each normalisation against numpy, and the same in train and eval."""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from videojax import runs, train
from videojax.checkpoint import Checkpoints
from videojax.normalization import FEATURE_NORMS, normalize

ATOL = 1e-6  # fp32 against fp64.


def _data(seed=0):
  rng = np.random.default_rng(seed)
  x = (3 * rng.normal(size=(3, 5, 4)) + 1).astype(np.float32)
  mask = np.arange(5)[None] < np.array([5, 2, 0])[:, None]
  x[~mask] = np.nan  # Padding must come out zero whatever it holds.
  x[0, 1] = 0.0  # An all-zero frame stays zero (no NaN from 0 / 0).
  return x, mask


def _numpy(x, mask, kind, mean, std):
  x = np.where(mask[..., None], x.astype(np.float64), 0.0)
  if kind == "standardize":
    x = np.where(mask[..., None], (x - mean) / std, 0.0)
  if kind == "power":
    x = np.sign(x) * np.sqrt(np.abs(x))
  if kind in ("l2", "power"):
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    x = x / np.where(norm > 0, norm, 1.0)
  return x


@pytest.mark.parametrize("kind", FEATURE_NORMS)
def test_each_norm_matches_numpy(kind):
  x, mask = _data()
  mean, std = np.array([1.0, -2, 0.5, 0], np.float32), np.array([2.0, 1, 0.5, 3], np.float32)
  got = np.asarray(jax.jit(normalize, static_argnums=2)(x, mask, kind, mean, std))
  want = _numpy(x, mask, kind, mean, std)
  np.testing.assert_allclose(got, want, atol=ATOL)
  assert (got[~mask] == 0).all() and np.isfinite(got).all()
  if kind in ("l2", "power"):
    norms = np.linalg.norm(got[mask], axis=-1)
    np.testing.assert_allclose(norms[norms > 0], 1.0, atol=ATOL)
  with pytest.raises(ValueError, match="feature_norm='l1'; accepted: standardize, l2"):
    normalize(x, mask, "l1", mean, std)


@pytest.mark.parametrize("kind", ["l2", "power"])
def test_train_state_applies_the_configs_norm(kind):
  # What train_step and eval_step feed the model (train.normalized_features) is the norm
  # of config.train.feature_norm.
  c = default.get_config()
  c.model.name = "linear_probe"
  c.train.feature_norm = kind
  state = train.create_train_state(c, num_classes=3, num_frames=5, feature_dim=4)
  assert state.feature_norm == kind
  x, mask = _data(1)
  got = train.normalized_features(state, {"features": jnp.asarray(x), "mask": mask})
  np.testing.assert_allclose(np.asarray(got), _numpy(x, mask, kind, 0, 1), atol=ATOL)
  meta = train.run_meta(c, _FeatureSet)
  assert meta["feature_norm"] == kind and meta["normalize_features"] is False


_FeatureSet = types.SimpleNamespace(class_names=["a", "b", "c"], spec={}, num_frames=5,
                                    feature_dim=4)


def test_a_saved_run_applies_its_norm_as_training_did(tmp_path):
  # runs.load_run (evaluate.py, predict.py) reads the norm from the checkpoint's meta.
  c = default.get_config()
  c.model.name = "linear_probe"
  c.train.feature_norm = "power"
  state = train.create_train_state(c, num_classes=3, num_frames=5, feature_dim=4)
  ckpts = Checkpoints(tmp_path / "checkpoints")
  ckpts.save(1, state, train.run_meta(c, _FeatureSet))
  ckpts.wait()
  ckpts.close()
  x, mask = _data(2)
  batch = {"features": jnp.asarray(x), "mask": mask}
  logits = state.apply_fn({"params": state.params}, train.normalized_features(state, batch),
                          mask, train=False)
  got = np.asarray(runs.load_run(tmp_path).apply(x, mask))
  np.testing.assert_allclose(got, np.asarray(jax.nn.softmax(logits)), atol=1e-6)
  # Not trivially equal: standardising (with the zeros and ones saved) gives other logits.
  plain = state.apply_fn({"params": state.params}, normalize(x, mask, "none", 0, 1), mask,
                         train=False)
  assert np.abs(np.asarray(jax.nn.softmax(plain)) - got)[mask.any(1)].max() > 1e-3
