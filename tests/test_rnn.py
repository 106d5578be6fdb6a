"""GRU against Keras 3 GRU(mask=...) and flax nn.RNN(GRUCell, seq_lengths=...)."""

import os

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
# oneDNN reorders float sums; off so the Keras reference is plain fp32.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from videojax.models.rnn import GRU  # noqa: E402

ATOL = 1e-5  # fp32 against other fp32 implementations.
B, T, D, H = 4, 7, 3, 5
LENGTHS = np.array([7, 4, 1, 2])  # Mixed lengths: padding differs per row.


def _data():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(B, T, D)).astype(np.float32)
  mask = np.arange(T)[None, :] < LENGTHS[:, None]
  # Nonzero biases, distinct input and recurrent rows, so a misplaced bias
  # or gate block shows up.
  w = {
      'kernel': rng.normal(size=(D, 3 * H)).astype(np.float32),
      'recurrent_kernel': 0.5 * rng.normal(size=(H, 3 * H)).astype(np.float32),
      'bias': rng.normal(size=(2, 3 * H)).astype(np.float32),
  }
  return x, mask, w


def _ours(x, mask, w, reverse=False):
  params = {'params': w}
  seq = GRU(H, reverse=reverse).apply(params, x, mask)
  final = GRU(H, return_sequences=False, reverse=reverse).apply(params, x, mask)
  return np.asarray(seq), np.asarray(final)


def test_param_layout_is_keras_layout():
  x, mask, _ = _data()
  v = GRU(H).init(jax.random.key(0), x, mask)
  shapes = jax.tree.map(jnp.shape, v['params'])
  assert shapes == {'kernel': (D, 3 * H), 'recurrent_kernel': (H, 3 * H),
                    'bias': (2, 3 * H)}


@pytest.mark.parametrize('reverse', [False, True])
def test_matches_keras_gru_with_mask(reverse):
  keras = pytest.importorskip('keras')
  x, mask, w = _data()
  layer = keras.layers.GRU(
      H, return_sequences=True, return_state=True, reset_after=True,
      go_backwards=reverse)
  layer.build((None, T, D))
  layer.set_weights([w['kernel'], w['recurrent_kernel'], w['bias']])
  k_seq, k_final = (np.asarray(a) for a in layer(x, mask=mask))
  if reverse:
    # Keras reads the whole padded row backward (padding first, carried
    # through) and returns outputs in reading order; put them in time order.
    k_seq = k_seq[:, ::-1]
  seq, final = _ours(x, mask, w, reverse)
  np.testing.assert_allclose(final, k_final, atol=ATOL)
  for i, n in enumerate(LENGTHS):
    np.testing.assert_allclose(seq[i, :n], k_seq[i, :n], atol=ATOL)
    np.testing.assert_array_equal(seq[i, n:], 0.0)


@pytest.mark.parametrize('reverse', [False, True])
def test_matches_flax_gru_cell(reverse):
  # flax's GRUCell is the same reset-after variant: r = sigmoid(x W_ir + b_ir
  # + h W_hr), n = tanh(x W_in + b_in + r * (h W_hn + b_hn)). It has one bias
  # for each of z and r, so those get the sum of our input and recurrent bias.
  x, mask, w = _data()
  k, u, b = w['kernel'], w['recurrent_kernel'], w['bias']
  blk = lambda a, g: a[..., g * H:(g + 1) * H]  # Gate g of (z, r, n).
  cell = {
      'iz': {'kernel': blk(k, 0), 'bias': blk(b[0], 0) + blk(b[1], 0)},
      'ir': {'kernel': blk(k, 1), 'bias': blk(b[0], 1) + blk(b[1], 1)},
      'in': {'kernel': blk(k, 2), 'bias': blk(b[0], 2)},
      'hz': {'kernel': blk(u, 0)},
      'hr': {'kernel': blk(u, 1)},
      'hn': {'kernel': blk(u, 2), 'bias': blk(b[1], 2)},
  }
  rnn = nn.RNN(nn.GRUCell(H), return_carry=True, reverse=reverse,
               keep_order=True)
  f_final, f_seq = rnn.apply({'params': {'cell': cell}}, x,
                             seq_lengths=jnp.asarray(LENGTHS))
  seq, final = _ours(x, mask, w, reverse)
  # flax also reverses within each length and picks the carry at step
  # length-1 of its scan (no zero-length rows here: flax would wrap to -1).
  np.testing.assert_allclose(final, f_final, atol=ATOL)
  for i, n in enumerate(LENGTHS):
    np.testing.assert_allclose(seq[i, :n], np.asarray(f_seq)[i, :n], atol=ATOL)


def test_final_state_is_last_valid_output():
  x, mask, w = _data()
  seq, final = _ours(x, mask, w)
  np.testing.assert_array_equal(final, seq[np.arange(B), LENGTHS - 1])
  seq_r, final_r = _ours(x, mask, w, reverse=True)
  np.testing.assert_array_equal(final_r, seq_r[:, 0])


def test_zero_length_final_state_is_zero():
  x, mask, w = _data()
  mask[1] = False
  x[1] = np.nan
  _, final = _ours(x, mask, w)
  np.testing.assert_array_equal(final[1], 0.0)
  assert np.isfinite(final).all()


def test_bad_shapes_raise():
  x, mask, w = _data()
  with pytest.raises(ValueError, match=r'\(4, 7, 3\).*\(4, 6\)'):
    GRU(H).apply({'params': w}, x, mask[:, :6])
