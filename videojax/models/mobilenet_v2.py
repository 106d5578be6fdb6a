"""Frozen MobileNetV2 (width 1.0, 1280-d), loadable from Keras, torchvision or timm files.

The three places users get ImageNet MobileNetV2 weights from trained them
differently, and the weights only reproduce their features run as trained:

  layout       file                                  input            stride-2 pad  BN eps
  keras        keras.applications `.h5`, `.weights.h5`, `.keras`
                                                     x / 127.5 - 1    (0, 1)  (TF)  1e-3
  torchvision  `features.N...` `.pth` / `.safetensors`
                                                     ImageNet mean/std (1, 1)       1e-5
  timm         `conv_stem`, `blocks.i.j...` (mobilenetv2_100)
                                                     ImageNet mean/std (1, 1)       1e-5

(TF pads a stride-2 3x3 conv on an even side by 0 before and 1 after, PyTorch by
1 on both sides; on odd sides both pad 1 and 1.) Preprocessing therefore
follows the weights, not the backbone's name: `preprocess` only turns frames
into float, and the module scales them with constants in its `layout`
variable collection, written by the loader beside `params` and `batch_stats`:

  layout/scale  f32[3], layout/offset f32[3]   x -> x * scale + offset (x in [0, 255])
  layout/tf_padding  i32[]                     1: pad stride-2 convs as TF; 0: as PyTorch

So the variables saved with extracted features (extract.py's backbone.msgpack)
carry their own scaling. The BN epsilon is 1e-5; a Keras file's variances get
1e-3 - 1e-5 added, which gives the same normalisation. Random init takes the
Keras layout. BatchNorm is always in inference mode.
"""

import functools
import pathlib
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from videojax.models import checkpoint_io, keras_weights
from videojax.models.depthwise import DEPTHWISE, depthwise_conv, pad_stride2
from videojax.models.frames import rgb_float32
from videojax.models.pooling import POOLINGS, pool

Dtype = Any

# Inverted residual stages (expansion t, channels c, repeats n, stride s).
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
           (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
STEM_WIDTH = 32
HEAD_WIDTH = 1280
IMAGE_SIZE = 224
BN_EPS = 1e-5
_KERAS_BN_EPS = 1e-3
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LAYOUTS = ('keras', 'torchvision', 'timm')


def layout_constants(layout: str) -> dict[str, np.ndarray]:
  """The `layout` collection for weights of `layout` (see the module docstring).

  Raises:
    ValueError: an unknown layout.
  """
  if layout == 'keras':
    scale, offset, tf_padding = np.full(3, 1 / 127.5), np.full(3, -1.0), 1
  elif layout in ('torchvision', 'timm'):
    std, mean = np.array(IMAGENET_STD), np.array(IMAGENET_MEAN)
    scale, offset, tf_padding = 1 / (255 * std), -mean / std, 0
  else:
    raise ValueError(f'layout must be one of {LAYOUTS}; got {layout!r}')
  return {'scale': scale.astype(np.float32), 'offset': offset.astype(np.float32),
          'tf_padding': np.asarray(tf_padding, np.int32)}


def preprocess(frames: jax.Array) -> jax.Array:
  """RGB frames u8[n, h, w, 3] as f32 in [0, 255]; the module scales them as
  its weights expect (the `layout` constants).

  Raises:
    ValueError: if the last axis is not 3 channels.
  """
  return rgb_float32(frames)


def block_args() -> list[tuple[int, int, int]]:
  """(expansion, out channels, stride) of the 17 inverted residual blocks."""
  return [(t, c, s if j == 0 else 1) for t, c, n, s in _STAGES for j in range(n)]


class InvertedResidual(nn.Module):
  """1x1 expand (unless t = 1), 3x3 depthwise, 1x1 linear project (+ identity).

  Attributes:
    expand: expansion ratio t.
    out: output channels.
    strides: depthwise stride, 1 or 2.
    dtype: compute dtype.
    depthwise: 'conv' or 'shifted' (see `depthwise.depthwise_conv`).
  """
  expand: int
  out: int
  strides: int
  dtype: Dtype = jnp.float32
  depthwise: str = 'conv'

  @nn.compact
  def __call__(self, x: jax.Array, tf_padding: jax.Array) -> jax.Array:
    """f32[n, h, w, c] -> f32[n, h / s, w / s, out] (h / s rounded up)."""
    conv = functools.partial(nn.Conv, kernel_size=(1, 1), use_bias=False, dtype=self.dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=True, epsilon=BN_EPS,
                             dtype=self.dtype)
    c = x.shape[-1]
    y = x
    if self.expand != 1:
      y = nn.relu6(norm(name='expand_bn')(conv(c * self.expand, name='expand')(y)))
    padding = ((1, 1), (1, 1))
    if self.strides == 2:
      y, padding = pad_stride2(y, tf_padding), 'VALID'
    y = depthwise_conv(self.depthwise, y.shape[-1], 3, self.strides, padding=padding,
                       dtype=self.dtype, name='depthwise')(y)
    y = nn.relu6(norm(name='depthwise_bn')(y))
    y = norm(name='project_bn')(conv(self.out, name='project')(y))
    if self.strides == 1 and c == self.out:
      y = y + x
    return y


class MobileNetV2(nn.Module):
  """MobileNetV2 (width 1.0) trunk with a pooling step.

  Attributes:
    pooling: 'avg' -> f32[n, 1280]; 'grid' -> f32[n, 1280 k^2]; 'map' ->
      f32[n, h/32, w/32, 1280] (sides rounded up); see `pooling.pool`.
    grid_size: k for 'grid'.
    dtype: compute dtype; params stay float32 and outputs are float32.
    depthwise: 'conv' or 'shifted' (the faster on CPU); the same params.
  """
  pooling: str = 'avg'
  grid_size: int = 2
  dtype: Dtype = jnp.float32
  depthwise: str = 'conv'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Features of frames f32[n, h, w, 3] in [0, 255] (`preprocess`); see `pooling`.

    Raises:
      ValueError: on a bad input shape, pooling or depthwise.
    """
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'MobileNetV2: expected frames f32[n, h, w, 3]; got shape '
                       f'{tuple(x.shape)}')
    if self.pooling not in POOLINGS:
      raise ValueError(f'MobileNetV2.pooling must be one of {POOLINGS}; got {self.pooling!r}')
    if self.depthwise not in DEPTHWISE:
      raise ValueError(f'MobileNetV2.depthwise must be one of {DEPTHWISE}; '
                       f'got {self.depthwise!r}')
    constants = layout_constants('keras')
    scale, offset, tf_padding = (
        self.variable('layout', k, lambda k=k: jnp.asarray(constants[k])).value
        for k in ('scale', 'offset', 'tf_padding'))
    norm = functools.partial(nn.BatchNorm, use_running_average=True, epsilon=BN_EPS,
                             dtype=self.dtype)
    x = (x.astype(jnp.float32) * scale + offset).astype(self.dtype)
    x = nn.Conv(STEM_WIDTH, (3, 3), (2, 2), padding='VALID', use_bias=False,
                dtype=self.dtype, name='stem')(pad_stride2(x, tf_padding))
    x = nn.relu6(norm(name='stem_bn')(x))
    for i, (t, c, s) in enumerate(block_args()):
      x = InvertedResidual(t, c, s, self.dtype, self.depthwise, name=f'blocks_{i}')(x, tf_padding)
    x = nn.Conv(HEAD_WIDTH, (1, 1), use_bias=False, dtype=self.dtype, name='head')(x)
    x = nn.relu6(norm(name='head_bn')(x))
    return pool(x, self.pooling, self.grid_size)


# ---------------------------------------------------------------- weights


def _convs() -> list[tuple[tuple[str, ...], str]]:
  """(path, 'conv' or 'depthwise') of every conv, input to output; each conv's
  BatchNorm is at the path with '_bn' appended to its last name."""
  convs = [(('stem',), 'conv')]
  for i, (t, _, _) in enumerate(block_args()):
    b = f'blocks_{i}'
    if t != 1:
      convs.append(((b, 'expand'), 'conv'))
    convs += [((b, 'depthwise'), 'depthwise'), ((b, 'project'), 'conv')]
  return convs + [(('head',), 'conv')]


def _torch_prefixes(layout: str) -> dict[tuple[str, ...], str]:
  """Conv and BN module path -> the module's name in a torchvision / timm state dict."""
  stage_of = [(si, j) for si, (_, _, n, _) in enumerate(_STAGES) for j in range(n)]
  names = {}
  if layout == 'torchvision':
    names[('stem',)], names[('stem_bn',)] = 'features.0.0', 'features.0.1'
    names[('head',)], names[('head_bn',)] = 'features.18.0', 'features.18.1'
  else:
    names[('stem',)], names[('stem_bn',)] = 'conv_stem', 'bn1'
    names[('head',)], names[('head_bn',)] = 'conv_head', 'bn2'
  for i, (t, _, _) in enumerate(block_args()):
    b = f'blocks_{i}'
    if layout == 'torchvision':
      p = f'features.{i + 1}.conv'
      parts = ((['depthwise', 'project'], [f'{p}.0.0', f'{p}.1'], [f'{p}.0.1', f'{p}.2'])
               if t == 1 else
               (['expand', 'depthwise', 'project'], [f'{p}.0.0', f'{p}.1.0', f'{p}.2'],
                [f'{p}.0.1', f'{p}.1.1', f'{p}.3']))
    else:
      p = 'blocks.{}.{}'.format(*stage_of[i])
      parts = ((['depthwise', 'project'], [f'{p}.conv_dw', f'{p}.conv_pw'],
                [f'{p}.bn1', f'{p}.bn2'])
               if t == 1 else
               (['expand', 'depthwise', 'project'],
                [f'{p}.conv_pw', f'{p}.conv_dw', f'{p}.conv_pwl'],
                [f'{p}.bn1', f'{p}.bn2', f'{p}.bn3']))
    for layer, conv, bn in zip(*parts):
      names[(b, layer)], names[(b, layer + '_bn')] = conv, bn
  return names


_TORCH_LEAVES = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias',
                 'mean': 'running_mean', 'var': 'running_var'}


@functools.cache
def _abstract(cls: type[MobileNetV2]) -> dict:
  """Shapes of the 'params' and 'batch_stats' of `cls`: they depend on the
  architecture only (not on pooling, dtype or the input size), so trace once."""
  x = jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32)
  abstract = jax.eval_shape(cls().init, jax.random.key(0), x)
  return {k: v for k, v in abstract.items() if k != 'layout'}


def variables_from_torch(state: dict[str, np.ndarray], module: MobileNetV2) -> dict:
  """Variables for `module` from a torchvision or timm MobileNetV2 state dict.

  The layout is told by the names (`features.0.0.weight`: torchvision,
  `conv_stem.weight`: timm); the classifier and `num_batches_tracked` are
  ignored.

  Raises:
    WeightsError: neither layout, or tensors missing, left over or misshapen,
      named.
  """
  if 'features.0.0.weight' in state:
    layout = 'torchvision'
  elif 'conv_stem.weight' in state:
    layout = 'timm'
  else:
    raise checkpoint_io.WeightsError(
        'not a MobileNetV2 state dict: neither features.0.0.weight (torchvision) nor '
        f'conv_stem.weight (timm) is in it; it starts {", ".join(list(state)[:3])}')
  prefixes = _torch_prefixes(layout)

  def torch_name(path):
    return f'{prefixes[tuple(path[1:-1])]}.{_TORCH_LEAVES[path[-1]]}'

  abstract = _abstract(type(module))
  tensors, used = {}, set()
  for keypath, _ in jax.tree_util.tree_flatten_with_path(abstract)[0]:
    path = tuple(k.key for k in keypath)
    name = torch_name(path)
    if name in state:
      value = np.asarray(state[name], np.float32)
      if value.ndim == 4:  # OIHW -> HWIO; depthwise O1HW -> HW1O.
        value = value.transpose(2, 3, 1, 0)
      tensors[path] = (name, value)
      used.add(name)
  unexpected = [k for k in state if k not in used and not k.startswith('classifier.')
                and not k.endswith('num_batches_tracked')]
  variables = checkpoint_io.fill_variables(abstract, tensors, unexpected, torch_name)
  return {**variables, 'layout': layout_constants(layout)}


def variables_from_keras(layers: dict, module: MobileNetV2) -> dict:
  """Variables for `module` from `keras_weights.read_layers` of a Keras MobileNetV2
  (alpha 1.0) file; see `keras_weights` for how layers are matched.

  Raises:
    WeightsError: layers missing, left over or misshapen, named.
  """
  convs = _convs()
  wanted = {'conv': ['/'.join(p) for p, kind in convs if kind == 'conv'],
            'depthwise': ['/'.join(p) for p, kind in convs if kind == 'depthwise'],
            'bn': ['/'.join(p) + '_bn' for p, _ in convs]}
  matched, problems = keras_weights.match_in_order(layers, wanted)
  if problems:
    raise checkpoint_io.WeightsError('; '.join(problems))
  tensors = keras_weights.conv_bn_tensors(matched, var_offset=_KERAS_BN_EPS - BN_EPS)
  variables = checkpoint_io.fill_variables(_abstract(type(module)), tensors, [],
                                           lambda path: '/'.join(path[1:]))
  return {**variables, 'layout': layout_constants('keras')}


def load_weights(path: str | pathlib.Path, module: MobileNetV2) -> dict:
  """Variables {'params', 'batch_stats', 'layout'} for `module` from a weights file.

  A Keras file (`.h5`, `.hdf5`, `.keras`, `.weights.h5`) is read with h5py;
  anything else as a torchvision or timm state dict (`.pth`, `.safetensors`).

  Raises:
    FileNotFoundError: no such file.
    WeightsError: a file that does not fit; the message names the file first.
  """
  return keras_weights.load(path, module, variables_from_keras, variables_from_torch)
