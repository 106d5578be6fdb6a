"""One masked scan over time, shared by every recurrent layer.

Sequences are batch-major and right-padded: `mask: bool[b, t]` is True on a
prefix of real steps and False on the padding after it. Padding must never
change a result, so the scan carries the state through padded steps unchanged
and writes zeros as their outputs; a padded batch then gives exactly what each
sequence would give on its own.
"""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Carry = Any  # A pytree whose leaves all have leading batch axis b.
Output = Any  # A pytree whose leaves all have leading batch axis b.
CellFn = Callable[[Carry, jax.Array], tuple[Carry, Output]]


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


def masked_scan(
    cell_fn: CellFn,
    carry: Carry,
    inputs: jax.Array,
    mask: jax.Array,
    *,
    reverse: bool = False,
) -> tuple[Carry, Output]:
  """Runs `cell_fn` over time on right-padded sequences, ignoring padding.

  Args:
    cell_fn: pure step `(carry, x_t: f32[b, ...]) -> (new_carry, y_t)`; it
      closes over its params. Carry and y_t leaves have leading axis b.
    carry: initial carry, a pytree of [b, ...] arrays.
    inputs: f32[b, t, ...] batch-major inputs.
    mask: bool[b, t], True on a prefix of real steps per sequence.
    reverse: run each sequence backward over its real steps only: sequence i
      starts at its own last real step, not at the padding. Outputs are still
      returned in forward time order.

  Returns:
    (final_carry, outputs): the carry after each sequence's last processed
    real step (the initial carry for a zero-length sequence), and outputs, a
    pytree of [b, t, ...] arrays with zeros at padded steps.

  Raises:
    ValueError: if `mask.shape != inputs.shape[:2]`, or if a concrete mask is
      not a prefix mask.
  """
  if mask.ndim != 2 or inputs.ndim < 2 or mask.shape != inputs.shape[:2]:
    raise ValueError(
        f'masked_scan: mask shape {tuple(mask.shape)} must equal the leading '
        f'(b, t) of inputs shape {tuple(inputs.shape)}')
  check_prefix_mask(mask)
  mask = mask.astype(bool)
  # Zero the padding so garbage (even inf/NaN) there cannot reach outputs or
  # gradients through 0 * inf inside the cell.
  inputs = jnp.where(_broadcast_mask(mask, inputs), inputs, 0)

  if reverse:
    lengths = mask.sum(axis=1)
    # A prefix mask is unchanged by reversing within length.
    inputs = reverse_within_length(inputs, lengths)

  def step(c: Carry, xm: tuple[jax.Array, jax.Array]) -> tuple[Carry, Output]:
    x_t, m_t = xm
    new_c, y_t = cell_fn(c, x_t)
    new_c = jax.tree.map(
        lambda n, o: jnp.where(_broadcast_mask(m_t, n), n, o), new_c, c)
    y_t = jax.tree.map(
        lambda y: jnp.where(_broadcast_mask(m_t, y), y, jnp.zeros_like(y)), y_t)
    return new_c, y_t

  # lax.scan walks the leading axis, so go time-major and back.
  xs = (jnp.swapaxes(inputs, 0, 1), jnp.swapaxes(mask, 0, 1))
  final_carry, ys = jax.lax.scan(step, carry, xs)
  outputs = jax.tree.map(lambda y: jnp.swapaxes(y, 0, 1), ys)

  if reverse:
    outputs = jax.tree.map(
        lambda y: reverse_within_length(y, lengths), outputs)
  return final_carry, outputs
