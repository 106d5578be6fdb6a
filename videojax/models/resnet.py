"""Frozen ResNet v1.5 backbone that turns frames into feature vectors.

ResNet v1.5 as in torchvision and flax's examples/imagenet: bottleneck blocks
put the stride on the 3x3 conv. NHWC, no classifier head, BatchNorm always in
inference mode, so the backbone is a pure function of its input and params.

Module names follow torchvision so its weights map by a fixed rule:

  torchvision                      this module (params / batch_stats)
  conv1.weight  f32[o, i, kh, kw]  conv1/kernel  f32[kh, kw, i, o]
  bn1.{weight, bias}               bn1/{scale, bias}
  bn1.{running_mean, running_var}  bn1/{mean, var}           (batch_stats)
  layer2.0.conv1.weight            layer2_0/conv1/kernel
  layer2.0.downsample.0.weight     layer2_0/downsample_conv/kernel
  layer2.0.downsample.1.*          layer2_0/downsample_bn/*

Padding is explicit and symmetric as in PyTorch: 'SAME' would pad strided
convs asymmetrically on even inputs and shift every feature by a pixel.
"""

import functools
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Dtype = Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
POOLINGS = ('avg', 'grid')

# torchvision's init: kaiming normal, fan_out, for ReLU.
_conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def preprocess(frames: jax.Array) -> jax.Array:
  """ImageNet normalisation of RGB frames, as the torchvision weights expect.

  Args:
    frames: u8[n, h, w, 3] RGB frames.

  Returns:
    f32[n, h, w, 3], (frames / 255 - mean) / std per channel.

  Raises:
    ValueError: if the last axis is not 3 channels.
  """
  if frames.ndim < 1 or frames.shape[-1] != 3:
    raise ValueError(
        f'preprocess: expected RGB frames u8[n, h, w, 3]; got shape '
        f'{tuple(frames.shape)}')
  x = jnp.asarray(frames, jnp.float32) / 255.0
  return (x - jnp.array(IMAGENET_MEAN)) / jnp.array(IMAGENET_STD)


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
  """PyTorch's AdaptiveAvgPool2d: averages x over a size x size grid of bins.

  Bin i along an axis of length L covers [floor(i L / size), ceil((i+1) L /
  size)), so bins overlap when L is not a multiple of size and every bin is
  non-empty even when L < size.

  Args:
    x: f32[n, h, w, c].
    size: grid side k.

  Returns:
    f32[n, k, k, c].
  """
  def bounds(length: int) -> list[tuple[int, int]]:
    return [(i * length // size, -(-(i + 1) * length // size))
            for i in range(size)]

  # Shapes are static, so these loops unroll into k*k small reductions.
  rows = []
  for y0, y1 in bounds(x.shape[1]):
    row = [x[:, y0:y1, x0:x1, :].mean(axis=(1, 2))
           for x0, x1 in bounds(x.shape[2])]
    rows.append(jnp.stack(row, axis=1))
  return jnp.stack(rows, axis=1)


class BasicBlock(nn.Module):
  """Two 3x3 convs plus shortcut (ResNet18/34).

  Attributes:
    features: output channels c.
    strides: stride of the first conv (and of the projection shortcut).
    dtype: compute dtype.
  """
  features: int
  strides: int = 1
  dtype: Dtype = jnp.float32
  expansion = 1  # Output channels per `features`.

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """f32[n, h, w, c_in] -> f32[n, h / s, w / s, features]."""
    conv = functools.partial(
        nn.Conv, use_bias=False, dtype=self.dtype, kernel_init=_conv_init)
    norm = functools.partial(
        nn.BatchNorm, use_running_average=True, epsilon=1e-5, dtype=self.dtype)
    s = (self.strides, self.strides)
    y = conv(self.features, (3, 3), s, padding=((1, 1), (1, 1)),
             name='conv1')(x)
    y = nn.relu(norm(name='bn1')(y))
    y = conv(self.features, (3, 3), padding=((1, 1), (1, 1)), name='conv2')(y)
    y = norm(name='bn2')(y)
    if x.shape[-1] != self.features or self.strides != 1:
      x = conv(self.features, (1, 1), s, padding='VALID',
               name='downsample_conv')(x)
      x = norm(name='downsample_bn')(x)
    return nn.relu(x + y)


class Bottleneck(nn.Module):
  """1x1 reduce, 3x3 (strided: v1.5), 1x1 expand x4, plus shortcut (ResNet50).

  Attributes:
    features: bottleneck channels; the block outputs 4 * features.
    strides: stride of the 3x3 conv (and of the projection shortcut).
    dtype: compute dtype.
  """
  features: int
  strides: int = 1
  dtype: Dtype = jnp.float32
  expansion = 4

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """f32[n, h, w, c_in] -> f32[n, h / s, w / s, 4 * features]."""
    conv = functools.partial(
        nn.Conv, use_bias=False, dtype=self.dtype, kernel_init=_conv_init)
    norm = functools.partial(
        nn.BatchNorm, use_running_average=True, epsilon=1e-5, dtype=self.dtype)
    s = (self.strides, self.strides)
    out = self.features * self.expansion
    y = conv(self.features, (1, 1), padding='VALID', name='conv1')(x)
    y = nn.relu(norm(name='bn1')(y))
    y = conv(self.features, (3, 3), s, padding=((1, 1), (1, 1)),
             name='conv2')(y)
    y = nn.relu(norm(name='bn2')(y))
    y = conv(out, (1, 1), padding='VALID', name='conv3')(y)
    y = norm(name='bn3')(y)
    if x.shape[-1] != out or self.strides != 1:
      x = conv(out, (1, 1), s, padding='VALID', name='downsample_conv')(x)
      x = norm(name='downsample_bn')(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """ResNet v1.5 trunk with a pooling step in place of the classifier.

  Attributes:
    stage_sizes: blocks per stage, e.g. (2, 2, 2, 2) for ResNet18.
    block_cls: BasicBlock or Bottleneck.
    pooling: 'avg' global average pool -> f32[n, d]; 'grid' average pools the
      final map into grid_size x grid_size bins and flattens them in (row,
      column, channel) order -> f32[n, d * k * k]. Global pooling forgets
      where things are in the frame; the grid keeps a coarse layout (left vs
      right, top vs bottom), which matters when the class depends on where
      motion happens, at k*k times the feature width.
    grid_size: k for 'grid' pooling.
    dtype: compute dtype (bfloat16 halves memory and is fast on accelerators);
      params are float32 and the output is always float32.
  """
  stage_sizes: Sequence[int]
  block_cls: type[nn.Module]
  pooling: str = 'avg'
  grid_size: int = 2
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Features of preprocessed frames.

    Args:
      x: f32[n, h, w, 3], output of `preprocess`.

    Returns:
      f32[n, d] for 'avg' pooling, f32[n, d * k * k] for 'grid'.

    Raises:
      ValueError: on a bad input shape, pooling name or grid size.
    """
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(
          f'ResNet: expected preprocessed frames f32[n, h, w, 3]; got shape '
          f'{tuple(x.shape)}')
    if self.pooling not in POOLINGS:
      raise ValueError(
          f'ResNet.pooling must be one of {POOLINGS}; got {self.pooling!r}')
    if self.pooling == 'grid' and self.grid_size < 1:
      raise ValueError(f'ResNet.grid_size must be >= 1; got {self.grid_size}')

    x = x.astype(self.dtype)
    x = nn.Conv(64, (7, 7), (2, 2), padding=((3, 3), (3, 3)), use_bias=False,
                dtype=self.dtype, kernel_init=_conv_init, name='conv1')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=1e-5, dtype=self.dtype,
                     name='bn1')(x)
    x = nn.relu(x)
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        x = self.block_cls(
            features=64 * 2**i,
            strides=2 if i > 0 and j == 0 else 1,
            dtype=self.dtype,
            name=f'layer{i + 1}_{j}',
        )(x)

    # Pool in float32: a mean over many bfloat16 values loses precision.
    x = x.astype(jnp.float32)
    if self.pooling == 'avg':
      return x.mean(axis=(1, 2))
    grid = adaptive_avg_pool(x, self.grid_size)
    return grid.reshape(grid.shape[0], -1)


ResNet18 = functools.partial(
    ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock)
ResNet34 = functools.partial(
    ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BasicBlock)
ResNet50 = functools.partial(
    ResNet, stage_sizes=(3, 4, 6, 3), block_cls=Bottleneck)


def feature_dim(block_cls: type[nn.Module], pooling: str = 'avg',
                grid_size: int = 2) -> int:
  """Width d of the pooled features for a block type and pooling."""
  if pooling not in POOLINGS:
    raise ValueError(f'pooling must be one of {POOLINGS}; got {pooling!r}')
  d = 512 * block_cls.expansion
  return d if pooling == 'avg' else d * grid_size * grid_size
