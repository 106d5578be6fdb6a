"""One masked scan over time, shared by every recurrent layer.

Sequences are batch-major and right-padded: `mask: bool[b, t]` is True on a
prefix of real steps and False on the padding after it. Padding must never
change a result, so the scan carries the state through padded steps unchanged
and writes zeros as their outputs; a padded batch then gives exactly what each
sequence would give on its own. `bidirectional_scan` runs a forward and a
backward direction in the same loop.

Data parallel: models know nothing of devices. `train.Steps` runs the whole
loss under one `jax.shard_map` over the batch, so this scan sees one device's
rows and the weights' gradient is summed across devices once per step, after
the model. (Under jit's partitioner alone, XLA sums it at EVERY time step of
the backward loop: one all-reduce per step, seen in the compiled HLO on CPU.)
Weights still reach the cell through `weights`, not a Python closure, so that
`linear_recurrence` can form the recurrent kernel's gradient after the loop.
"""

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Carry = Any  # A pytree whose leaves all have leading batch axis b.
Output = Any  # A pytree whose leaves all have leading batch axis b.
CellFn = Callable[..., tuple[Carry, Output]]  # (carry, x_t, *weights)


def _broadcast_mask(m: jax.Array, x: jax.Array) -> jax.Array:
  """bool[b] -> bool[b, 1, ...] with the rank of `x`."""
  return m.reshape(m.shape + (1,) * (x.ndim - m.ndim))


def check_prefix_mask(mask: jax.Array) -> None:
  """Raises ValueError if a concrete `mask: bool[b, t]` is not True-then-False.

  Traced masks cannot be inspected, so they pass unchecked; the check catches
  bad masks in eager code and tests, where they are cheapest to find.
  """
  if isinstance(mask, jax.core.Tracer):
    return
  m = np.asarray(mask, dtype=bool)
  lengths = m.sum(axis=1)
  prefix = np.arange(m.shape[1])[None, :] < lengths[:, None]
  bad = np.nonzero((m != prefix).any(axis=1))[0]
  if bad.size:
    raise ValueError(
        'mask must be True on a prefix of each row and False after it (right '
        f'padding); rows {bad.tolist()} are not: {m[bad[0]].astype(int)}')


@jax.custom_vjp
def reverse_within_length(x: jax.Array, lengths: jax.Array) -> jax.Array:
  """Reverses each sequence over its first `lengths[i]` steps, keeps padding.

  Args:
    x: f32[b, t, ...] right-padded sequences.
    lengths: i32[b] number of real steps per sequence.

  Returns:
    f32[b, t, ...] where row i is x[i, length-1-j] for j < length and x[i, j]
    after. The map is its own inverse, so it also un-reverses outputs.
  """
  t = x.shape[1]
  j = jnp.arange(t)[None, :]
  idx = jnp.where(j < lengths[:, None], lengths[:, None] - 1 - j, j)
  return jnp.take_along_axis(x, _broadcast_mask(idx, x), axis=1)


# The map is a permutation and its own inverse, so its gradient is the same
# gather. Autodiff would transpose the gather into a scatter-add into zeros,
# which cost XLA's CPU backend 6.3 ms per device per step in bilstm_attention
# (t 64, b 64 on 2 devices; BENCHMARKS.md).
def _reverse_fwd(x, lengths):
  return reverse_within_length(x, lengths), lengths


def _reverse_bwd(lengths, g):
  return reverse_within_length(g, lengths), None


reverse_within_length.defvjp(_reverse_fwd, _reverse_bwd)


def _steps_order(lengths: jax.Array, t: int) -> jax.Array:
  """i32[b, t, 2]: the step each direction reads at scan step s.

  Direction 0 reads step s; direction 1 reads its real steps backward,
  lengths - 1 - s, and step s on the padding (which stays padding).
  """
  s = jnp.arange(t)[None, :]
  backward = jnp.where(s < lengths[:, None], lengths[:, None] - 1 - s, s)
  return jnp.stack([jnp.broadcast_to(s, backward.shape), backward], axis=-1)


@jax.custom_vjp
def to_scan_order(x: jax.Array, lengths: jax.Array) -> jax.Array:
  """One gather from batch-major pairs to what a bidirectional scan reads.

  Args:
    x: f32[b, t, 2, ...] right-padded inputs of two directions.
    lengths: i32[b] number of real steps per sequence.

  Returns:
    f32[t, b, 2, ...]: time-major; direction 0 as it was, direction 1
    reversed within each length (its padding stays in place).
    `from_scan_order` is the inverse.
  """
  b, t = x.shape[:2]
  order = jnp.swapaxes(_steps_order(lengths, t), 0, 1)  # i32[t, b, 2]
  return x[jnp.arange(b)[None, :, None], order, jnp.arange(2)]


@jax.custom_vjp
def from_scan_order(y: jax.Array, lengths: jax.Array) -> jax.Array:
  """f32[t, b, 2, ...] -> f32[b, t, 2, ...], the inverse of `to_scan_order`.

  Both directions' outputs come back in forward time order, so the result
  reshapes to the concatenation [fwd | bwd] at no cost.
  """
  t, b = y.shape[:2]
  order = _steps_order(lengths, t)  # i32[b, t, 2]
  return y[order, jnp.arange(b)[:, None, None], jnp.arange(2)]


# Each is a permutation whose inverse is the other, so the gradient of one is
# the other: a gather, where autodiff would scatter-add into zeros.
to_scan_order.defvjp(lambda x, lengths: (to_scan_order(x, lengths), lengths),
                     lambda lengths, g: (from_scan_order(g, lengths), None))
from_scan_order.defvjp(lambda y, lengths: (from_scan_order(y, lengths), lengths),
                       lambda lengths, g: (to_scan_order(g, lengths), None))


def _check_mask(inputs: jax.Array, mask: jax.Array, where: str) -> jax.Array:
  if mask.ndim != 2 or inputs.ndim < 2 or mask.shape != inputs.shape[:2]:
    raise ValueError(
        f'{where}: mask shape {tuple(mask.shape)} must equal the leading '
        f'(b, t) of inputs shape {tuple(inputs.shape)}')
  check_prefix_mask(mask)
  return mask.astype(bool)


def _loop(cell_fn, carry, xs, mask_tm, weights):
  """lax.scan of `cell_fn` over time-major xs f32[t, b, ...] and mask_tm bool[t, b]."""
  def step(c: Carry, xm: tuple[jax.Array, jax.Array]) -> tuple[Carry, Output]:
    x_t, m_t = xm
    # Zero the padding so garbage (even inf/NaN) there cannot reach outputs
    # or gradients through 0 * inf inside the cell. Here in the step, not on
    # the whole input before the loop: there its transpose fused with the
    # layout copy of the input's cotangent into a slow strided loop (13.5 of
    # 178 ms in bilstm_attention's step on one CPU core; BENCHMARKS.md).
    x_t = jnp.where(_broadcast_mask(m_t, x_t), x_t, 0)
    new_c, y_t = cell_fn(c, x_t, *weights)
    new_c = jax.tree.map(
        lambda n, o: jnp.where(_broadcast_mask(m_t, n), n, o), new_c, c)
    y_t = jax.tree.map(
        lambda y: jnp.where(_broadcast_mask(m_t, y), y, jnp.zeros_like(y)), y_t)
    return new_c, y_t
  return jax.lax.scan(step, carry, (xs, mask_tm))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _linear_recurrence_loop(cell_fn, carry, xs, mask_tm, recurrent_kernel):
  """`_loop` for a cell whose one weight U enters as x_t + y_{t-1} @ U (an LSTM).

  The gradient is autodiff's, but U's part is formed after the loop: since
  the cotangent of x_t is that of the sum, dU = sum_t y_{t-1}^T dx_t, one
  matmul of the stacked outputs and input cotangents. Autodiff does one small
  matmul per step inside the backward loop instead (about 10 of 145 ms in
  bilstm_attention's step on one CPU core; BENCHMARKS.md).
  """
  return _loop(cell_fn, carry, xs, mask_tm, (recurrent_kernel,))


def _linear_recurrence_fwd(cell_fn, carry, xs, mask_tm, recurrent_kernel):
  frozen = jax.lax.stop_gradient(recurrent_kernel)  # no per-step gradient of U
  out, pullback = jax.vjp(
      lambda c, x: _loop(cell_fn, c, x, mask_tm, (frozen,)), carry, xs)
  return out, (pullback, out[1], jax.tree.leaves(carry)[0], recurrent_kernel.shape)


def _linear_recurrence_bwd(cell_fn, res, g):
  del cell_fn
  pullback, ys, y0, kernel_shape = res
  d_carry, d_xs = pullback(g)
  # What each step multiplied by U: the previous step's output, the initial
  # carry's first leaf at step 0. At padded steps d_xs is 0 (the step zeroes
  # them), so whatever stands there adds nothing.
  y_prev = jnp.concatenate([y0[None], ys[:-1]])  # f32[t, b, ..., h]
  n = y_prev.shape[0] * y_prev.shape[1]
  d_kernel = jnp.einsum('nkh,nkg->khg', y_prev.reshape(n, -1, y_prev.shape[-1]),
                        d_xs.reshape(n, -1, d_xs.shape[-1]))
  return d_carry, d_xs, None, d_kernel.reshape(kernel_shape)


_linear_recurrence_loop.defvjp(_linear_recurrence_fwd, _linear_recurrence_bwd)


def _scan(cell_fn, carry, inputs, mask, weights, to_steps, from_steps,
          linear_recurrence=False):
  """The loop of both scans.

  `to_steps(x: [b, t, ...], lengths) -> [t, b, ...]` orders the inputs as the
  loop reads them and `from_steps` orders its outputs back.
  """
  if linear_recurrence and len(weights) != 1:
    raise ValueError('linear_recurrence needs exactly one weight, the recurrent '
                     f'kernel; got {len(weights)}')
  lengths = mask.sum(axis=1)
  xs = to_steps(inputs, lengths)
  # A prefix mask is unchanged by reversing within length, so the step mask
  # is the time-major mask for either direction.
  if linear_recurrence:
    final, ys = _linear_recurrence_loop(cell_fn, carry, xs, mask.T, weights[0])
  else:
    final, ys = _loop(cell_fn, carry, xs, mask.T, tuple(weights))
  return final, jax.tree.map(lambda y: from_steps(y, lengths), ys)


def masked_scan(
    cell_fn: CellFn,
    carry: Carry,
    inputs: jax.Array,
    mask: jax.Array,
    *,
    weights: tuple[Any, ...] = (),
    reverse: bool = False,
    linear_recurrence: bool = False,
) -> tuple[Carry, Output]:
  """Runs `cell_fn` over time on right-padded sequences, ignoring padding.

  Args:
    cell_fn: pure step `(carry, x_t: f32[b, ...], *weights) -> (new_carry,
      y_t)`. Carry and y_t leaves have leading axis b.
    carry: initial carry, a pytree of [b, ...] arrays.
    inputs: f32[b, t, ...] batch-major inputs.
    mask: bool[b, t], True on a prefix of real steps per sequence.
    weights: the cell's parameters (pytrees without a batch axis), passed to
      every step; see the module docstring for why not a closure.
    reverse: run each sequence backward over its real steps only: sequence i
      starts at its own last real step, not at the padding. Outputs are still
      returned in forward time order.
    linear_recurrence: the cell has one weight, U, and it enters only as
      `x_t + y_{t-1} @ U`, y_{t-1} the cell's previous output (the carry's first
      leaf at step 0), as in an LSTM. U's gradient is then one matmul after the
      loop rather than one per step inside it; the values are autodiff's.

  Returns:
    (final_carry, outputs): the carry after each sequence's last processed
    real step (the initial carry for a zero-length sequence), and outputs, a
    pytree of [b, t, ...] arrays with zeros at padded steps.

  Raises:
    ValueError: if `mask.shape != inputs.shape[:2]`, if a concrete mask is
      not a prefix mask, or with linear_recurrence and not one weight.
  """
  mask = _check_mask(inputs, mask, 'masked_scan')
  # lax.scan walks the leading axis, so go time-major and back.
  time_major = lambda x: jnp.swapaxes(x, 0, 1)
  if reverse:
    to_steps = lambda x, lengths: time_major(reverse_within_length(x, lengths))
    from_steps = lambda y, lengths: reverse_within_length(time_major(y), lengths)
  else:
    to_steps = from_steps = lambda x, lengths: time_major(x)
  return _scan(cell_fn, carry, inputs, mask, weights, to_steps, from_steps,
               linear_recurrence)


def bidirectional_scan(
    cell_fn: CellFn,
    carry: Carry,
    inputs: jax.Array,
    mask: jax.Array,
    *,
    weights: tuple[Any, ...] = (),
    linear_recurrence: bool = False,
) -> tuple[Carry, Output]:
  """`masked_scan` of two directions at once: one loop, both read from step 0.

  Direction 1 reads each sequence backward over its real steps, as
  `masked_scan(..., reverse=True)` does. Running both in one loop halves the
  sequential steps of two scans; the data movement in and out is one gather
  each way (`to_scan_order`, `from_scan_order`).

  Args:
    cell_fn: as for `masked_scan`, on x_t f32[b, 2, ...]: both directions'
      inputs at one scan step (typically a step vmapped over axis 1).
    carry: initial carry, a pytree of [b, ...] arrays.
    inputs: f32[b, t, 2, ...] the two directions' inputs, both in forward time
      order.
    mask: bool[b, t], True on a prefix of real steps per sequence.
    weights: as for `masked_scan`.
    linear_recurrence: as for `masked_scan` (U then carries the direction
      axis: f32[2, h, g]).

  Returns:
    (final_carry, outputs): as for `masked_scan`; outputs are [b, t, 2, ...]
    with both directions in forward time order.

  Raises:
    ValueError: as `masked_scan`, or if inputs have no direction axis of 2.
  """
  mask = _check_mask(inputs, mask, 'bidirectional_scan')
  if inputs.ndim < 3 or inputs.shape[2] != 2:
    raise ValueError(
        'bidirectional_scan: inputs must be f32[b, t, 2, ...] (axis 2 is the '
        f'direction); got shape {tuple(inputs.shape)}')
  return _scan(cell_fn, carry, inputs, mask, weights, to_scan_order,
               from_scan_order, linear_recurrence)
