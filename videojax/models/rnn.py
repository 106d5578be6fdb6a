"""GRU layer over masked, right-padded sequences.

The cell is the "reset-after" GRU of Keras 3 (`reset_after=True`, its default)
and PyTorch, with gates in Keras order (z, r, n) and params laid out exactly as
Keras stores them, so Keras weights load with no reshaping:

  kernel            f32[d, 3h]   input weights     [W_z | W_r | W_n]
  recurrent_kernel  f32[h, 3h]   recurrent weights [U_z | U_r | U_n]
  bias              f32[2, 3h]   row 0 input bias, row 1 recurrent bias

  z  = sigmoid(x W_z + b_z + h U_z + c_z)
  r  = sigmoid(x W_r + b_r + h U_r + c_r)
  n  = tanh(x W_n + b_n + r * (h U_n + c_n))
  h' = (1 - z) * n + z * h

PyTorch's `weight_ih_l0: f32[3h, d]` holds the same gates in order (r, z, n):
transpose and swap the first two blocks. Flax's `nn.GRUCell` is the same
variant with the input and recurrent biases of z and r folded into one.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from videojax.models.scan import masked_scan

Initializer = Any


class GRU(nn.Module):
  """A GRU layer over a whole masked sequence, initial state zeros.

  Attributes:
    features: hidden size h.
    return_sequences: return every step's output f32[b, t, h] (zeros at padded
      steps) rather than the final state f32[b, h].
    reverse: read each sequence backward over its real steps; outputs stay in
      forward time order and the final state is the one after step 0.
    kernel_init, recurrent_kernel_init, bias_init: Keras' defaults.
  """
  features: int
  return_sequences: bool = True
  reverse: bool = False
  kernel_init: Initializer = nn.initializers.glorot_uniform()
  recurrent_kernel_init: Initializer = nn.initializers.orthogonal()
  bias_init: Initializer = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    """Runs the GRU.

    Args:
      x: f32[b, t, d] inputs.
      mask: bool[b, t], True on a prefix of real steps.

    Returns:
      f32[b, t, h] outputs if `return_sequences`, else the final state f32[b, h]
      (zeros for a zero-length sequence).

    Raises:
      ValueError: if x is not rank 3 or mask.shape != x.shape[:2].
    """
    if x.ndim != 3 or mask.shape != x.shape[:2]:
      raise ValueError(
          f'GRU: expected x f32[b, t, d] and mask bool[b, t] with matching '
          f'(b, t); got x {tuple(x.shape)}, mask {tuple(mask.shape)}')
    h = self.features
    kernel = self.param('kernel', self.kernel_init, (x.shape[-1], 3 * h))
    recurrent_kernel = self.param(
        'recurrent_kernel', self.recurrent_kernel_init, (h, 3 * h))
    bias = self.param('bias', self.bias_init, (2, 3 * h))

    # Padding may hold garbage; zero it before the matmul so even inf/NaN there
    # cannot reach the kernel's gradient.
    x = jnp.where(mask[..., None], x, 0)
    # The input projection has no recurrence, so do it for all steps in one
    # big matmul; only the small h x 3h matmul stays inside the scan.
    x_proj = x @ kernel + bias[0]  # f32[b, t, 3h]

    def step(state: jax.Array, xp: jax.Array) -> tuple[jax.Array, jax.Array]:
      x_z, x_r, x_n = jnp.split(xp, 3, axis=-1)
      h_z, h_r, h_n = jnp.split(state @ recurrent_kernel + bias[1], 3, axis=-1)
      z = jax.nn.sigmoid(x_z + h_z)
      r = jax.nn.sigmoid(x_r + h_r)
      n = jnp.tanh(x_n + r * h_n)
      new_state = (1.0 - z) * n + z * state
      return new_state, new_state

    state0 = jnp.zeros((x.shape[0], h), x_proj.dtype)
    final, outputs = masked_scan(
        step, state0, x_proj, mask, reverse=self.reverse)
    return outputs if self.return_sequences else final
