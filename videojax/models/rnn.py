"""GRU and LSTM layers over masked, right-padded sequences, and Bidirectional.

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

The LSTM keeps gates in PyTorch order (i, f, g, o), which is also Keras' order
(i, f, c, o), and Keras' layout, so both load by a transpose at most:

  kernel            f32[d, 4h]   [W_i | W_f | W_g | W_o]  = weight_ih_l0.T
  recurrent_kernel  f32[h, 4h]   [U_i | U_f | U_g | U_o]  = weight_hh_l0.T
  bias              f32[4h]      bias_ih_l0 + bias_hh_l0

  i  = sigmoid(x W_i + h U_i + b_i)      g  = tanh(x W_g + h U_g + b_g)
  f  = sigmoid(x W_f + h U_f + b_f)      o  = sigmoid(x W_o + h U_o + b_o)
  c' = f * c + i * g                     h' = o * tanh(c')

PyTorch's two biases only ever appear summed, so one is enough. For torch's
reverse direction use the `_reverse` tensors (`weight_ih_l0_reverse`, ...);
layer k > 0 reads `_l{k}`. Flax's `nn.LSTMCell` splits the same blocks into
Dense layers `ii, if, ig, io` (no bias) and `hi, hf, hg, ho` (with bias), and
orders its carry (c, h) where ours and torch's are (h, c).
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from videojax.models.scan import masked_scan, reverse_within_length

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
    step, state0, x_proj, weights = self.prepare(x, mask)
    final, outputs = masked_scan(step, state0, x_proj, mask, weights=weights,
                                 reverse=self.reverse)
    return self.finish(final, outputs)

  def finish(self, final: jax.Array, outputs: jax.Array) -> jax.Array:
    """What `__call__` returns, from the scan's final state and outputs."""
    return outputs if self.return_sequences else final

  @nn.compact
  def prepare(self, x: jax.Array, mask: jax.Array):
    """(step, initial state, projected inputs f32[b, t, 3h], step weights) for
    `masked_scan`.

    The input projection has no recurrence, so it is one big matmul over all
    steps here; only the small h x 3h matmul stays in `step`.
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

    def step(state: jax.Array, xp: jax.Array, recurrent_kernel: jax.Array,
             recurrent_bias: jax.Array) -> tuple[jax.Array, jax.Array]:
      x_z, x_r, x_n = jnp.split(xp, 3, axis=-1)
      h_z, h_r, h_n = jnp.split(state @ recurrent_kernel + recurrent_bias, 3, axis=-1)
      z = jax.nn.sigmoid(x_z + h_z)
      r = jax.nn.sigmoid(x_r + h_r)
      n = jnp.tanh(x_n + r * h_n)
      new_state = (1.0 - z) * n + z * state
      return new_state, new_state

    return (step, jnp.zeros((x.shape[0], h), x_proj.dtype), x_proj,
            (recurrent_kernel, bias[1]))


class LSTM(nn.Module):
  """An LSTM layer over a whole masked sequence, initial state zeros.

  Params are laid out as in the module docstring (PyTorch gate order, Keras
  shapes).

  Attributes:
    features: hidden size h.
    return_sequences: return every step's output f32[b, t, h] (zeros at padded
      steps) rather than the final hidden state f32[b, h].
    return_state: also return the final state `(h, c)`, each f32[b, h], as
      torch's `(h_n, c_n)` for one direction.
    reverse: read each sequence backward over its real steps; outputs stay in
      forward time order and the final state is the one after step 0.
    unit_forget_bias: add 1 to the forget gate's initial bias (Keras' default),
      so the cell starts out remembering.
    kernel_init, recurrent_kernel_init, bias_init: Keras' defaults.
  """
  features: int
  return_sequences: bool = True
  return_state: bool = False
  reverse: bool = False
  unit_forget_bias: bool = True
  kernel_init: Initializer = nn.initializers.glorot_uniform()
  recurrent_kernel_init: Initializer = nn.initializers.orthogonal()
  bias_init: Initializer = nn.initializers.zeros_init()

  def __call__(
      self, x: jax.Array, mask: jax.Array
  ) -> jax.Array | tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """Runs the LSTM.

    Args:
      x: f32[b, t, d] inputs.
      mask: bool[b, t], True on a prefix of real steps.

    Returns:
      f32[b, t, h] outputs if `return_sequences`, else the final hidden state
      f32[b, h] (zeros for a zero-length sequence); with `return_state`, the
      pair (that, (h, c)).

    Raises:
      ValueError: if x is not rank 3 or mask.shape != x.shape[:2].
    """
    step, state0, x_proj, weights = self.prepare(x, mask)
    final, outputs = masked_scan(step, state0, x_proj, mask, weights=weights,
                                 reverse=self.reverse)
    return self.finish(final, outputs)

  def finish(self, final, outputs):
    """What `__call__` returns, from the scan's final (h, c) and outputs."""
    out = outputs if self.return_sequences else final[0]
    return (out, final) if self.return_state else out

  @nn.compact
  def prepare(self, x: jax.Array, mask: jax.Array):
    """(step, initial (h, c), projected inputs f32[b, t, 4h], step weights) for
    `masked_scan`."""
    if x.ndim != 3 or mask.shape != x.shape[:2]:
      raise ValueError(
          f'LSTM: expected x f32[b, t, d] and mask bool[b, t] with matching '
          f'(b, t); got x {tuple(x.shape)}, mask {tuple(mask.shape)}')
    h = self.features

    def init_bias(key, shape, dtype=jnp.float32):
      b = self.bias_init(key, shape, dtype)
      if self.unit_forget_bias:
        b = b.at[h:2 * h].add(1.0)
      return b

    kernel = self.param('kernel', self.kernel_init, (x.shape[-1], 4 * h))
    recurrent_kernel = self.param(
        'recurrent_kernel', self.recurrent_kernel_init, (h, 4 * h))
    bias = self.param('bias', init_bias, (4 * h,))

    # As in GRU: zero the padding, then one big input matmul outside the scan.
    x = jnp.where(mask[..., None], x, 0)
    x_proj = x @ kernel + bias  # f32[b, t, 4h]

    def step(state, xp, recurrent_kernel):
      h_prev, c_prev = state
      gates = xp + h_prev @ recurrent_kernel
      i, f, g, o = jnp.split(gates, 4, axis=-1)
      c = jax.nn.sigmoid(f) * c_prev + jax.nn.sigmoid(i) * jnp.tanh(g)
      h_new = jax.nn.sigmoid(o) * jnp.tanh(c)
      return (h_new, c), h_new

    zeros = jnp.zeros((x.shape[0], h), x_proj.dtype)
    return step, (zeros, zeros), x_proj, (recurrent_kernel,)


class Bidirectional(nn.Module):
  """Runs a recurrent layer forward and backward, concatenating [fwd, bwd].

  Both directions are copies of `layer` (own params, under 'forward' and
  'backward'); the backward copy reads each sequence backward over its real
  steps only, so its outputs line up with the forward ones in time, as with
  PyTorch's packed `bidirectional=True`.

  Attributes:
    layer: a GRU or LSTM; its `reverse` is overridden.
  """
  layer: nn.Module

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> Any:
    """Runs both directions.

    Args:
      x: f32[b, t, d] inputs.
      mask: bool[b, t], True on a prefix of real steps.

    Returns:
      f32[b, t, 2h] (or f32[b, 2h] final states without `return_sequences`),
      forward half first; with an LSTM's `return_state`, the pair (that,
      (state_fwd, state_bwd)), each state `(h, c)`.

    Raises:
      ValueError: as the wrapped layer does, on mismatched shapes.
    """
    fwd = self.layer.copy(name='forward', reverse=False)
    bwd = self.layer.copy(name='backward', reverse=True)
    lengths = mask.sum(axis=1)
    step, state_f, x_f, w_f = fwd.prepare(x, mask)
    # Reversing x rather than its projection moves d, not 4h or 3h, columns.
    # prepare() is per step, so projecting the reversed x equals reversing
    # the projection; the mask is a prefix and unchanged by the reversal.
    _, state_b, x_b, w_b = bwd.prepare(reverse_within_length(x, lengths), mask)
    # One scan carries both directions: half the sequential steps of two
    # scans, which is most of an RNN's cost on CPU. The backward inputs are
    # reversed within each length, so both read their sequence from step 0.
    # The two copies share their step function, so it is vmapped over a
    # direction axis (axis 1, after the batch): one batched matmul per time
    # step instead of two.
    stack = lambda f, b, axis: jax.tree.map(lambda u, v: jnp.stack([u, v], axis), f, b)
    both = jax.vmap(step, in_axes=(1, 1) + (0,) * len(w_f), out_axes=1)
    inputs = stack(x_f, x_b, 2)  # f32[b, t, 2, g]
    final, ys = masked_scan(both, stack(state_f, state_b, 1), inputs, mask,
                            weights=stack(w_f, w_b, 0))
    final_f, final_b = (jax.tree.map(lambda s: s[:, i], final) for i in (0, 1))
    y_f, y_b = ys[:, :, 0], ys[:, :, 1]
    y_b = reverse_within_length(y_b, lengths)
    out_f, out_b = fwd.finish(final_f, y_f), bwd.finish(final_b, y_b)
    if getattr(self.layer, 'return_state', False):
      (y_f, s_f), (y_b, s_b) = out_f, out_b
      return jnp.concatenate([y_f, y_b], axis=-1), (s_f, s_b)
    return jnp.concatenate([out_f, out_b], axis=-1)
