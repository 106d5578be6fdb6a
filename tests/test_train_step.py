"""The jitted train step: its loss against PyTorch's label-smoothed cross-entropy, and its
data parallelism over 8 CPU devices."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from configs import default
from videojax import sharding, train


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loss_equals_torch_cross_entropy_with_label_smoothing(smoothing):
  c = default.get_config()
  c.model.name = "meanpool"
  state = train.create_train_state(c, num_classes=5, num_frames=4, feature_dim=3)
  rng = np.random.default_rng(0)
  batch = {"features": jnp.asarray(rng.normal(size=(6, 4, 3)), jnp.float16),
           "mask": jnp.asarray(np.arange(4)[None] < rng.integers(1, 5, 6)[:, None]),
           "label": jnp.asarray(rng.integers(0, 5, 6), jnp.int32)}
  logits = state.apply_fn({"params": state.params}, train.normalized_features(state, batch),
                          batch["mask"], train=False)
  _, metrics = jax.jit(train.train_step, static_argnames="label_smoothing")(
      state, batch, jax.random.key(0), label_smoothing=smoothing)
  want = torch.nn.functional.cross_entropy(
      torch.tensor(np.asarray(logits, np.float64)), torch.tensor(np.asarray(batch["label"]),
                                                                 dtype=torch.long),
      label_smoothing=smoothing).item()
  # meanpool has no dropout, so train=True gives the same logits; float32 vs float64: 1e-6.
  np.testing.assert_allclose(float(metrics["loss"]), want, rtol=1e-6)


def _batch(b, t, d, k, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, t + 1, b)
  return {"features": rng.normal(size=(b, t, d)).astype(np.float16),
          "mask": np.arange(t)[None] < lengths[:, None],
          "label": rng.integers(0, k, b).astype(np.int32)}


def _state_and_steps(name, num_devices, t, d, k):
  c = default.get_config()
  c.model.name = name
  mesh = sharding.make_mesh(num_devices)
  state = jax.device_put(train.create_train_state(c, k, t, d), sharding.replicated(mesh))
  return state, train.Steps(mesh, k), mesh


def _while_bodies(hlo: str) -> list[str]:
  """The text of every while-loop body computation in compiled HLO."""
  computations = dict(re.findall(r"^(%[\w.\-]+) [^\n]*\{\n(.*?)^\}", hlo, re.M | re.S))
  return [computations[name] for name in re.findall(r"body=(%[\w.\-]+)", hlo)]


# gru only: the placement comes from Steps' shard_map, not the scan (the models are
# mesh-free); bilstm_attention's compile cost 30 s of a suite at its time limit.
@pytest.mark.parametrize("name", ["gru"])
def test_recurrent_gradients_are_all_reduced_after_the_loop_not_per_step(name):
  """On 8 devices no all-reduce sits inside a scan's loop: each device sums its
  gradient over time, and the cross-device sum runs once, after the model
  (Steps' shard_map; the models know nothing of it). The same train_step under
  jit's partitioner alone puts one in every backward loop body.
  gru: masked_scan; bilstm_attention: bidirectional_scan, vmapped cell."""
  state, steps, mesh = _state_and_steps(name, 8, 6, 12, 5)
  batch = sharding.put_batch(_batch(16, 6, 12, 5), mesh)
  repl, data = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  partitioned = lambda state: jax.jit(train.train_step, in_shardings=(repl, data, repl),
                                     out_shardings=(repl, repl)).lower(
                                         state, batch, jax.random.key(0)).compile().as_text()
  hlo = steps.train.lower(state, batch, jax.random.key(0)).compile().as_text()
  bodies = _while_bodies(hlo)
  assert bodies and "all-reduce(" in hlo
  assert not [b for b in bodies if "all-reduce(" in b]
  # The check can fail: without the step's shard_map the partitioner's per-step sums come back.
  assert [b for b in _while_bodies(partitioned(state)) if "all-reduce(" in b]


# bilstm_attention's run (25 s) is left to test_lstm_attention's padding/batch checks and to
# test_end_to_end's 1-vs-8-device GRU run: the suite is at its time limit.
@pytest.mark.parametrize("name", ["gru"])
def test_train_step_on_8_devices_equals_1_device(name):
  """The per-device model runs change only the order of float sums.

  bilstm_attention: both directions vmapped in one per-device scan. gru: dropout
  0.4 before its head, so each device's masks must be its rows of the 1-device
  masks (sharding.rows_of_global_draws). (The GRU is also compared on 1 and 8
  devices end to end, test_end_to_end.py.)

  One step of SGD at learning rate 1 makes the parameter change the gradient
  itself (Adam's first step would be about lr * sign(g), which turns rounding in
  a near-zero gradient into a full step). Gradients agree to 1e-5 relative,
  plus 1e-7 absolute for entries that are sums cancelling to near zero.
  """
  batch = _batch(16, 6, 12, 5, seed=1)
  results = []
  for n in (1, 8):
    state, steps, mesh = _state_and_steps(name, n, 6, 12, 5)
    sgd = optax.sgd(1.0)
    state = state.replace(tx=sgd, opt_state=jax.device_put(sgd.init(state.params),
                                                           sharding.replicated(mesh)))
    before = jax.device_get(state.params)
    state, metrics = steps.train(state, sharding.put_batch(batch, mesh), jax.random.key(3))
    grads = jax.tree.map(lambda b, a: b - a, before, jax.device_get(state.params))
    # The logged gradient norm is that of the step the parameters took.
    np.testing.assert_allclose(float(metrics["grad_norm"]), float(optax.tree.norm(grads)),
                               rtol=1e-4)
    results.append((grads, float(metrics["loss"])))
  (g1, loss1), (g8, loss8) = results
  np.testing.assert_allclose(loss8, loss1, rtol=1e-6)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), g8, g1)


def test_eval_step_on_8_devices_equals_1_device():
  """Each device's sums of its rows, summed over devices: the 1-device sums."""
  batch = _batch(16, 6, 12, 5, seed=2)
  batch["valid"] = np.arange(16) < 13
  results = []
  for n in (1, 8):
    state, steps, mesh = _state_and_steps("gru", n, 6, 12, 5)
    results.append(jax.device_get(steps.eval(state, sharding.put_batch(batch, mesh))))
  (m1, m8) = results
  assert int(m1["count"]) == int(m8["count"]) == 13
  np.testing.assert_array_equal(m8["confusion"], m1["confusion"])
  assert m1["confusion"].sum() == 13
  np.testing.assert_allclose(float(m8["loss"]), float(m1["loss"]), rtol=1e-6)


@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.uint16, jnp.uint32])
def test_rows_of_global_draws_are_the_rows_of_the_global_draw(dtype):
  """Inside shard_map over 8 devices, each device's draw is its rows of the draw of
  the whole batch from the plain key; dropout masks (bernoulli) too."""
  mesh = sharding.make_mesh(8)
  key = jax.random.key(7)

  def local(key):
    rows = sharding.rows_of_global_draws(key)
    return (jax.random.bits(rows, (2, 5, 3), dtype),
            jax.random.bernoulli(jax.random.fold_in(rows, 1), 0.6, (2, 7)))
  bits, keep = jax.jit(jax.shard_map(local, mesh=mesh, in_specs=jax.P(),
                                     out_specs=jax.P(sharding.DATA_AXIS)))(key)
  np.testing.assert_array_equal(bits, jax.random.bits(key, (16, 5, 3), dtype))
  np.testing.assert_array_equal(keep, jax.random.bernoulli(jax.random.fold_in(key, 1), 0.6,
                                                           (16, 7)))
  assert 0 < np.asarray(keep).mean() < 1  # not a constant mask


def test_eval_step_calibration_sums_are_those_of_metrics():
  # The jitted per-bin sums (count, confidence, correct) of the valid rows, against
  # metrics.calibration_bins on the same probabilities; f32 sums against f64: 1e-5.
  from videojax import metrics
  c = default.get_config()
  c.model.name = "linear_probe"
  state = train.create_train_state(c, num_classes=4, num_frames=5, feature_dim=3)
  state = state.replace(params=jax.tree.map(lambda p: p * 40, state.params))  # Spread confidences.
  batch = _batch(32, 5, 3, 4, seed=3)
  batch["valid"] = np.arange(32) < 27  # The eval pipeline's padding rows.
  sums = jax.jit(train.eval_step, static_argnums=2)(state, batch, 4)
  logits = state.apply_fn({"params": state.params}, train.normalized_features(state, batch),
                          batch["mask"], train=False)
  probs = np.asarray(jax.nn.softmax(logits), np.float64)[:27]
  want = metrics.calibration_bins(probs, batch["label"][:27])
  assert (want[0] > 0).sum() >= 4  # Several bins in use.
  np.testing.assert_allclose(np.asarray(sums["calibration"]), want, atol=1e-5)
  assert metrics.ece_from_bins(sums["calibration"]) == pytest.approx(
      metrics.expected_calibration_error(probs, batch["label"][:27]), abs=1e-5)


def test_eval_step_top5_counts_are_those_of_metrics():
  # The jitted count of valid rows whose label is among the 5 largest logits, against
  # metrics.top_k_accuracy (checked against scikit-learn) on the same probabilities.
  from videojax import metrics
  c = default.get_config()
  c.model.name = "linear_probe"
  state = train.create_train_state(c, num_classes=9, num_frames=5, feature_dim=3)
  batch = _batch(32, 5, 3, 9, seed=4)
  batch["valid"] = np.arange(32) < 27
  sums = jax.jit(train.eval_step, static_argnums=2)(state, batch, 9)
  logits = state.apply_fn({"params": state.params}, train.normalized_features(state, batch),
                          batch["mask"], train=False)
  probs = np.asarray(jax.nn.softmax(logits), np.float64)[:27]
  want = metrics.top_k_accuracy(probs, batch["label"][:27], 5)
  assert 0 < want < 1
  assert int(sums["top5"]) == round(want * 27)
  assert "top5" not in jax.jit(train.eval_step, static_argnums=2)(state, batch, 4)
