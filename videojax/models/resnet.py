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
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from videojax.models.checkpoint_io import WeightsError, load_state_dict
from videojax.models.frames import rgb_float32
from videojax.models.pooling import POOLINGS, pool

Dtype = Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

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
  x = rgb_float32(frames) / 255.0
  return (x - jnp.array(IMAGENET_MEAN)) / jnp.array(IMAGENET_STD)


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
      x = conv(self.features, (1, 1), s, name='downsample_conv')(x)
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
    y = conv(self.features, (1, 1), name='conv1')(x)
    y = nn.relu(norm(name='bn1')(y))
    y = conv(self.features, (3, 3), s, padding=((1, 1), (1, 1)),
             name='conv2')(y)
    y = nn.relu(norm(name='bn2')(y))
    y = conv(out, (1, 1), name='conv3')(y)
    y = norm(name='bn3')(y)
    if x.shape[-1] != out or self.strides != 1:
      x = conv(out, (1, 1), s, name='downsample_conv')(x)
      x = norm(name='downsample_bn')(x)
    return nn.relu(x + y)


class ResNet(nn.Module):
  """ResNet v1.5 trunk with a pooling step in place of the classifier.

  Attributes:
    stage_sizes: blocks per stage, e.g. (2, 2, 2, 2) for ResNet18.
    block_cls: BasicBlock or Bottleneck.
    pooling: 'avg' -> f32[n, d], 'grid' -> f32[n, d k^2] or 'map' ->
      f32[n, h/32, w/32, d]; see `pooling.pool`.
    grid_size: k for 'grid' pooling.
    dtype: compute dtype (bfloat16 halves memory and is fast on accelerators);
      params are float32 and the output is always float32.
  """
  stage_sizes: Sequence[int]
  block_cls: type[nn.Module]
  pooling: str = 'avg'
  grid_size: int = 2
  dtype: Dtype = jnp.float32

  @property
  def feature_width(self) -> int:
    """Channels d of the final map: 512 times the block's expansion."""
    return 512 * self.block_cls.expansion

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Features of preprocessed frames.

    Args:
      x: f32[n, h, w, 3], output of `preprocess`.

    Returns:
      See `pooling`.

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

    return pool(x, self.pooling, self.grid_size)


ResNet18 = functools.partial(
    ResNet, stage_sizes=(2, 2, 2, 2), block_cls=BasicBlock)
ResNet34 = functools.partial(
    ResNet, stage_sizes=(3, 4, 6, 3), block_cls=BasicBlock)
ResNet50 = functools.partial(
    ResNet, stage_sizes=(3, 4, 6, 3), block_cls=Bottleneck)


# Flax module / variable names -> torchvision's (see the module docstring);
# layer{i}_{j} becomes layer{i}.{j}. timm's ResNets use the same names.
_TORCH_MODULES = {'downsample_conv': 'downsample.0',
                  'downsample_bn': 'downsample.1'}
_TORCH_LEAVES = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias',
                 'mean': 'running_mean', 'var': 'running_var'}
# Tensors of a torchvision/timm file that the backbone has no use for.
_IGNORED = re.compile(r'fc\..*|.*\.num_batches_tracked')
_KNOWN_LAYOUTS = {
    ((2, 2, 2, 2), 'BasicBlock'): 'resnet18',
    ((3, 4, 6, 3), 'BasicBlock'): 'resnet34',
    ((3, 4, 6, 3), 'Bottleneck'): 'resnet50',
    ((3, 4, 23, 3), 'Bottleneck'): 'resnet101',
    ((3, 8, 36, 3), 'Bottleneck'): 'resnet152',
}


def torch_name(path: Sequence[str]) -> str:
  """Torchvision tensor name of the Flax variable at `path` (no collection).

  E.g. ('layer2_0', 'downsample_conv', 'kernel')
  -> 'layer2.0.downsample.0.weight'.
  """
  *modules, leaf = path
  parts = [_TORCH_MODULES.get(m, m.replace('_', '.')) for m in modules]
  return '.'.join([*parts, _TORCH_LEAVES[leaf]])


def _torch_shape(path: Sequence[str], shape: Sequence[int]) -> tuple[int, ...]:
  """Shape a variable has in a torch file: kernels f32[o, i, kh, kw]."""
  if path[-1] == 'kernel':
    kh, kw, i, o = shape
    return (o, i, kh, kw)
  return tuple(shape)


@functools.cache
def _expected_variables(stage_sizes: tuple[int, ...], block_cls: type[nn.Module]
                        ) -> tuple[tuple[tuple[str, ...], Any], ...]:
  """((collection, *path), ShapeDtypeStruct) of every variable of the ResNet.

  Traced with `jax.eval_shape`, so nothing is computed; param shapes do not
  depend on the image size.
  """
  model = ResNet(stage_sizes, block_cls)
  x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
  variables = jax.eval_shape(model.init, jax.random.key(0), x)
  return tuple(traverse_util.flatten_dict(variables).items())


def _layout_hint(names: set[str], stage_sizes: Sequence[int],
                 block_cls: type[nn.Module]) -> str:
  """'; the file looks like ...' when the names read as another ResNet."""
  blocks: dict[int, set[int]] = {}
  for name in names:
    if m := re.match(r'layer(\d+)\.(\d+)\.', name):
      blocks.setdefault(int(m[1]), set()).add(int(m[2]))
  sizes = tuple(len(blocks[i]) for i in sorted(blocks))
  kind = ('Bottleneck' if any(n.endswith('.conv3.weight') for n in names)
          else 'BasicBlock')
  if (sizes, kind) == (tuple(stage_sizes), block_cls.__name__):
    return ''
  name = _KNOWN_LAYOUTS.get((sizes, kind), 'a ResNet')
  return (f'; the file looks like another architecture: {name} with '
          f'stage_sizes {sizes} and {kind} blocks, not stage_sizes '
          f'{tuple(stage_sizes)} with {block_cls.__name__}')


def _some(names: Sequence[str], limit: int = 5) -> str:
  more = f' (and {len(names) - limit} more)' if len(names) > limit else ''
  return ', '.join(names[:limit]) + more


def variables_from_torch(state: Mapping[str, np.ndarray],
                         stage_sizes: Sequence[int],
                         block_cls: type[nn.Module]) -> dict:
  """Flax variables for `ResNet(stage_sizes, block_cls)` from torch weights.

  Reads a torchvision or timm ResNet state dict (the two name ResNet tensors
  alike). The match is exact: every variable of the model must be in the
  file with its shape, and the file may hold nothing else but the classifier
  `fc.*` and BatchNorm's `num_batches_tracked`, which are ignored.

  Args:
    state: tensor name -> array, e.g. from `checkpoint_io.load_state_dict`;
      convs f32[o, i, kh, kw], BatchNorm f32[c].
    stage_sizes: blocks per stage, e.g. (2, 2, 2, 2) for ResNet18.
    block_cls: BasicBlock or Bottleneck.

  Returns:
    {'params': ..., 'batch_stats': ...} of float32 arrays, convs
    f32[kh, kw, i, o], ready for `ResNet(stage_sizes, block_cls).apply`.

  Raises:
    WeightsError: naming the tensors the model lacks (with a guess at the
      file's architecture), the tensors the file lacks, and tensors of the
      wrong shape (expected and got, in torch's layout).
  """
  expected = _expected_variables(tuple(stage_sizes), block_cls)
  by_name = {torch_name(path[1:]): (path, spec) for path, spec in expected}
  given = {k for k in state if not _IGNORED.fullmatch(k)}
  problems = []
  if unexpected := sorted(given - set(by_name)):
    problems.append(f'{len(unexpected)} tensor(s) the model does not have: '
                    f'{_some(unexpected)}')
  if missing := sorted(set(by_name) - given):
    problems.append(f'{len(missing)} tensor(s) missing: {_some(missing)}')
  flat, bad_shapes = {}, []
  for name, (path, spec) in by_name.items():
    if name not in given:
      continue
    value = np.asarray(state[name])
    want = _torch_shape(path, spec.shape)
    if value.shape != want:
      bad_shapes.append(f'{name} expected {want}, got {value.shape}')
    elif path[-1] == 'kernel':
      flat[path] = jnp.asarray(value.transpose(2, 3, 1, 0), spec.dtype)
    else:
      flat[path] = jnp.asarray(value, spec.dtype)
  if bad_shapes:
    problems.append(f'{len(bad_shapes)} tensor(s) of the wrong shape: '
                    f'{_some(bad_shapes)}')
  if problems:
    raise WeightsError('; '.join(problems)
                       + _layout_hint(given, stage_sizes, block_cls))
  return traverse_util.unflatten_dict(flat)


def load_torch_weights(path: str | pathlib.Path, stage_sizes: Sequence[int],
                       block_cls: type[nn.Module]) -> dict:
  """Flax variables for `ResNet(stage_sizes, block_cls)` from a weights file.

  Args:
    path: a torchvision or timm ResNet checkpoint: `.pth` / `.pt` / `.bin`
      (torch.save, zip or legacy) or `.safetensors`. Read without torch and
      without running code from the file.
    stage_sizes: blocks per stage, e.g. (3, 4, 6, 3).
    block_cls: BasicBlock or Bottleneck.

  Returns:
    {'params': ..., 'batch_stats': ...}, as `variables_from_torch`.

  Raises:
    FileNotFoundError: no such file.
    WeightsError: an unreadable file or one that does not fit the model; the
      message names the file and the tensors.
  """
  state = load_state_dict(path)
  try:
    return variables_from_torch(state, stage_sizes, block_cls)
  except WeightsError as e:
    raise WeightsError(f'{path}: {e}') from None
