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
Gradients are autodiff's throughout.
"""

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


def _steps_order(lengths: jax.Array, t: int) -> jax.Array:
  """i32[b, t, 2]: the step each direction reads at scan step s.

  Direction 0 reads step s; direction 1 reads its real steps backward,
  lengths - 1 - s, and step s on the padding (which stays padding).
  """
  s = jnp.arange(t)[None, :]
  backward = jnp.where(s < lengths[:, None], lengths[:, None] - 1 - s, s)
  return jnp.stack([jnp.broadcast_to(s, backward.shape), backward], axis=-1)


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


def from_scan_order(y: jax.Array, lengths: jax.Array) -> jax.Array:
  """f32[t, b, 2, ...] -> f32[b, t, 2, ...], the inverse of `to_scan_order`.

  Both directions' outputs come back in forward time order, so the result
  reshapes to the concatenation [fwd | bwd] at no cost.
  """
  t, b = y.shape[:2]
  order = _steps_order(lengths, t)  # i32[b, t, 2]
  return y[order, jnp.arange(b)[:, None, None], jnp.arange(2)]


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
    # or gradients through 0 * inf inside the cell.
    x_t = jnp.where(_broadcast_mask(m_t, x_t), x_t, 0)
    new_c, y_t = cell_fn(c, x_t, *weights)
    new_c = jax.tree.map(
        lambda n, o: jnp.where(_broadcast_mask(m_t, n), n, o), new_c, c)
    y_t = jax.tree.map(
        lambda y: jnp.where(_broadcast_mask(m_t, y), y, jnp.zeros_like(y)), y_t)
    return new_c, y_t
  return jax.lax.scan(step, carry, (xs, mask_tm))


def _scan(cell_fn, carry, inputs, mask, weights, to_steps, from_steps):
  """The loop of both scans.

  `to_steps(x: [b, t, ...], lengths) -> [t, b, ...]` orders the inputs as the
  loop reads them and `from_steps` orders its outputs back.
  """
  lengths = mask.sum(axis=1)
  xs = to_steps(inputs, lengths)
  # A prefix mask is unchanged by reversing within length, so the step mask
  # is the time-major mask for either direction.
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
) -> tuple[Carry, Output]:
  """Runs `cell_fn` over time on right-padded sequences, ignoring padding.

  Args:
    cell_fn: pure step `(carry, x_t: f32[b, ...], *weights) -> (new_carry,
      y_t)`. Carry and y_t leaves have leading axis b.
    carry: initial carry, a pytree of [b, ...] arrays.
    inputs: f32[b, t, ...] batch-major inputs.
    mask: bool[b, t], True on a prefix of real steps per sequence.
    weights: the cell's parameters (pytrees without a batch axis), passed to
      every step.
    reverse: run each sequence backward over its real steps only: sequence i
      starts at its own last real step, not at the padding. Outputs are still
      returned in forward time order.

  Returns:
    (final_carry, outputs): the carry after each sequence's last processed
    real step (the initial carry for a zero-length sequence), and outputs, a
    pytree of [b, t, ...] arrays with zeros at padded steps.

  Raises:
    ValueError: if `mask.shape != inputs.shape[:2]` or a concrete mask is not
      a prefix mask.
  """
  mask = _check_mask(inputs, mask, 'masked_scan')
  # lax.scan walks the leading axis, so go time-major and back.
  time_major = lambda x: jnp.swapaxes(x, 0, 1)
  if reverse:
    to_steps = lambda x, lengths: time_major(reverse_within_length(x, lengths))
    from_steps = lambda y, lengths: reverse_within_length(time_major(y), lengths)
  else:
    to_steps = from_steps = lambda x, lengths: time_major(x)
  return _scan(cell_fn, carry, inputs, mask, weights, to_steps, from_steps)


def bidirectional_scan(
    cell_fn: CellFn,
    carry: Carry,
    inputs: jax.Array,
    mask: jax.Array,
    *,
    weights: tuple[Any, ...] = (),
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
  return _scan(cell_fn, carry, inputs, mask, weights, to_scan_order, from_scan_order)
