"""ConvLSTM against Keras 3 ConvLSTM2D(mask=...); its padding invariances."""

import os

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
# oneDNN reorders float sums; off so the Keras reference is plain fp32.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')

import functools  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from videojax.models import (  # noqa: E402
    apply_to_flat, create_model, feature_frame_shape)
from videojax.models.convlstm import ConvLSTM  # noqa: E402
from videojax.models.pooling import adaptive_avg_pool, pool  # noqa: E402

ATOL = 1e-5  # fp32 against other fp32 implementations, and sums of grads.
B, T, S, C, F = 4, 5, 6, 3, 4  # S x S maps.
T_LONG = T + 3
LENGTHS = np.array([5, 3, 1, 2])  # Mixed lengths; row 0 is full length.


def _data(kernel=(3, 3)):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(B, T, S, S, C)).astype(np.float32)
  mask = np.arange(T)[None, :] < LENGTHS[:, None]
  # Nonzero biases and distinct gate blocks, so a misplaced gate shows up.
  w = {
      'kernel': 0.3 * rng.normal(size=kernel + (C, 4 * F)).astype(np.float32),
      'recurrent_kernel':
          0.3 * rng.normal(size=kernel + (F, 4 * F)).astype(np.float32),
      'bias': rng.normal(size=(4 * F,)).astype(np.float32),
  }
  return x, mask, w


def _pad(x, mask, t, value):
  """Right-pads to length t and fills every padded step with `value`."""
  xp = np.concatenate(
      [x, np.zeros((x.shape[0], t - x.shape[1]) + x.shape[2:], x.dtype)], 1)
  mp = np.arange(t)[None, :] < mask.sum(1)[:, None]
  xp[~mp] = value
  return xp, mp


@functools.cache
def _apply(kernel=(3, 3), reverse=False):
  """Jitted (seq, final) of our layer; cached, compiles once per shape."""
  seq = ConvLSTM(F, kernel, reverse=reverse)
  final = ConvLSTM(F, kernel, return_sequences=False, reverse=reverse)
  return jax.jit(lambda w, x, m: (seq.apply({'params': w}, x, m),
                                  final.apply({'params': w}, x, m)))


def _ours(x, mask, w, kernel=(3, 3), reverse=False):
  return tuple(np.asarray(a) for a in _apply(kernel, reverse)(w, x, mask))


def test_param_layout_is_keras_layout():
  x, mask, _ = _data()
  v = ConvLSTM(F).init(jax.random.key(0), x, mask)['params']
  assert jax.tree.map(jnp.shape, v) == {
      'kernel': (3, 3, C, 4 * F), 'recurrent_kernel': (3, 3, F, 4 * F),
      'bias': (4 * F,)}
  # unit_forget_bias: ones for the forget gate (block 1 of i, f, c, o).
  np.testing.assert_array_equal(v['bias'], np.repeat([0., 1., 0., 0.], F))


def _keras_layer(kernel, w, return_sequences, reverse):
  keras = pytest.importorskip('keras')
  layer = keras.layers.ConvLSTM2D(
      F, kernel, padding='same', return_sequences=return_sequences,
      return_state=True, go_backwards=reverse)
  layer.build((None, T, S, S, C))
  layer.set_weights([w['kernel'], w['recurrent_kernel'], w['bias']])
  return layer


@pytest.mark.parametrize('kernel,reverse',
                         [((3, 3), False), ((3, 3), True), ((2, 3), False)])
def test_matches_keras_convlstm2d(kernel, reverse):
  # Keras' ConvLSTM2D honours `mask=` (its RNN base carries the state through
  # masked steps), so mixed lengths compare directly in one batch.
  x, mask, w = _data(kernel)
  seq, final = _ours(x, mask, w, kernel, reverse)
  k_seq, k_h, _ = (np.asarray(a) for a in _keras_layer(
      kernel, w, True, reverse)(x, mask=mask))
  k_final, _, _ = (np.asarray(a) for a in _keras_layer(
      kernel, w, False, reverse)(x, mask=mask))
  if reverse:
    # Keras reads the whole padded row backward (padding first, carried
    # through) and returns outputs in reading order; put them in time order.
    k_seq = k_seq[:, ::-1]
  np.testing.assert_allclose(final, k_h, atol=ATOL)
  np.testing.assert_allclose(final, k_final, atol=ATOL)
  for i, n in enumerate(LENGTHS):
    np.testing.assert_allclose(seq[i, :n], k_seq[i, :n], atol=ATOL)
    np.testing.assert_array_equal(seq[i, n:], 0.0)
  if not reverse:
    # Equal lengths, no mask at all on the Keras side.
    k_seq, k_h, _ = (np.asarray(a) for a in _keras_layer(
        kernel, w, True, reverse)(x))
    seq, final = _ours(x, np.ones_like(mask), w, kernel)
    np.testing.assert_allclose(seq, k_seq, atol=ATOL)
    np.testing.assert_allclose(final, k_h, atol=ATOL)


@pytest.mark.parametrize('reverse', [False, True])
def test_padding_and_garbage_change_nothing(reverse):
  x, mask, w = _data()
  seq, final = _ours(x, mask, w, reverse=reverse)
  for value in (0.0, 1e6, np.nan):
    x_long, m_long = _pad(x, mask, T_LONG, value)
    seq_l, final_l = _ours(x_long, m_long, w, reverse=reverse)
    np.testing.assert_allclose(final_l, final, atol=1e-6)
    np.testing.assert_allclose(seq_l[:, :T], seq, atol=1e-6)
    np.testing.assert_array_equal(seq_l[:, T:], 0.0)


def test_zero_length_gives_zero_state_and_no_nan():
  x, mask, w = _data()
  mask[1] = False
  x[1] = np.nan
  for reverse in (False, True):
    seq, final = _ours(x, mask, w, reverse=reverse)
    assert np.isfinite(seq).all() and np.isfinite(final).all()
    np.testing.assert_array_equal(final[1], 0.0)
    np.testing.assert_array_equal(seq[1], 0.0)


def test_reverse_is_forward_over_flipped_valid_part():
  x, mask, w = _data()
  seq_r, final_r = _ours(x, mask, w, reverse=True)
  for i, n in enumerate(LENGTHS):
    flipped = x[i:i + 1, :n][:, ::-1]
    seq, final = _ours(flipped, np.ones((1, n), bool), w)
    np.testing.assert_allclose(seq_r[i, :n], seq[0, ::-1], atol=1e-6)
    np.testing.assert_allclose(final_r[i], final[0], atol=1e-6)


def test_padding_gives_same_gradients():
  x, mask, w = _data()
  target = np.random.default_rng(1).normal(size=(B, T, S, S, F))

  def loss(w, x, mask):
    seq = ConvLSTM(F).apply({'params': w}, x, mask)
    final = ConvLSTM(F, return_sequences=False).apply({'params': w}, x, mask)
    t = x.shape[1]
    tgt = jnp.pad(target, [(0, 0), (0, t - T)] + [(0, 0)] * 3)
    return ((seq - tgt) ** 2).sum() + (final ** 2).sum()

  grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
  gw, gx = grad(w, x, mask)
  x_long, m_long = _pad(x, mask, T_LONG, 0.0)
  x_long[~m_long] = 1e3 * np.random.default_rng(2).normal(
      size=x_long[~m_long].shape)
  gw_l, gx_l = grad(w, x_long, m_long)
  for k in w:
    assert np.abs(gw[k]).max() > 1e-3  # Not trivially zero.
    np.testing.assert_allclose(gw_l[k], gw[k], atol=ATOL)
  np.testing.assert_allclose(gx_l[:, :T], gx, atol=ATOL)
  np.testing.assert_array_equal(np.asarray(gx_l)[~m_long], 0.0)


def test_grid_features_equal_their_maps():
  # The backbones' 'grid' pooling flattens cells (row, column, channel); the
  # layout the spec records must undo exactly that.
  fmap = np.random.default_rng(3).normal(size=(B * T, 4, 4, 5))
  fmap = fmap.astype(np.float32)
  flat = np.asarray(pool(fmap, 'grid', 2)).reshape(B, T, -1)
  shape = feature_frame_shape({'pooling': 'grid', 'grid_size': 2}, flat.shape[-1])
  assert shape == (2, 2, 5)
  np.testing.assert_array_equal(
      flat.reshape(B * T, *shape), adaptive_avg_pool(fmap, 2))

  model = create_model('convlstm_features', 3, channels=4, filters=(4,))
  maps = flat.reshape(B, T, 2, 2, 5)
  mask = np.arange(T)[None, :] < LENGTHS[:, None]
  params = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0), maps, mask)
  apply = jax.jit(functools.partial(model.apply, train=False))
  flat_apply = jax.jit(functools.partial(apply_to_flat(model, shape), train=False))
  np.testing.assert_array_equal(flat_apply(params, flat, mask),
                                apply(params, maps, mask))


def test_the_two_names_are_one_model():
  # convlstm_features is convlstm with other defaults: same params, same logits.
  x, mask, _ = _data()
  feats = create_model('convlstm_features', 3)
  same = create_model('convlstm', 3, channels=32, filters=(16,), pool=1)
  params = jax.jit(functools.partial(feats.init, train=False))(jax.random.key(0), x, mask)
  assert jax.tree.structure(params) == jax.tree.structure(
      jax.eval_shape(functools.partial(same.init, train=False), jax.random.key(0), x, mask))
  np.testing.assert_array_equal(feats.apply(params, x, mask, train=False),
                                same.apply(params, x, mask, train=False))


def test_bad_shapes_raise():
  x, mask, w = _data()
  with pytest.raises(ValueError, match=r'\(4, 5, 6, 6, 3\).*\(4, 4\)'):
    ConvLSTM(F).apply({'params': w}, x, mask[:, :4])
  frames = create_model('convlstm', 3)
  feats = create_model('convlstm_features', 3)
  apply = lambda m, x, mask: jax.eval_shape(
      lambda: m.init(jax.random.key(0), x, mask, train=False))
  # Flat features are the trainer's to unflatten (models.model_frame_shape).
  with pytest.raises(ValueError, match=r'\(4, 5, 8\).*model_frame_shape'):
    apply(frames, np.zeros((B, T, 8)), mask)
  with pytest.raises(ValueError, match=r'f32\[b, t, h, w, c\].*\(4, 5, 6, 6\)'):
    apply(frames, x[..., 0], mask)
  with pytest.raises(ValueError, match=r'\(4, 5, 6, 6, 3\).*\(4, 4\)'):
    apply(frames, x, mask[:, :4])
  with pytest.raises(ValueError, match=r'\(4, 5, 6, 6\).*\(4, 5\)'):
    apply(feats, x[..., 0], mask)
  with pytest.raises(ValueError, match=r'd=8 are not frames of shape \(3, 3, 0\)'):
    feature_frame_shape({'pooling': 'grid', 'grid_size': 3}, 8)
