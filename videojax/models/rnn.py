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

from videojax.models.attention import check_sequences
from videojax.models.scan import bidirectional_scan, masked_scan

Initializer = Any


def _zero_padding(x: jax.Array, mask: jax.Array) -> jax.Array:
  # Padding may hold garbage; zero it before the input matmul so even inf/NaN
  # there cannot reach the kernel's gradient.
  return jnp.where(mask[..., None], x, 0)


class _Recurrent(nn.Module):
  """What GRU and LSTM share: the input projection outside the scan, the scan.

  A subclass defines `cell(d)` (its params, created there, and its step) and
  `finish`. The input projection has no recurrence, so it is one big matmul over all steps;
  only the small h x gh matmul stays in the step.
  """

  def __call__(self, x: jax.Array, mask: jax.Array) -> Any:
    """Runs the layer; see the subclass for what it returns.

    Args:
      x: f32[b, t, d] inputs.
      mask: bool[b, t], True on a prefix of real steps.

    Raises:
      ValueError: if x is not rank 3 or mask.shape != x.shape[:2].
    """
    check_sequences(x, mask, type(self).__name__)
    kernel, bias, step, weights = self.cell(x.shape[-1])
    x_proj = _zero_padding(x, mask) @ kernel + bias  # f32[b, t, gh]
    final, outputs = masked_scan(step, self.initial_state(x.shape[0], x_proj.dtype),
                                 x_proj, mask, weights=weights, reverse=self.reverse)
    return self.finish(final, outputs)


class GRU(_Recurrent):
  """A GRU layer over a whole masked sequence, initial state zeros.

  Attributes:
    features: hidden size h.
    return_sequences: return every step's output f32[b, t, h] (zeros at padded
      steps) rather than the final state f32[b, h].
    reverse: read each sequence backward over its real steps; outputs stay in
      forward time order and the final state is the one after step 0.
    kernel_init, recurrent_kernel_init, bias_init: Keras' defaults.

  Called on (x f32[b, t, d], mask bool[b, t]), returns f32[b, t, h] outputs if
  `return_sequences`, else the final state f32[b, h] (zeros for a zero-length
  sequence).
  """
  features: int
  return_sequences: bool = True
  reverse: bool = False
  kernel_init: Initializer = nn.initializers.glorot_uniform()
  recurrent_kernel_init: Initializer = nn.initializers.orthogonal()
  bias_init: Initializer = nn.initializers.zeros_init()

  def initial_state(self, batch: int, dtype) -> jax.Array:
    """Zeros f32[batch, h]."""
    return jnp.zeros((batch, self.features), dtype)

  def finish(self, final: jax.Array, outputs: jax.Array) -> jax.Array:
    """What `__call__` returns, from the scan's final state and outputs."""
    return outputs if self.return_sequences else final

  @nn.compact
  def cell(self, d: int):
    """(kernel f32[d, 3h], input bias f32[3h], step, step weights)."""
    h = self.features
    kernel = self.param('kernel', self.kernel_init, (d, 3 * h))
    recurrent_kernel = self.param(
        'recurrent_kernel', self.recurrent_kernel_init, (h, 3 * h))
    bias = self.param('bias', self.bias_init, (2, 3 * h))

    def step(state: jax.Array, xp: jax.Array, recurrent_kernel: jax.Array,
             recurrent_bias: jax.Array) -> tuple[jax.Array, jax.Array]:
      x_z, x_r, x_n = jnp.split(xp, 3, axis=-1)
      h_z, h_r, h_n = jnp.split(state @ recurrent_kernel + recurrent_bias, 3, axis=-1)
      z = jax.nn.sigmoid(x_z + h_z)
      r = jax.nn.sigmoid(x_r + h_r)
      n = jnp.tanh(x_n + r * h_n)
      new_state = (1.0 - z) * n + z * state
      return new_state, new_state

    return kernel, bias[0], step, (recurrent_kernel, bias[1])


class LSTM(_Recurrent):
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

  Called on (x f32[b, t, d], mask bool[b, t]), returns f32[b, t, h] outputs if
  `return_sequences`, else the final hidden state f32[b, h] (zeros for a
  zero-length sequence); with `return_state`, the pair (that, (h, c)).
  """
  features: int
  return_sequences: bool = True
  return_state: bool = False
  reverse: bool = False
  unit_forget_bias: bool = True
  kernel_init: Initializer = nn.initializers.glorot_uniform()
  recurrent_kernel_init: Initializer = nn.initializers.orthogonal()
  bias_init: Initializer = nn.initializers.zeros_init()

  def initial_state(self, batch: int, dtype) -> tuple[jax.Array, jax.Array]:
    """(h, c), zeros f32[batch, h] each."""
    zeros = jnp.zeros((batch, self.features), dtype)
    return zeros, zeros

  def finish(self, final, outputs):
    """What `__call__` returns, from the scan's final (h, c) and outputs."""
    out = outputs if self.return_sequences else final[0]
    return (out, final) if self.return_state else out

  @nn.compact
  def cell(self, d: int):
    """(kernel f32[d, 4h], input bias f32[4h], step, step weights)."""
    h = self.features

    def init_bias(key, shape, dtype=jnp.float32):
      b = self.bias_init(key, shape, dtype)
      if self.unit_forget_bias:
        b = b.at[h:2 * h].add(1.0)
      return b

    kernel = self.param('kernel', self.kernel_init, (d, 4 * h))
    recurrent_kernel = self.param(
        'recurrent_kernel', self.recurrent_kernel_init, (h, 4 * h))
    bias = self.param('bias', init_bias, (4 * h,))

    def step(state, xp, recurrent_kernel):
      h_prev, c_prev = state
      gates = xp + h_prev @ recurrent_kernel
      i, f, g, o = jnp.split(gates, 4, axis=-1)
      c = jax.nn.sigmoid(f) * c_prev + jax.nn.sigmoid(i) * jnp.tanh(g)
      h_new = jax.nn.sigmoid(o) * jnp.tanh(c)
      return (h_new, c), h_new

    return kernel, bias, step, (recurrent_kernel,)


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
    check_sequences(x, mask, f'Bidirectional({type(self.layer).__name__})')
    fwd = self.layer.copy(name='forward', reverse=False)
    bwd = self.layer.copy(name='backward', reverse=True)
    (k_f, b_f, step, w_f), (k_b, b_b, _, w_b) = fwd.cell(x.shape[-1]), bwd.cell(x.shape[-1])
    stack = lambda f, b, axis: jax.tree.map(lambda u, v: jnp.stack([u, v], axis), f, b)
    # Both directions' input projections in one matmul, d -> 2 x gh, laid out
    # [b, t, direction, gh] as the scan reads them.
    b, t, d = x.shape
    kernel = stack(k_f, k_b, 1).reshape(d, -1)  # f32[d, 2 gh]
    x_proj = (_zero_padding(x, mask).reshape(b * t, d) @ kernel).reshape(
        b, t, 2, -1) + stack(b_f, b_b, 0)
    state = stack(fwd.initial_state(x.shape[0], x_proj.dtype),
                  bwd.initial_state(x.shape[0], x_proj.dtype), 1)
    # One scan carries both directions: half the sequential steps of two
    # scans, which is most of an RNN's cost on CPU. The two copies share their
    # step function, so it is vmapped over the direction axis (axis 1, after
    # the batch): one batched matmul per time step instead of two.
    both = jax.vmap(step, in_axes=(1, 1) + (0,) * len(w_f), out_axes=1)
    final, ys = bidirectional_scan(both, state, x_proj, mask, weights=stack(w_f, w_b, 0))
    final_f, final_b = (jax.tree.map(lambda s: s[:, i], final) for i in (0, 1))
    out_f = fwd.finish(final_f, ys[:, :, 0])
    out_b = bwd.finish(final_b, ys[:, :, 1])
    states = None
    if getattr(self.layer, 'return_state', False):
      (out_f, s_f), (out_b, s_b) = out_f, out_b
      states = (s_f, s_b)
    if self.layer.return_sequences:
      # ys: f32[b, t, 2, h], both in forward order: [fwd | bwd] is a reshape.
      out = ys.reshape(ys.shape[:2] + (-1,))
    else:
      out = jnp.concatenate([out_f, out_b], axis=-1)
    return out if states is None else (out, states)
