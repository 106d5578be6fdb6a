"""Frozen InceptionV3 (2048-d, 299 px), loadable from Keras, torchvision or timm files.

Modules are named as torchvision names them (timm's inception_v3 uses the same
names), so a state dict maps by a fixed rule:

  torchvision / timm                        this module (params / batch_stats)
  Conv2d_1a_3x3.conv.weight f32[o, i, kh, kw]  Conv2d_1a_3x3/conv/kernel f32[kh, kw, i, o]
  Mixed_5b.branch5x5_1.bn.{weight, bias}    Mixed_5b/branch5x5_1/bn/{scale, bias}
  Mixed_5b.branch5x5_1.bn.running_{mean, var}  .../bn/{mean, var}
  AuxLogits.*, fc.*                         ignored (the classifiers)

Every conv is followed by BatchNorm (eps 1e-3) and ReLU, with no conv bias, in
all three layouts; a Keras file's BatchNorm has no scale (`scale=False`), so
ours is 1. Keras files name these layers by a session counter, so they are
matched by position (see `keras_weights`, `_KERAS_ORDER`).

Input: all three expect RGB scaled to [-1, 1], x / 127.5 - 1 (`preprocess`).
Keras's `inception_v3.preprocess_input` does exactly that; torchvision's
ImageNet weights were ported from TensorFlow and its model, built with
`transform_input=True` (as `inception_v3(weights=...)` does), maps
ImageNet-normalised input (x / 255 - mean) / std back to (x / 255 - 0.5) / 0.5,
the same [-1, 1]; timm's `inception_v3.tv_in1k` / `tf_in1k` use mean = std =
0.5. (timm's `gluon_in1k` weights expect ImageNet mean/std instead; they load,
but get the wrong scaling.)

One difference: the 3x3 stride-1 average pools of the branches divide by 9
everywhere in PyTorch (`count_include_pad=True`) but by the number of pixels
inside the image in Keras/TF. The loader records which in the `layout`
collection: layout/pool_excludes_padding i32[], 1 for a Keras file, 0 for a
torch one (random init: 1). BatchNorm is always in inference mode.
"""

import functools
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from videojax.models import checkpoint_io, keras_weights
from videojax.models.frames import rgb_float32
from videojax.models.pooling import POOLINGS, pool

Dtype = Any

WIDTH = 2048
IMAGE_SIZE = 299
MIN_SIZE = 75  # Smallest input side the stride-2 'VALID' convs and pools allow.
BN_EPS = 1e-3

# Conv names of each block kind, in the order torchvision and Keras create them.
_BRANCHES = {
    'A': ('branch1x1', 'branch5x5_1', 'branch5x5_2', 'branch3x3dbl_1', 'branch3x3dbl_2',
          'branch3x3dbl_3', 'branch_pool'),
    'B': ('branch3x3', 'branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3'),
    'C': ('branch1x1', 'branch7x7_1', 'branch7x7_2', 'branch7x7_3', 'branch7x7dbl_1',
          'branch7x7dbl_2', 'branch7x7dbl_3', 'branch7x7dbl_4', 'branch7x7dbl_5', 'branch_pool'),
    'D': ('branch3x3_1', 'branch3x3_2', 'branch7x7x3_1', 'branch7x7x3_2', 'branch7x7x3_3',
          'branch7x7x3_4'),
    'E': ('branch1x1', 'branch3x3_1', 'branch3x3_2a', 'branch3x3_2b', 'branch3x3dbl_1',
          'branch3x3dbl_2', 'branch3x3dbl_3a', 'branch3x3dbl_3b', 'branch_pool'),
}
_STEM = ('Conv2d_1a_3x3', 'Conv2d_2a_3x3', 'Conv2d_2b_3x3', 'Conv2d_3b_1x1', 'Conv2d_4a_3x3')
# (name, kind, width argument: pool features for A, 7x7 channels for C).
_BLOCKS = (('Mixed_5b', 'A', 32), ('Mixed_5c', 'A', 64), ('Mixed_5d', 'A', 64),
           ('Mixed_6a', 'B', 0), ('Mixed_6b', 'C', 128), ('Mixed_6c', 'C', 160),
           ('Mixed_6d', 'C', 160), ('Mixed_6e', 'C', 192), ('Mixed_7a', 'D', 0),
           ('Mixed_7b', 'E', 0), ('Mixed_7c', 'E', 0))
# Keras's layer order (a topological sort of the graph, the order of its
# files) as indices into `conv_names()` (the creation order). Read from
# keras.applications.InceptionV3 (Keras 3.15, the same order Keras 2 wrote
# the ImageNet file in); test_inception_v3 checks it against Keras.
_KERAS_ORDER = (
    0, 1, 2, 3, 4, 8, 6, 9, 5, 7, 10, 11, 15, 13, 16, 12, 14, 17, 18, 22, 20, 23, 19, 21, 24,
    25, 27, 28, 26, 29, 34, 35, 31, 36, 32, 37, 30, 33, 38, 39, 44, 45, 41, 46, 42, 47, 40, 43,
    48, 49, 54, 55, 51, 56, 52, 57, 50, 53, 58, 59, 64, 65, 61, 66, 62, 67, 60, 63, 68, 69, 72,
    73, 70, 74, 71, 75, 80, 77, 81, 78, 79, 82, 83, 76, 84, 89, 86, 90, 87, 88, 91, 92, 85, 93)


def conv_names() -> list[str]:
  """'Mixed_5b/branch1x1', ... of the 94 conv+BN units, in creation order."""
  return [*_STEM, *(f'{block}/{b}' for block, kind, _ in _BLOCKS for b in _BRANCHES[kind])]


def layout_constants(layout: str) -> dict[str, np.ndarray]:
  """The `layout` collection for a 'keras' or a 'torch' (torchvision, timm) file.

  Raises:
    ValueError: another layout.
  """
  if layout not in ('keras', 'torch'):
    raise ValueError(f"layout must be 'keras' or 'torch'; got {layout!r}")
  return {'pool_excludes_padding': np.asarray(int(layout == 'keras'), np.int32)}


def preprocess(frames: jax.Array) -> jax.Array:
  """RGB frames u8[n, h, w, 3] -> f32 in [-1, 1], x / 127.5 - 1, as all layouts expect.

  Raises:
    ValueError: if the last axis is not 3 channels.
  """
  return rgb_float32(frames) / 127.5 - 1.0


def avg_pool_3x3(x: jax.Array, excludes_padding: jax.Array) -> jax.Array:
  """3x3 stride-1 average pool padded by 1: divides by 9 (PyTorch) or, when
  `excludes_padding` (i32[]) is 1, by the pixels inside the image (TF 'SAME').

  f32[n, h, w, c] -> f32[n, h, w, c].
  """
  pads = ((0, 0), (1, 1), (1, 1), (0, 0))
  total = jax.lax.reduce_window(x, jnp.zeros((), x.dtype), jax.lax.add, (1, 3, 3, 1),
                                (1, 1, 1, 1), pads)
  h, w = x.shape[1:3]
  rows = np.minimum(np.arange(h) + 1, h - 1) - np.maximum(np.arange(h) - 1, 0) + 1
  cols = np.minimum(np.arange(w) + 1, w - 1) - np.maximum(np.arange(w) - 1, 0) + 1
  inside = (rows[:, None] * cols[None, :]).astype(np.float32)[None, :, :, None]
  return total / jnp.where(excludes_padding == 1, inside, 9.0).astype(x.dtype)


class BasicConv(nn.Module):
  """Conv (no bias) -> BatchNorm (eps 1e-3) -> ReLU, torchvision's BasicConv2d."""
  features: int
  kernel: tuple[int, int]
  strides: int = 1
  padding: str = 'SAME'
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """f32[n, h, w, c] -> f32[n, h', w', features]."""
    x = nn.Conv(self.features, self.kernel, (self.strides, self.strides),
                padding=self.padding, use_bias=False, dtype=self.dtype, name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPS, dtype=self.dtype, name='bn')(x)
    return nn.relu(x)


def _max_pool(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (3, 3), (2, 2), padding='VALID')


class InceptionBlock(nn.Module):
  """One Mixed_* block: torchvision's InceptionA..E by `kind`.

  Attributes:
    kind: 'A' .. 'E'.
    width: pool features of A; 7x7 channels of C; unused by B, D and E.
    dtype: compute dtype.
  """
  kind: str
  width: int = 0
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, excludes_padding: jax.Array) -> jax.Array:
    """f32[n, h, w, c] -> f32[n, h', w', c'] (h' = h, or (h - 3) / 2 + 1 for B and D)."""
    def conv(name, features, kernel, strides=1, padding='SAME'):
      return BasicConv(features, kernel, strides, padding, self.dtype, name=name)
    valid2 = dict(strides=2, padding='VALID')
    pooled = lambda: avg_pool_3x3(x, excludes_padding)  # noqa: E731
    if self.kind == 'A':
      b5 = conv('branch5x5_2', 64, (5, 5))(conv('branch5x5_1', 48, (1, 1))(x))
      b3 = conv('branch3x3dbl_1', 64, (1, 1))(x)
      b3 = conv('branch3x3dbl_3', 96, (3, 3))(conv('branch3x3dbl_2', 96, (3, 3))(b3))
      outs = [conv('branch1x1', 64, (1, 1))(x), b5, b3,
              conv('branch_pool', self.width, (1, 1))(pooled())]
    elif self.kind == 'B':
      b3 = conv('branch3x3', 384, (3, 3), **valid2)(x)
      d = conv('branch3x3dbl_2', 96, (3, 3))(conv('branch3x3dbl_1', 64, (1, 1))(x))
      outs = [b3, conv('branch3x3dbl_3', 96, (3, 3), **valid2)(d), _max_pool(x)]
    elif self.kind == 'C':
      c7 = self.width
      b7 = conv('branch7x7_1', c7, (1, 1))(x)
      b7 = conv('branch7x7_3', 192, (7, 1))(conv('branch7x7_2', c7, (1, 7))(b7))
      d = conv('branch7x7dbl_1', c7, (1, 1))(x)
      d = conv('branch7x7dbl_3', c7, (1, 7))(conv('branch7x7dbl_2', c7, (7, 1))(d))
      d = conv('branch7x7dbl_5', 192, (1, 7))(conv('branch7x7dbl_4', c7, (7, 1))(d))
      outs = [conv('branch1x1', 192, (1, 1))(x), b7, d,
              conv('branch_pool', 192, (1, 1))(pooled())]
    elif self.kind == 'D':
      b3 = conv('branch3x3_2', 320, (3, 3), **valid2)(conv('branch3x3_1', 192, (1, 1))(x))
      b7 = conv('branch7x7x3_2', 192, (1, 7))(conv('branch7x7x3_1', 192, (1, 1))(x))
      b7 = conv('branch7x7x3_4', 192, (3, 3), **valid2)(conv('branch7x7x3_3', 192, (7, 1))(b7))
      outs = [b3, b7, _max_pool(x)]
    elif self.kind == 'E':
      b3 = conv('branch3x3_1', 384, (1, 1))(x)
      b3 = jnp.concatenate([conv('branch3x3_2a', 384, (1, 3))(b3),
                            conv('branch3x3_2b', 384, (3, 1))(b3)], axis=-1)
      d = conv('branch3x3dbl_2', 384, (3, 3))(conv('branch3x3dbl_1', 448, (1, 1))(x))
      d = jnp.concatenate([conv('branch3x3dbl_3a', 384, (1, 3))(d),
                           conv('branch3x3dbl_3b', 384, (3, 1))(d)], axis=-1)
      outs = [conv('branch1x1', 320, (1, 1))(x), b3, d,
              conv('branch_pool', 192, (1, 1))(pooled())]
    else:
      raise ValueError(f'InceptionBlock.kind must be A..E; got {self.kind!r}')
    return jnp.concatenate(outs, axis=-1)


class InceptionV3(nn.Module):
  """InceptionV3 trunk (through Mixed_7c) with a pooling step.

  Attributes:
    pooling: 'avg' -> f32[n, 2048]; 'grid' -> f32[n, 2048 k^2]; 'map' -> the
      final map f32[n, 8, 8, 2048] at 299 px; see `pooling.pool`.
    grid_size: k for 'grid'.
    dtype: compute dtype; params stay float32 and outputs are float32.
  """
  pooling: str = 'avg'
  grid_size: int = 2
  dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Features of preprocessed frames f32[n, h, w, 3] (h, w >= 75); see `pooling`.

    Raises:
      ValueError: on a bad input shape or pooling.
    """
    if x.ndim != 4 or x.shape[-1] != 3 or min(x.shape[1:3]) < MIN_SIZE:
      raise ValueError(f'InceptionV3: expected preprocessed frames f32[n, h, w, 3] with '
                       f'h, w >= {MIN_SIZE}; got shape {tuple(x.shape)}')
    if self.pooling not in POOLINGS:
      raise ValueError(f'InceptionV3.pooling must be one of {POOLINGS}; got {self.pooling!r}')
    excludes_padding = self.variable(
        'layout', 'pool_excludes_padding',
        lambda: jnp.asarray(layout_constants('keras')['pool_excludes_padding'])).value
    conv = functools.partial(BasicConv, dtype=self.dtype)
    x = x.astype(self.dtype)
    x = conv(32, (3, 3), 2, 'VALID', name='Conv2d_1a_3x3')(x)
    x = conv(32, (3, 3), 1, 'VALID', name='Conv2d_2a_3x3')(x)
    x = _max_pool(conv(64, (3, 3), name='Conv2d_2b_3x3')(x))
    x = conv(80, (1, 1), name='Conv2d_3b_1x1')(x)
    x = _max_pool(conv(192, (3, 3), 1, 'VALID', name='Conv2d_4a_3x3')(x))
    for name, kind, width in _BLOCKS:
      x = InceptionBlock(kind, width, self.dtype, name=name)(x, excludes_padding)
    return pool(x, self.pooling, self.grid_size)


# ---------------------------------------------------------------- weights


_TORCH_LEAVES = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias',
                 'mean': 'running_mean', 'var': 'running_var'}


@functools.cache
def _abstract(cls: type[InceptionV3]) -> dict:
  """Shapes of the 'params' and 'batch_stats' of `cls`: they depend on the
  architecture only (not on pooling, dtype or the input size), so trace once."""
  x = jax.ShapeDtypeStruct((1, MIN_SIZE, MIN_SIZE, 3), jnp.float32)
  abstract = jax.eval_shape(cls().init, jax.random.key(0), x)
  return {k: v for k, v in abstract.items() if k != 'layout'}


def _torch_name(path: tuple[str, ...]) -> str:
  """('params', 'Mixed_5b', 'branch1x1', 'bn', 'scale') -> 'Mixed_5b.branch1x1.bn.weight'."""
  return '.'.join([*path[1:-1], _TORCH_LEAVES[path[-1]]])


def variables_from_torch(state: dict[str, np.ndarray], module: InceptionV3) -> dict:
  """Variables for `module` from a torchvision or timm InceptionV3 state dict.

  The classifiers (`fc.*`, `AuxLogits.*`) and `num_batches_tracked` are ignored.

  Raises:
    WeightsError: tensors missing, left over or misshapen, named.
  """
  abstract = _abstract(type(module))
  tensors, used = {}, set()
  for keypath, _ in jax.tree_util.tree_flatten_with_path(abstract)[0]:
    path = tuple(k.key for k in keypath)
    name = _torch_name(path)
    if name in state:
      value = np.asarray(state[name], np.float32)
      tensors[path] = (name, value.transpose(2, 3, 1, 0) if value.ndim == 4 else value)
      used.add(name)
  unexpected = [k for k in state if k not in used and not k.startswith(('fc.', 'AuxLogits.'))
                and not k.endswith('num_batches_tracked')]
  variables = checkpoint_io.fill_variables(abstract, tensors, unexpected, _torch_name)
  return {**variables, 'layout': layout_constants('torch')}


def variables_from_keras(layers: dict, module: InceptionV3) -> dict:
  """Variables for `module` from `keras_weights.read_layers` of a Keras InceptionV3 file.

  Raises:
    WeightsError: layers missing, left over or misshapen, named.
  """
  names = conv_names()
  order = [names[i] for i in _KERAS_ORDER]
  wanted = {'conv': [f'{n}/conv' for n in order], 'bn': [f'{n}/bn' for n in order]}
  matched, problems = keras_weights.match_in_order(layers, wanted)
  if problems:
    raise checkpoint_io.WeightsError('; '.join(problems))
  tensors = keras_weights.conv_bn_tensors(matched)
  variables = checkpoint_io.fill_variables(_abstract(type(module)), tensors, [],
                                           lambda path: '/'.join(path[1:]))
  return {**variables, 'layout': layout_constants('keras')}


def load_weights(path: str | pathlib.Path, module: InceptionV3) -> dict:
  """Variables {'params', 'batch_stats', 'layout'} for `module` from a weights file.

  A Keras file (`.h5`, `.hdf5`, `.keras`, `.weights.h5`) is read with h5py;
  anything else as a torchvision or timm state dict (`.pth`, `.safetensors`).

  Raises:
    FileNotFoundError: no such file.
    WeightsError: a file that does not fit; the message names the file first.
  """
  return keras_weights.load(path, module, variables_from_keras, variables_from_torch)
