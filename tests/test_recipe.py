"""The recipe in the trainer: float32 bit-identical to the step before the switches,
bfloat16 compute with float32 parameters, early stopping, and the switches' validation."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from configs import default, keras_cnn_rnn
from tests.test_checkpoint import FALLING, _metrics
from tests.test_multihost import _config, _write_features
from videojax import config_check, train

QUIET = dict(echo=lambda *_: None)


def _batch(b=8, t=6, d=5, k=4, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, t + 1, b)
  return {"features": jnp.asarray(rng.normal(size=(b, t, d)), jnp.float16),
          "mask": jnp.asarray(np.arange(t)[None] < lengths[:, None]),
          "label": jnp.asarray(rng.integers(0, k, b), jnp.int32)}


def _reference_step(state, batch, rng):
  """train_step as it was before the recipe's switches (AdamW, f32, no augmentation)."""
  dropout_rng = jax.random.fold_in(rng, state.step)

  def loss_fn(params):
    logits = state.apply_fn({"params": params}, train.normalized_features(state, batch),
                            batch["mask"], train=True, rngs={"dropout": dropout_rng})
    targets = optax.smooth_labels(jax.nn.one_hot(batch["label"], logits.shape[-1]), 0.0)
    return optax.softmax_cross_entropy(logits, targets).mean(), logits

  (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  return state.apply_gradients(grads=grads), loss


def test_float32_is_bit_identical_to_the_step_before_the_switches():
  c = keras_cnn_rnn.get_config()  # Every switch off; gru: dropout 0.4, so the keys matter too
  c.train.weight_decay = 1e-2
  state = train.create_train_state(c, 4, 6, 5)
  ref = state.replace(tx=optax.adamw(c.train.learning_rate, weight_decay=1e-2),
                      opt_state=optax.adamw(1e-3, weight_decay=1e-2).init(state.params))
  ours_step = jax.jit(lambda s, b, k: train.train_step(s, b, k, compute_dtype="float32"))
  ref_step = jax.jit(_reference_step)
  for i in range(3):
    batch = _batch(seed=i)
    state, m = ours_step(state, batch, jax.random.key(0))
    ref, loss = ref_step(ref, batch, jax.random.key(0))
    assert float(m["loss"]) == float(loss)
  jax.tree.map(np.testing.assert_array_equal, state.params, ref.params)
  jax.tree.map(np.testing.assert_array_equal, state.opt_state, ref.opt_state)


@pytest.mark.parametrize("name", ["gru"])
def test_bfloat16_computes_in_bf16_and_keeps_float32_state(name):
  """The loss is within 2e-2 relative of float32's (bf16 has 8 bits of mantissa:
  ~4e-3 per rounding, a few roundings deep); parameters, optimizer state and
  metrics stay float32."""
  c = default.get_config()
  c.model.name = name
  c.model.gru.dropout = 0.0
  state = train.create_train_state(c, 4, 6, 5)
  batch = _batch()
  f32, m32 = jax.jit(train.train_step)(state, batch, jax.random.key(0))
  bf16_step = jax.jit(lambda s, b, k: train.train_step(s, b, k, compute_dtype="bfloat16"))
  bf16, m16 = bf16_step(state, batch, jax.random.key(0))
  for tree in (bf16.params, bf16.opt_state):
    assert {x.dtype for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.floating)
            } == {jnp.dtype(jnp.float32)}
  assert m16["loss"].dtype == jnp.float32
  np.testing.assert_allclose(float(m16["loss"]), float(m32["loss"]), rtol=2e-2)
  assert float(m16["loss"]) != float(m32["loss"])  # it did compute in bf16
  # The model really ran in bf16: the compiled step holds bf16 dot products.
  hlo = bf16_step.lower(state, batch, jax.random.key(0)).as_text()
  assert "bf16" in hlo
  assert "bf16" not in jax.jit(train.train_step).lower(state, batch, jax.random.key(0)).as_text()


@pytest.fixture(scope="module")
def features(tmp_path_factory):
  d = tmp_path_factory.mktemp("recipe") / "features"
  d.mkdir()
  _write_features(d, "train", 4, 10, seed=0)
  _write_features(d, "test", 2, 7, seed=1)
  return d


def test_early_stopping_stops_patience_epochs_after_the_best_and_says_why(features, tmp_path):
  """FALLING's learning rate makes validation peak early; with patience 1 training stops
  one epoch after the best, writes why in results.json, and a rerun trains no further."""
  work = tmp_path / "run"
  config = _config(features, **{**FALLING, "train.num_epochs": 30,
                                "train.early_stopping_patience": 1})
  lines = []
  r = train.train_and_evaluate(config, str(work), echo=lines.append)
  logged = _metrics(work)
  spe = int(logged[0]["step"] / logged[0]["epoch"])
  assert r["stopped_early"] and r["last_step"] < r["total_steps"] == 30 * spe
  assert logged[-1]["step"] == r["last_step"]
  assert r["last_step"] - r["best_step"] == spe  # patience 1 epoch
  # No epoch-end step after the best matched or beat it.
  scores = {m["step"]: m["val_accuracy"] for m in logged}
  assert all(scores[s] < scores[r["best_step"]] for s in scores if s > r["best_step"])
  assert r["stop_reason"].startswith(f"early stopping at step {r['last_step']}")
  assert "val_accuracy has not improved for 1 epochs" in r["stop_reason"]
  assert json.loads((work / "results.json").read_text())["stop_reason"] == r["stop_reason"]
  assert any(x.startswith("Stopped: early stopping") for x in lines)
  assert any(x.startswith("recipe: ") and "early_stopping_patience=1" in x for x in lines)
  again = train.train_and_evaluate(config, str(work), **QUIET)
  assert again["last_step"] == r["last_step"] and again["stopped_early"]
  assert _metrics(work) == logged


def test_recipe_keys_are_validated_in_one_message(features, tmp_path):
  bad = {"train.schedule": "cosine", "train.grad_clip_norm": -1.0,
         "train.grad_accum_steps": 0, "train.frame_dropout": 1.0, "train.temporal_crop": 1.5,
         "train.compute_dtype": "float16", "train.early_stopping_patience": -2}
  with pytest.raises(config_check.ConfigError) as e:
    config_check.validate(_config(features, **bad), "train")
  message = str(e.value)
  assert "\n" not in message and message.startswith(f"{len(bad)} bad config value(s)")
  for key in bad:
    assert f"config.{key}=" in message, key
  config_check.validate(_config(features, **{
      "train.schedule": "warmup_cosine", "train.warmup_epochs": 0.5, "train.grad_clip_norm": 1.0,
      "train.grad_accum_steps": 2, "train.frame_dropout": 0.2, "train.temporal_crop": 0.6,
      "train.compute_dtype": "bfloat16", "train.early_stopping_patience": 3}), "train")


def test_a_run_with_every_switch_on_trains_and_resumes_only_with_them(features, tmp_path):
  work = tmp_path / "run"
  on = {"model.name": "meanpool", "train.schedule": "warmup_cosine",
        "train.warmup_epochs": 0.5, "train.grad_clip_norm": 1.0, "train.grad_accum_steps": 2,
        "train.frame_dropout": 0.2, "train.temporal_crop": 0.6,
        "train.compute_dtype": "bfloat16"}
  r = train.train_and_evaluate(_config(features, **on), str(work), **QUIET)
  assert not r["stopped_early"] and r["recipe"]["grad_accum_steps"] == 2
  assert 0 <= r["accuracy"] <= 1
  from videojax.checkpoint import CheckpointMismatch
  with pytest.raises(CheckpointMismatch, match="grad_accum_steps: this run has None, the "
                     "checkpoint 2"):
    train.train_and_evaluate(_config(features, **{**on, "train.grad_accum_steps": 1,
                                                  "train.num_epochs": 3}), str(work), **QUIET)
