"""masked_scan against a plain Python loop over each unpadded sequence;
bidirectional_scan against two masked_scans."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videojax.models.scan import (bidirectional_scan, from_scan_order, masked_scan,
                                  reverse_within_length, to_scan_order)

ATOL = 1e-6  # fp32; the scan and the loop do the same ops in the same order.
B, T, D, H = 4, 6, 3, 5
LENGTHS = np.array([6, 3, 0, 1])


def _params():
  k1, k2 = jax.random.split(jax.random.key(0))
  return (jax.random.normal(k1, (D, H)), 0.5 * jax.random.normal(k2, (H, H)))


def _cell(params):
  a, b = params

  def cell(h, x):
    new_h = jnp.tanh(x @ a + h @ b)
    return new_h, 2.0 * new_h + 1.0  # y != carry, so mixing them up fails.

  return cell


def _data():
  x = jax.random.normal(jax.random.key(1), (B, T, D))
  mask = np.arange(T)[None, :] < LENGTHS[:, None]
  # Nonzero initial carry: a zero-length sequence must return exactly this.
  h0 = jnp.linspace(-1.0, 1.0, B * H).reshape(B, H)
  return x, jnp.asarray(mask), h0


def _loop(cell, h0_i, x_i, reverse):
  """Reference: one unpadded sequence, step by step, in Python."""
  steps = list(range(len(x_i)))
  if reverse:
    steps = steps[::-1]
  h, ys = h0_i[None], {}
  for j in steps:
    h, y = cell(h, x_i[j][None])
    ys[j] = y[0]
  return h[0], [ys[j] for j in range(len(x_i))]


@pytest.mark.parametrize('reverse', [False, True])
def test_matches_python_loop_per_sequence(reverse):
  cell = _cell(_params())
  x, mask, h0 = _data()
  final, out = jax.jit(
      lambda c, x, m: masked_scan(cell, c, x, m, reverse=reverse))(h0, x, mask)
  for i, n in enumerate(LENGTHS):
    # Reverse means: the UNPADDED sequence read backward.
    want_h, want_ys = _loop(cell, h0[i], x[i, :n], reverse)
    np.testing.assert_allclose(final[i], want_h, atol=ATOL)
    for j in range(n):
      np.testing.assert_allclose(out[i, j], want_ys[j], atol=ATOL)
    np.testing.assert_array_equal(out[i, n:], 0.0)


def test_reverse_differs_from_forward():
  # Guards the reverse test above against a cell that is order-blind.
  cell = _cell(_params())
  x, mask, h0 = _data()
  fwd, _ = masked_scan(cell, h0, x, mask)
  bwd, _ = masked_scan(cell, h0, x, mask, reverse=True)
  assert np.abs(np.asarray(fwd[0] - bwd[0])).max() > 1e-3


def test_zero_length_gives_initial_carry_without_nan():
  cell = _cell(_params())
  x, mask, h0 = _data()
  x = x.at[2].set(jnp.nan)  # Row 2 has length 0: all padding.
  for reverse in (False, True):
    final, out = masked_scan(cell, h0, x, mask, reverse=reverse)
    np.testing.assert_array_equal(final[2], h0[2])
    assert np.isfinite(np.asarray(final)).all()
    assert np.isfinite(np.asarray(out)).all()


def test_garbage_padding_changes_nothing_even_in_gradients():
  params = _params()
  x, mask, h0 = _data()
  garbage = jnp.where(mask[..., None], x, jnp.inf)

  def loss(p, inputs):
    final, out = masked_scan(_cell(p), h0, inputs, mask, reverse=True)
    return final.sum() + out.sum()

  g_clean = jax.grad(loss)(params, x)
  g_garbage = jax.grad(loss)(params, garbage)
  for a, b in zip(g_clean, g_garbage):
    np.testing.assert_array_equal(a, b)


def test_pytree_carry_and_outputs():
  x, mask, _ = _data()

  def cell(c, x_t):
    s, n = c
    return (s + x_t.sum(-1), n + 1), {'s': s, 'x': x_t}

  (s, n), out = masked_scan(cell, (jnp.zeros(B), jnp.zeros(B)), x, mask)
  np.testing.assert_allclose(s, np.where(mask[..., None], x, 0).sum((1, 2)),
                             atol=1e-5)
  np.testing.assert_array_equal(n, LENGTHS)
  np.testing.assert_array_equal(out['x'][1, 3:], 0.0)


def test_reverse_within_length_is_an_involution():
  x = jnp.arange(2 * 4).reshape(2, 4)
  lengths = jnp.array([3, 0])
  r = reverse_within_length(x, lengths)
  np.testing.assert_array_equal(r, [[2, 1, 0, 3], [4, 5, 6, 7]])
  np.testing.assert_array_equal(reverse_within_length(r, lengths), x)


def test_shape_mismatch_raises_naming_both_shapes():
  x, mask, h0 = _data()
  with pytest.raises(ValueError, match=r'\(4, 5\).*\(4, 6, 3\)'):
    masked_scan(_cell(_params()), h0, x, mask[:, :5])


def test_non_prefix_mask_raises():
  x, mask, h0 = _data()
  holey = mask.at[0, 2].set(False)
  with pytest.raises(ValueError, match='prefix'):
    masked_scan(_cell(_params()), h0, x, holey)


def test_bidirectional_scan_equals_a_forward_and_a_reverse_scan():
  # Direction 1 gets other weights and other inputs, so swapping the
  # directions, or reversing the wrong one, fails. Same ops, same order: ATOL.
  params = [_params(), tuple(2.0 * p for p in _params())]
  x, mask, h0 = _data()
  x2 = jnp.stack([x, -x[..., ::-1]], axis=2)  # f32[b, t, 2, d]
  cell = lambda h, x, a, b: _cell((a, b))(h, x)
  both = jax.vmap(cell, in_axes=(1, 1, 0, 0), out_axes=1)
  weights = tuple(jnp.stack(w) for w in zip(*params))
  final, out = jax.jit(lambda c, x, m: bidirectional_scan(
      both, c, x, m, weights=weights))(jnp.stack([h0, -h0], 1), x2, mask)
  for k, reverse in enumerate([False, True]):
    want_final, want_out = masked_scan(_cell(params[k]), [h0, -h0][k], x2[:, :, k],
                                       mask, reverse=reverse)
    np.testing.assert_allclose(final[:, k], want_final, atol=ATOL)
    np.testing.assert_allclose(out[:, :, k], want_out, atol=ATOL)


def test_scan_order_reverses_direction_1_within_length_and_goes_time_major():
  x = jnp.arange(3 * 4 * 2).reshape(3, 4, 2)
  lengths = jnp.array([4, 2, 0])
  want = jnp.stack([x[..., 0], reverse_within_length(x[..., 1], lengths)], -1)
  np.testing.assert_array_equal(to_scan_order(x, lengths), jnp.swapaxes(want, 0, 1))
  np.testing.assert_array_equal(from_scan_order(to_scan_order(x, lengths), lengths), x)


@pytest.mark.parametrize('which', ['to', 'from'])
def test_scan_order_gradients_are_autodiffs(which):
  # The gathers and their gradients against JAX's own transpose of the same
  # map written with swapaxes, stack and take_along_axis; all exact, so equal
  # to the last bit.
  rng = np.random.default_rng(0)
  b, t = 3, 5
  x = jnp.asarray(rng.standard_normal((b, t, 2, 2) if which == 'to' else (t, b, 2, 2)),
                  jnp.float32)
  lengths = jnp.array([5, 2, 0])
  j = jnp.arange(t)[None, :]
  idx = jnp.where(j < lengths[:, None], lengths[:, None] - 1 - j, j)[..., None]
  flip = lambda z: jnp.stack([z[:, :, 0], jnp.take_along_axis(z[:, :, 1], idx, 1)], 2)
  fn, ref = {
      'to': (to_scan_order, lambda x: jnp.swapaxes(flip(x), 0, 1)),
      'from': (from_scan_order, lambda y: flip(jnp.swapaxes(y, 0, 1))),
  }[which]
  y, vjp = jax.vjp(lambda x: fn(x, lengths), x)
  want, ref_vjp = jax.vjp(ref, x)
  np.testing.assert_array_equal(y, want)
  g = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
  np.testing.assert_array_equal(vjp(g)[0], ref_vjp(g)[0])
  assert not np.array_equal(vjp(g)[0], jnp.swapaxes(g, 0, 1))  # the check can fail


def test_bidirectional_scan_needs_a_direction_axis():
  x, mask, h0 = _data()
  with pytest.raises(ValueError, match=r'f32\[b, t, 2, \.\.\.\].*\(4, 6, 3\)'):
    bidirectional_scan(_cell(_params()), h0, x, mask)
