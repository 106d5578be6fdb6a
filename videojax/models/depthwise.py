"""Depthwise convolution, as XLA's grouped convolution or as shifted sums.

Shared by the backbones built of depthwise-separable blocks (EfficientNet-Lite,
MobileNetV2). Both forms hold the same `kernel` param, f32[k, k, 1, c], the
layout of `nn.Conv(c, (k, k), feature_group_count=c)`, so weights load into
either; `'shifted'` runs several times faster on CPU (BENCHMARKS.md). And
`pad_stride2`: a stride-2 conv's padding as TF or PyTorch does it, chosen by data.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any
Padding = str | tuple[tuple[int, int], tuple[int, int]]

DEPTHWISE = ('conv', 'shifted')


def same_pads(size: int, k: int, s: int) -> tuple[int, int]:
  """'SAME' padding (before, after) of one axis, as XLA pads it."""
  out = -(-size // s)
  total = max((out - 1) * s + k - size, 0)
  return total // 2, total - total // 2


def pad_stride2(x: jax.Array, tf_padding: jax.Array, kernel: int = 3) -> jax.Array:
  """Pads x for a k x k (k odd) stride-2 'VALID' conv, as TF (tf_padding=1) or PyTorch (0).

  On an even side TF pads (k // 2 - 1, k // 2) and PyTorch (k // 2, k // 2),
  whose last row is never read; on an odd side both pad (k // 2, k // 2). So
  this pads (k // 2, k // 2 + 1) and cuts a window that starts at tf_padding:
  the shapes are static and the choice is data (the loader's, in the
  backbone's `layout` variables). Stride-1 convs pad alike in TF and PyTorch.

  Args:
    x: f32[n, h, w, c].
    tf_padding: i32[], 1 or 0.
    kernel: k.

  Returns:
    f32[n, h + 2 (k // 2), w + 2 (k // 2), c].
  """
  p = kernel // 2
  extra = [1 - size % 2 for size in x.shape[1:3]]  # 1 on even sides.
  x = jnp.pad(x, ((0, 0), (p, p + extra[0]), (p, p + extra[1]), (0, 0)))
  start = (0, tf_padding * extra[0], tf_padding * extra[1], 0)
  return jax.lax.dynamic_slice(x, start, (x.shape[0], x.shape[1] - extra[0],
                                          x.shape[2] - extra[1], x.shape[3]))


def shifted_depthwise_conv(x: jax.Array, kernel: jax.Array, strides: int,
                           padding: Padding = 'SAME') -> jax.Array:
  """Depthwise convolution as a sum of k^2 shifted, scaled copies of x.

  The same function as `nn.Conv(c, (k, k), s, padding=padding,
  feature_group_count=c)` with this kernel, up to float rounding. XLA fuses the
  sum into one loop; on CPU that ran EfficientNet-Lite0 4.5-5.7x faster than
  XLA's grouped convolution (BENCHMARKS.md).

  Args:
    x: f32[n, h, w, c].
    kernel: f32[k, k, 1, c], one k x k filter per channel.
    strides: s.
    padding: 'SAME', 'VALID' or ((top, bottom), (left, right)).

  Returns:
    f32[n, h', w', c]: ceil(h / s) with 'SAME'; as a VALID convolution of the
    padded x otherwise.
  """
  k = kernel.shape[0]
  if padding == 'SAME':
    padding = same_pads(x.shape[1], k, strides), same_pads(x.shape[2], k, strides)
  elif padding == 'VALID':
    padding = (0, 0), (0, 0)
  (t, b), (l, r) = padding
  x = jnp.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
  out_h, out_w = (x.shape[1] - k) // strides + 1, (x.shape[2] - k) // strides + 1
  acc = 0
  for i in range(k):
    for j in range(k):
      acc = acc + kernel[i, j, 0] * x[:, i:i + (out_h - 1) * strides + 1:strides,
                                      j:j + (out_w - 1) * strides + 1:strides, :]
  return acc


class ShiftedDepthwiseConv(nn.Module):
  """`shifted_depthwise_conv` with the params of the `nn.Conv` it stands for."""
  kernel_size: int
  strides: int
  dtype: Dtype = jnp.float32
  padding: Padding = 'SAME'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """f32[n, h, w, c] -> f32[n, h', w', c] (see `shifted_depthwise_conv`)."""
    k, c = self.kernel_size, x.shape[-1]
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (k, k, 1, c), jnp.float32)
    return shifted_depthwise_conv(x.astype(self.dtype), kernel.astype(self.dtype),
                                  self.strides, self.padding)


def depthwise_conv(impl: str, channels: int, kernel_size: int, strides: int, *,
                   padding: Padding = 'SAME', dtype: Dtype = jnp.float32,
                   name: str | None = None) -> nn.Module:
  """A depthwise k x k conv of `channels` channels: `impl` 'conv' (XLA's grouped
  convolution, `nn.Conv`) or 'shifted' (`ShiftedDepthwiseConv`); the same params.

  Raises:
    ValueError: an unknown impl.
  """
  if impl == 'shifted':
    return ShiftedDepthwiseConv(kernel_size, strides, dtype, padding, name=name)
  if impl == 'conv':
    return nn.Conv(channels, (kernel_size, kernel_size), (strides, strides), padding=padding,
                   feature_group_count=channels, use_bias=False, dtype=dtype, name=name)
  raise ValueError(f'depthwise must be one of {DEPTHWISE}; got {impl!r}')
