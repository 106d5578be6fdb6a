"""Frame dropout, temporal crops and strides: prefix masks, lengths in bounds, frame order kept,
deterministic in the key, on in train_step only."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import default
from videojax import augment, sharding, train

B, T, D = 64, 12, 3


def _clips(seed=0):
  """Frame i of clip j holds (j, i + 1, 1): the values say where a frame came from."""
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, T + 1, B)
  mask = np.arange(T)[None] < lengths[:, None]
  x = np.stack(np.broadcast_arrays(np.arange(B)[:, None], np.arange(1, T + 1)[None],
                                   np.ones((1, 1))), -1).astype(np.float32)
  return jnp.asarray(np.where(mask[..., None], x, 0)), jnp.asarray(mask), lengths


def _check_prefix_and_origin(x, mask, orig_mask):
  x, mask = np.asarray(x), np.asarray(mask)
  lengths = mask.sum(1)
  np.testing.assert_array_equal(mask, np.arange(T)[None] < lengths[:, None])  # a prefix
  assert (lengths >= 1).all()
  assert not x[~mask].any()  # padding is zero
  for j in range(B):
    frames = x[j, :lengths[j]]
    assert (frames[:, 0] == j).all() and (frames[:, 2] == 1).all()  # its own clip's frames
    src = frames[:, 1].astype(int) - 1
    assert (np.diff(src) > 0).all()  # in order, none twice
    assert np.asarray(orig_mask)[j, src].all()  # real frames only
  return lengths


@pytest.mark.parametrize("fraction", [0.5, 1.0, 0.01])
def test_temporal_crop_is_a_contiguous_window_of_at_least_the_fraction(fraction):
  x, mask, lengths = _clips()
  y, m = jax.jit(lambda x, m, k: augment.augment(x, m, k, temporal_crop=fraction))(
      x, mask, jax.random.key(1))
  got = _check_prefix_and_origin(y, m, mask)
  assert (got >= np.ceil(fraction * lengths)).all() and (got <= lengths).all()
  src = np.asarray(y)[..., 1].astype(int) - 1
  for j in range(B):  # contiguous: consecutive source frames
    assert (np.diff(src[j, :got[j]]) == 1).all()
  if fraction == 1.0:
    np.testing.assert_array_equal(y, x)
  else:  # It does crop, at more than one start.
    assert (got < lengths).any()
    assert len({int(src[j, 0]) for j in range(B)}) > 2


def test_temporal_stride_keeps_every_s_th_frame_of_the_window_s_at_most_the_max():
  x, mask, lengths = _clips()
  f = jax.jit(lambda x, m, k: augment.augment(x, m, k, temporal_crop=0.5, temporal_stride=3))
  y, m = f(x, mask, jax.random.key(4))
  got = _check_prefix_and_origin(y, m, mask)
  src = np.asarray(y)[..., 1].astype(int) - 1
  strides = set()
  for j in range(B):
    steps = np.diff(src[j, :got[j]])
    assert len(set(steps)) <= 1 and (steps <= 3).all()  # one stride per clip, <= the max
    strides.update(steps.tolist())
  assert strides == {1, 2, 3}
  assert (got < np.ceil(0.5 * lengths)).any()  # shorter than the crop alone allows
  # A stride of 1 is the crop alone, the same draws.
  a = augment.augment(x, mask, jax.random.key(4), temporal_crop=0.5)
  b = augment.augment(x, mask, jax.random.key(4), temporal_crop=0.5, temporal_stride=1)
  jax.tree.map(np.testing.assert_array_equal, a, b)


def test_frame_dropout_drops_about_the_rate_and_never_a_whole_clip():
  x, mask, lengths = _clips()
  y, m = augment.augment(x, mask, jax.random.key(2), frame_dropout=0.5)
  got = _check_prefix_and_origin(y, m, mask)
  assert (got <= lengths).all()
  kept = got.sum() / lengths.sum()
  assert 0.4 < kept < 0.65, kept  # ~0.5, plus the frames kept so no clip is empty
  # Even at rate 0.99 every clip keeps a frame.
  y, m = augment.augment(x, mask, jax.random.key(3), frame_dropout=0.99)
  assert (_check_prefix_and_origin(y, m, mask) == 1).sum() > B // 2


def test_both_together_and_the_same_key_gives_the_same_result():
  x, mask, lengths = _clips()
  f = jax.jit(lambda x, m, k: augment.augment(x, m, k, frame_dropout=0.3, temporal_crop=0.5))
  a, b, c = (f(x, mask, jax.random.key(k)) for k in (5, 5, 6))
  _check_prefix_and_origin(*a, mask)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert not np.array_equal(a[1], c[1])
  # Off: the inputs themselves.
  assert augment.augment(x, mask, jax.random.key(5)) == (x, mask)


def _state(c):
  return train.create_train_state(c, 4, T, 3)


def _batch():
  x, mask, _ = _clips()
  return {"features": x.astype(jnp.float16), "mask": mask,
          "label": jnp.asarray(np.arange(B) % 4, jnp.int32), "valid": jnp.ones(B, bool)}


def test_train_step_augments_and_eval_step_does_not():
  c = default.get_config()
  c.model.name = "meanpool"
  state, batch = _state(c), _batch()
  plain = jax.jit(train.train_step)
  aug = jax.jit(lambda s, b, k: train.train_step(s, b, k, frame_dropout=0.5, temporal_crop=0.5))
  _, m0 = plain(state, batch, jax.random.key(0))
  _, m1 = aug(state, batch, jax.random.key(0))
  _, m2 = aug(state, batch, jax.random.key(0))
  _, m3 = aug(state, batch, jax.random.key(1))
  assert float(m1["loss"]) != float(m0["loss"])  # the model saw other frames
  assert float(m1["loss"]) == float(m2["loss"]) != float(m3["loss"])  # deterministic in the key
  # Another step of the same key draws another view.
  _, m4 = aug(state.replace(step=state.step + 1), batch, jax.random.key(0))
  assert float(m4["loss"]) != float(m1["loss"])
  # eval_step takes no augmentation: Steps built with it evaluates as without.
  mesh = sharding.make_mesh(1)
  s = jax.device_put(state, sharding.replicated(mesh))
  e0 = train.Steps(mesh, 4).eval(s, batch)
  e1 = train.Steps(mesh, 4, frame_dropout=0.5, temporal_crop=0.5, temporal_stride=2).eval(s, batch)
  jax.tree.map(np.testing.assert_array_equal, e0, e1)


def test_augmented_step_on_8_devices_equals_1_device():
  """Each device augments its rows as the whole batch's draws would (rows_of_global_draws)."""
  c = default.get_config()
  c.model.name = "meanpool"
  batch = {k: np.asarray(v) for k, v in _batch().items() if k != "valid"}
  losses = []
  for n in (1, 8):
    mesh = sharding.make_mesh(n)
    state = jax.device_put(_state(c), sharding.replicated(mesh))
    steps = train.Steps(mesh, 4, frame_dropout=0.3, temporal_crop=0.5)
    _, m = steps.train(state, sharding.put_batch(batch, mesh), jax.random.key(7))
    losses.append(float(m["loss"]))
  np.testing.assert_allclose(losses[1], losses[0], rtol=1e-6)
