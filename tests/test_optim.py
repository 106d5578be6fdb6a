"""The optimizer of config.train: schedule values, gradient accumulation equal to one big
batch, clipping, and with every switch off exactly today's AdamW."""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from configs import keras_cnn_rnn
from videojax import optim, train


def _train_config(**overrides):
  c = keras_cnn_rnn.get_config()  # Every switch off: the recipe before the switches.
  for k, v in overrides.items():
    c.train[k] = v
  return c.train


def test_keras_config_and_configs_without_the_keys_switch_everything_off():
  assert optim.recipe(keras_cnn_rnn.get_config().train) == optim.DEFAULTS
  # A config without the keys (made before they existed) reads as all off.
  assert optim.recipe(ml_collections.ConfigDict({"learning_rate": 1e-3})) == optim.DEFAULTS
  assert optim.learning_rate(_train_config(learning_rate=3e-4), 10) == 3e-4


def test_warmup_cosine_values_are_the_closed_form():
  # 10 epochs of 8 steps, 2 of warmup: 16 warmup updates of 80, then a half cosine to 0.
  lr = optim.learning_rate(_train_config(schedule="warmup_cosine", warmup_epochs=2.0,
                                         num_epochs=10, learning_rate=1e-3), 8)
  assert float(lr(0)) == 0.0
  np.testing.assert_allclose(float(lr(8)), 0.5e-3, rtol=1e-6)  # half way up
  np.testing.assert_allclose(float(lr(16)), 1e-3, rtol=1e-6)  # the peak
  for step in (20, 48, 79):
    want = 1e-3 * 0.5 * (1 + math.cos(math.pi * (step - 16) / (80 - 16)))
    np.testing.assert_allclose(float(lr(step)), want, rtol=1e-5, atol=1e-12)
  assert float(lr(80)) == 0.0


def test_a_warmup_longer_than_half_the_run_is_cut_to_half():
  # 4 epochs of 8 steps = 32 updates; 5 epochs of warmup asked, 16 updates used.
  lr = optim.learning_rate(_train_config(schedule="warmup_cosine", warmup_epochs=5.0,
                                         num_epochs=4, learning_rate=1e-3), 8)
  np.testing.assert_allclose(float(lr(8)), 0.5e-3, rtol=1e-6)
  np.testing.assert_allclose(float(lr(16)), 1e-3, rtol=1e-6)
  assert float(lr(32)) == 0.0


def test_the_schedule_counts_optimizer_updates_under_accumulation():
  # 4 micro-steps per update: 80 steps are 20 updates, the warmup 2 epochs = 4 updates.
  lr = optim.learning_rate(_train_config(schedule="warmup_cosine", warmup_epochs=2.0,
                                         num_epochs=10, grad_accum_steps=4), 8)
  np.testing.assert_allclose(float(lr(4)), 1e-3, rtol=1e-6)
  assert float(lr(20)) == 0.0
  # The logged rate of train step s is that of the update s belongs to: s // 4.
  logged = optim.learning_rate_of_step(_train_config(schedule="warmup_cosine",
                                                     warmup_epochs=2.0, num_epochs=10,
                                                     grad_accum_steps=4), 8)
  assert [logged(s) for s in (0, 3, 15, 16, 19)] == [float(lr(u)) for u in (0, 0, 3, 4, 4)]
  assert logged(16) == pytest.approx(1e-3) and logged(3) == 0.0


def test_every_switch_off_is_plain_adamw_bit_for_bit():
  params = {"w": jnp.linspace(-1, 1, 6).reshape(2, 3)}
  grads = {"w": jnp.arange(6.0).reshape(2, 3) - 2}
  c = _train_config(weight_decay=0.1)
  ours, ref = optim.make_optimizer(c, 7), optax.adamw(1e-3, weight_decay=0.1)
  u1, _ = ours.update(grads, ours.init(params), params)
  u2, _ = ref.update(grads, ref.init(params), params)
  np.testing.assert_array_equal(u1["w"], u2["w"])


def test_clipping_bounds_the_gradient_adam_sees():
  # SGD-like check through the chain: with clipping the first Adam moment is the clipped
  # gradient times (1 - b1), so its norm is (1 - b1) * clip.
  params = {"w": jnp.zeros(4)}
  grads = {"w": jnp.array([30.0, -40.0, 0.0, 0.0])}  # norm 50
  tx = optim.make_optimizer(_train_config(grad_clip_norm=2.0), 1)
  _, state = tx.update(grads, tx.init(params), params)
  mu = [s for s in jax.tree.leaves(state, is_leaf=lambda s: hasattr(s, "mu"))
        if hasattr(s, "mu")][0].mu["w"]
  np.testing.assert_allclose(float(jnp.linalg.norm(mu)), 0.1 * 2.0, rtol=1e-6)
  np.testing.assert_allclose(np.asarray(mu) / 0.1, [1.2, -1.6, 0, 0], rtol=1e-6)
  # A gradient under the bound passes unchanged.
  _, state = tx.update({"w": grads["w"] / 100}, tx.init(params), params)
  mu = [s for s in jax.tree.leaves(state, is_leaf=lambda s: hasattr(s, "mu"))
        if hasattr(s, "mu")][0].mu["w"]
  np.testing.assert_allclose(np.asarray(mu) / 0.1, [0.3, -0.4, 0, 0], rtol=1e-6)


def _batch(b, t, d, k, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, t + 1, b)
  return {"features": jnp.asarray(rng.normal(size=(b, t, d)), jnp.float16),
          "mask": jnp.asarray(np.arange(t)[None] < lengths[:, None]),
          "label": jnp.asarray(rng.integers(0, k, b), jnp.int32)}


@pytest.mark.parametrize("name", ["meanpool", "gru"])
def test_k_micro_batches_update_as_one_big_batch(name):
  """train_step on 4 micro-batches of 3 with grad_accum_steps=4 gives the parameters of
  one step on the 12 examples at once (dropout off: the two must see the same model).
  Tolerance: float32 sums in another order, 1e-6 relative to the parameters' scale."""
  c = keras_cnn_rnn.get_config()  # A constant rate: the first update moves the parameters.
  c.model.name = name
  c.model.gru.dropout = 0.0
  c.train.weight_decay = 0.01
  big = _batch(12, 5, 6, 4)
  step = jax.jit(train.train_step)
  one = train.create_train_state(c, 4, 5, 6)
  one, _ = step(one, big, jax.random.key(0))
  c.train.grad_accum_steps = 4
  acc = train.create_train_state(c, 4, 5, 6)
  start = acc.params
  for i in range(4):
    acc, _ = step(acc, jax.tree.map(lambda x: x[3 * i:3 * i + 3], big), jax.random.key(0))
    if i < 3:  # Accumulating: the parameters have not moved yet.
      jax.tree.map(np.testing.assert_array_equal, acc.params, start)
  assert int(acc.step) == 4 and int(one.step) == 1
  moved = max(float(jnp.abs(a - b).max()) for a, b in
              zip(jax.tree.leaves(one.params), jax.tree.leaves(start)))
  assert moved > 1e-4  # The update is there to compare.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=0, atol=1e-6),
               acc.params, one.params)
