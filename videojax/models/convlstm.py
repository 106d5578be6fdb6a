"""ConvLSTM layer and classifiers over masked, right-padded video sequences.

The cell is Keras 3's `ConvLSTM2D` with `padding='same'`: an LSTM whose
matmuls are 2-D convolutions, so the state keeps the map's layout. Gates are in
Keras order (i, f, c, o) and params are laid out exactly as Keras stores them,
so Keras weights load with no reshaping:

  kernel            f32[kh, kw, c_in, 4f]  input kernels     [W_i|W_f|W_c|W_o]
  recurrent_kernel  f32[kh, kw, f, 4f]     recurrent kernels [U_i|U_f|U_c|U_o]
  bias              f32[4f]                [b_i|b_f|b_c|b_o], b_f starts at 1

  i  = sigmoid(W_i * x + b_i + U_i * h)
  f  = sigmoid(W_f * x + b_f + U_f * h)
  c' = f c + i tanh(W_c * x + b_c + U_c * h)
  o  = sigmoid(W_o * x + b_o + U_o * h)
  h' = o tanh(c')

where `*` is a stride-1 'same' convolution and products of maps are
elementwise. The initial state (h, c) is zeros.
"""

from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from videojax.models.scan import masked_scan

Initializer = Any
Kernel = int | tuple[int, int]


def conv_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """Stride-1 2-D convolution with 'same' padding, as Keras and TF pad.

  Args:
    x: f32[n, h, w, c].
    kernel: f32[kh, kw, c, f].

  Returns:
    f32[n, h, w, f]. For an even kernel the extra row and column of padding go
    at the bottom and right, as in TF.
  """
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=(1, 1), padding='SAME',
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def convlstm_step(
    recurrent_kernel: jax.Array,
    state: tuple[jax.Array, jax.Array],
    x_proj: jax.Array,
) -> tuple[tuple[jax.Array, jax.Array], jax.Array]:
  """One ConvLSTM step, given the input's projection for this step.

  Args:
    recurrent_kernel: f32[kh, kw, f, 4f], gates (i, f, c, o).
    state: (h, c), each f32[b, h, w, f].
    x_proj: f32[b, h, w, 4f], `W * x + b` for this step.

  Returns:
    ((h', c'), h').
  """
  h, c = state
  z = x_proj + conv_same(h, recurrent_kernel)
  z_i, z_f, z_c, z_o = jnp.split(z, 4, axis=-1)
  c = jax.nn.sigmoid(z_f) * c + jax.nn.sigmoid(z_i) * jnp.tanh(z_c)
  h = jax.nn.sigmoid(z_o) * jnp.tanh(c)
  return (h, c), h


def unit_forget_bias_init(key: jax.Array, shape: tuple[int, ...],
                          dtype: Any = jnp.float32) -> jax.Array:
  """Keras' `unit_forget_bias=True`: zeros, except ones for the forget gate."""
  del key
  f = shape[-1] // 4
  return jnp.zeros(shape, dtype).at[..., f:2 * f].set(1)


def _pair(k: Kernel) -> tuple[int, int]:
  return (k, k) if isinstance(k, int) else tuple(k)


class ConvLSTM(nn.Module):
  """A ConvLSTM layer over a whole masked sequence of maps, state zeros.

  Attributes:
    filters: state channels f.
    kernel_size: (kh, kw) or one int for both, used for both kernels.
    return_sequences: return every step's output f32[b, t, h, w, f] (zeros at
      padded steps) rather than the final state f32[b, h, w, f].
    reverse: read each sequence backward over its real steps; outputs stay in
      forward time order and the final state is the one after step 0.
    kernel_init, recurrent_kernel_init, bias_init: Keras' defaults.
  """
  filters: int
  kernel_size: Kernel = 3
  return_sequences: bool = True
  reverse: bool = False
  kernel_init: Initializer = nn.initializers.glorot_uniform()
  recurrent_kernel_init: Initializer = nn.initializers.orthogonal()
  bias_init: Initializer = unit_forget_bias_init

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    """Runs the ConvLSTM.

    Args:
      x: f32[b, t, h, w, c] inputs.
      mask: bool[b, t], True on a prefix of real steps.

    Returns:
      f32[b, t, h, w, f] outputs if `return_sequences`, else the final state h
      f32[b, h, w, f] (zeros for a zero-length sequence).

    Raises:
      ValueError: if x is not rank 5 or mask.shape != x.shape[:2].
    """
    if x.ndim != 5 or mask.shape != x.shape[:2]:
      raise ValueError(
          f'ConvLSTM: expected x f32[b, t, h, w, c] and mask bool[b, t] with '
          f'matching (b, t); got x {tuple(x.shape)}, mask {tuple(mask.shape)}')
    b, t, h, w, c = x.shape
    f = self.filters
    kh, kw = _pair(self.kernel_size)
    kernel = self.param('kernel', self.kernel_init, (kh, kw, c, 4 * f))
    recurrent_kernel = self.param(
        'recurrent_kernel', self.recurrent_kernel_init, (kh, kw, f, 4 * f))
    bias = self.param('bias', self.bias_init, (4 * f,))

    # Zero the padding before the conv so even inf/NaN there cannot reach the
    # kernel's gradient (0 * NaN is NaN).
    x = jnp.where(mask[:, :, None, None, None], x, 0)
    # The input conv has no recurrence: do every frame in one batched conv;
    # only the recurrent conv stays inside the scan.
    x_proj = conv_same(x.reshape(b * t, h, w, c), kernel) + bias
    x_proj = x_proj.reshape(b, t, h, w, 4 * f)

    state0 = (jnp.zeros((b, h, w, f), x_proj.dtype),) * 2
    step = lambda s, xp, kernel: convlstm_step(kernel, s, xp)
    (final, _), outputs = masked_scan(
        step, state0, x_proj, mask, weights=(recurrent_kernel,), reverse=self.reverse)
    return outputs if self.return_sequences else final


def check_maps(x: jax.Array, mask: jax.Array, where: str) -> None:
  """Raises ValueError unless x is f32[b, t, h, w, c] and mask bool[b, t].

  Runs on static shapes, so it fails at trace time, before any compute.
  """
  if x.ndim != 5 or mask.ndim != 2 or mask.shape != x.shape[:2]:
    raise ValueError(
        f'{where}: expected maps f32[b, t, h, w, c] and mask bool[b, t] with '
        f'matching (b, t); got {tuple(x.shape)}, mask {tuple(mask.shape)} '
        '(flat features f32[b, t, d] are unflattened first: see '
        'models.model_frame_shape)')


def convlstm_head(
    x: jax.Array, mask: jax.Array, *, num_classes: int, filters: Sequence[int],
    kernel_size: Kernel, pool: int, dropout: float, dense: int, train: bool,
) -> jax.Array:
  """Stacked ConvLSTMs, global average pool, then an MLP head.

  Call it inside a compact method: its layers become the caller's children.
  All but the last ConvLSTM return sequences, each followed by a `pool` x
  `pool` max pool per frame; the last gives its final state.

  Args:
    x: f32[b, t, h, w, c].
    mask: bool[b, t].
    num_classes, filters, kernel_size, pool, dropout, dense: as the
      classifiers' attributes.
    train: enables dropout.

  Returns:
    logits f32[b, k].

  Raises:
    ValueError: if `filters` is empty.
  """
  if not filters:
    raise ValueError(
        f'convlstm_head: filters must name at least one ConvLSTM width; got '
        f'{filters!r}')
  for i, width in enumerate(filters):
    last = i == len(filters) - 1
    x = ConvLSTM(width, kernel_size, return_sequences=not last,
                 name=f'convlstm_{i}')(x, mask)
    if not last and pool > 1:
      # Padded steps are zeros and pool to zeros, so padding stays inert.
      x = nn.max_pool(x, (pool, pool), (pool, pool), padding='SAME')
  x = x.mean(axis=(1, 2))  # f32[b, f]
  x = nn.Dropout(dropout, deterministic=not train)(x)
  x = nn.relu(nn.Dense(dense, name='dense')(x))
  return nn.Dense(num_classes, name='logits')(x)


class ConvLSTMClassifier(nn.Module):
  """Stacked ConvLSTMs over a map per frame, global pool, MLP head.

  Reads frames or backbone feature maps f32[b, t, h, w, c]. Features stored
  flat, f32[b, t, d], are unflattened before it by the trainer, from the
  layout their extraction spec records (`models.feature_frame_shape`): raw
  frames (config.extract.frames=pixels) or grid cells (pooling=grid).

  Attributes:
    num_classes: k.
    channels: width of a 1x1 conv applied first (0: none). Backbone maps are
      wide (512 for ResNet-18) and the input kernel is kh*kw*c*4f, so a linear
      1x1 reduction first is a low-rank factor that cuts params ~kh*kw times.
    filters: ConvLSTM widths; all but the last return sequences.
    kernel_size: kernel of every ConvLSTM.
    pool: max-pool window and stride between ConvLSTMs (1: none).
    dropout: dropout rate before the dense head.
    dense: width of the hidden dense layer.
  """
  reads_maps: ClassVar[bool] = True  # The trainer gives f32[b, t, h, w, c].

  num_classes: int
  channels: int = 0
  filters: Sequence[int] = (8, 8)
  kernel_size: Kernel = 3
  pool: int = 2
  dropout: float = 0.2
  dense: int = 16

  @nn.compact
  def __call__(
      self, maps: jax.Array, mask: jax.Array, *, train: bool
  ) -> jax.Array:
    """f32[b, t, h, w, c], bool[b, t] -> logits f32[b, k].

    Raises:
      ValueError: on a rank other than 5, or (b, t) not mask's shape.
    """
    check_maps(maps, mask, type(self).__name__)
    x = maps
    if self.channels:
      # Zero padded frames before the 1x1 conv: NaN there would reach its
      # kernel's gradient.
      x = jnp.where(mask[:, :, None, None, None], x, 0)
      # A Dense on the channel axis is exactly a 1x1 conv, for any rank.
      x = nn.Dense(self.channels, name='reduce')(x)
    return convlstm_head(
        x, mask, num_classes=self.num_classes, filters=self.filters,
        kernel_size=self.kernel_size, pool=self.pool, dropout=self.dropout,
        dense=self.dense, train=train)


class ConvLSTMFeatureClassifier(ConvLSTMClassifier):
  """`ConvLSTMClassifier` with defaults for wide backbone maps (grid features).

  A 1x1 reduction to 32 channels, then one ConvLSTM of 16 filters, no pool.
  """
  channels: int = 32
  filters: Sequence[int] = (16,)
  pool: int = 1
