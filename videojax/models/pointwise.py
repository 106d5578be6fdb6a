"""1x1 convolutions written as matmuls, with the params of `nn.Conv(f, (1, 1))`.

XLA's CPU convolution ran EfficientNet-Lite0's 1x1 shapes at about half the
speed of the same contraction as a matmul (f32[128, 56, 56, 24] -> 144
channels: 227 ms against 112 ms on 2 cores; BENCHMARKS.md). On GPUs and TPUs
both lower to the same GEMM, so the matmul form is used everywhere.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any
Initializer = Any


class PointwiseConv(nn.Module):
  """1x1 convolution without bias; 'SAME' and 'VALID' padding coincide here.

  Attributes:
    features: output channels f.
    strides: s; the output keeps every s-th row and column, as the strided
      1x1 convolution does.
    dtype: compute dtype.
    kernel_init: initializer of kernel f32[1, 1, c, f].
  """
  features: int
  strides: int = 1
  dtype: Dtype = jnp.float32
  kernel_init: Initializer = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """f32[n, h, w, c] -> f32[n, ceil(h / s), ceil(w / s), f]."""
    kernel = self.param('kernel', self.kernel_init, (1, 1, x.shape[-1], self.features))
    s = self.strides
    return x[:, ::s, ::s].astype(self.dtype) @ kernel[0, 0].astype(self.dtype)
