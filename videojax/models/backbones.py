"""Frozen frame backbones, each described once by a `BackboneSpec`.

A backbone maps RGB frames u8[n, s, s, 3] to per-frame features: `preprocess`
scales them as its weights were trained, then the module gives f32[n, d]. What
differs between backbones (architecture, scaling, width, where weights come
from) lives in its spec; the functions below read specs and never names.
"""

import dataclasses
import functools
import math
import pathlib
import urllib.parse
from collections.abc import Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from videojax.models import checkpoint_io, efficientnet, inception_v3, mobilenet_v2, resnet
from videojax.models import pooling as _pooling


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
  """One backbone.

  Attributes:
    module: builds the Linen module, its architecture bound; takes the keywords
      pooling, grid_size, dtype (and what else the class has).
    preprocess: RGB frames u8[n, h, w, 3] -> f32, scaled as the weights expect.
      Where the weight files of one backbone were trained on different scalings
      (MobileNetV2: Keras [-1, 1], torchvision/timm ImageNet mean/std), it only
      converts to float and the module scales with the constants its loader
      writes into the `layout` variable collection; see mobilenet_v2.py.
    width: channels c of the final feature map; features are f32[c] per frame
      with pooling='avg', f32[g * g * c] with pooling='grid'.
    image_size: the input side the weights were trained at (a default only:
      any side works).
    load_weights: (file, module) -> variables {'params', 'batch_stats'}, and
      'layout' where the weight sources of one backbone differ in input scaling
      or padding (MobileNetV2, InceptionV3, EfficientNet-B0/V2: the loader
      writes what its file's weights were trained with), from a `.pth` /
      `.safetensors` file or a Keras `.h5` / `.weights.h5` / `.keras` one.
    packaged_weights: () -> the file of the ImageNet weights that install with
      videojax; None where none ship.
    cpu_options: module keywords that run it faster on a CPU backend, the same
      function up to float rounding; `create_backbone(..., cpu_kernels=True)`
      applies them (the caller decides: `platform.cpu_kernels()`).
    weight_files: the files `load_weights` reads, for messages.
    layouts: values of `load_weights`' `layout` keyword (config
      extract.weights_layout), for files whose keys do not say how their
      weights were trained (timm's tf_ and own EfficientNets); () where none.
  """
  module: Callable[..., nn.Module]
  preprocess: Callable[[jax.Array], jax.Array]
  width: int
  image_size: int
  load_weights: Callable[[pathlib.Path, nn.Module], dict]
  packaged_weights: Callable[[], pathlib.Path] | None = None
  cpu_options: tuple[tuple[str, object], ...] = ()
  weight_files: str = 'a torchvision or timm checkpoint (.pth or .safetensors)'
  layouts: tuple[str, ...] = ()


_TORCH_OR_KERAS = ('a Keras file (.h5, .weights.h5, .keras) or a torchvision or timm '
                   'checkpoint (.pth or .safetensors)')


def _resnet(sizes: tuple[int, ...], block: type[nn.Module]) -> BackboneSpec:
  return BackboneSpec(
      module=functools.partial(resnet.ResNet, stage_sizes=sizes, block_cls=block),
      preprocess=resnet.preprocess, width=512 * block.expansion, image_size=224,
      load_weights=lambda path, module: resnet.load_torch_weights(
          path, module.stage_sizes, module.block_cls))


def _efficientnet(name: str) -> BackboneSpec:
  width, depth, size = efficientnet.VARIANTS[name]
  return BackboneSpec(
      module=functools.partial(efficientnet.EfficientNetLite, width=width, depth=depth),
      preprocess=efficientnet.preprocess, width=efficientnet.HEAD_WIDTH, image_size=size,
      load_weights=efficientnet.load_weights,
      packaged_weights=functools.partial(efficientnet.packaged_weights, name),
      # Depthwise convolutions as shifted sums: 5.0x Lite0 frames/s on 2 CPU cores.
      cpu_options=(('depthwise', 'shifted'),))


def _efficientnet_tf(arch: str, image_size: int) -> BackboneSpec:
  return BackboneSpec(
      module=functools.partial(efficientnet.EfficientNet, arch=arch),
      preprocess=efficientnet.preprocess_rgb, width=efficientnet.ARCHS[arch].head,
      image_size=image_size, load_weights=efficientnet.load_efficientnet_weights,
      cpu_options=(('depthwise', 'shifted'),),
      weight_files=('a Keras file (.h5, .weights.h5, .keras) or a lukemelas, timm or '
                    'torchvision checkpoint (.pth or .safetensors)'),
      layouts=tuple(k for k in efficientnet.LAYOUTS if k in efficientnet.ARCHS[arch].layouts))


BACKBONES: dict[str, BackboneSpec] = {
    'resnet18': _resnet((2, 2, 2, 2), resnet.BasicBlock),
    'resnet34': _resnet((3, 4, 6, 3), resnet.BasicBlock),
    'resnet50': _resnet((3, 4, 6, 3), resnet.Bottleneck),
    'resnet101': _resnet((3, 4, 23, 3), resnet.Bottleneck),
    'resnet152': _resnet((3, 8, 36, 3), resnet.Bottleneck),
    **{name: _efficientnet(name) for name in efficientnet.VARIANTS},
    # Keras, torchvision and timm files; the scaling follows the file (see BackboneSpec).
    'mobilenet_v2': BackboneSpec(
        module=functools.partial(mobilenet_v2.MobileNetV2), preprocess=mobilenet_v2.preprocess,
        width=mobilenet_v2.HEAD_WIDTH, image_size=mobilenet_v2.IMAGE_SIZE,
        load_weights=mobilenet_v2.load_weights, weight_files=_TORCH_OR_KERAS,
        # Depthwise convs as shifted sums: 4.8x frames/s (224 px, batch 16, 2 busy CPU cores).
        cpu_options=(('depthwise', 'shifted'),)),
    'inception_v3': BackboneSpec(
        module=functools.partial(inception_v3.InceptionV3), preprocess=inception_v3.preprocess,
        width=inception_v3.WIDTH, image_size=inception_v3.IMAGE_SIZE,
        load_weights=inception_v3.load_weights, weight_files=_TORCH_OR_KERAS),
    'efficientnet_b0': _efficientnet_tf('b0', 224),
    # 384: keras.applications.EfficientNetV2S's default input (timm evaluates at 384 too).
    'efficientnetv2_s': _efficientnet_tf('v2_s', 384),
}


def get(name: str) -> BackboneSpec:
  """The spec of backbone `name`; ValueError listing the names if unknown."""
  if name not in BACKBONES:
    raise ValueError(
        f'unknown backbone {name!r}; accepted names: {", ".join(BACKBONES)}')
  return BACKBONES[name]


def frame_shape(name: str, pooling: str = 'avg', grid_size: int = 2) -> tuple[int, ...]:
  """The layout of one frame's features: (c,) for 'avg', (g, g, c) for 'grid'.

  Raises:
    ValueError: an unknown name, or a pooling other than avg and grid.
  """
  width = get(name).width
  if pooling == 'avg':
    return (width,)
  if pooling == 'grid':
    return (grid_size, grid_size, width)
  raise ValueError(f'pooling must be avg or grid; got {pooling!r}')


def feature_frame_shape(spec: Mapping, feature_dim: int) -> tuple[int, ...]:
  """The layout of one frame of stored features f32[b, t, d], from their extraction spec.

  (s, s, 3) for raw frames (spec frames='pixels'), (g, g, d / g^2) for grid
  pooling, else (d,): imported features and avg pooling have no layout.

  Raises:
    ValueError: features of the removed 'pixels' backbone (re-extract them),
      or a d that does not fit the layout.
  """
  if spec.get('backbone') == 'pixels':
    raise ValueError(
        "these features were extracted with the removed 'pixels' backbone; re-extract them "
        'with --config.extract.frames=pixels (see configs/convlstm.py)')
  if spec.get('frames') == 'pixels':
    shape = (spec['image_size'], spec['image_size'], 3)
  elif spec.get('pooling') == 'grid':
    g = spec['grid_size']
    shape = (g, g, feature_dim // (g * g))
  else:
    shape = (feature_dim,)
  if math.prod(shape) != feature_dim:
    raise ValueError(f'features of width d={feature_dim} are not frames of shape {shape}, '
                     'as their extraction spec says')
  return shape


def _check_kwargs(where: str, kwargs: dict, cls: type[nn.Module],
                  fixed: tuple[str, ...]) -> None:
  """Refuses keywords that are not init fields of `cls`, or are `fixed` by the name."""
  allowed = tuple(f.name for f in dataclasses.fields(cls)
                  if f.init and f.name not in ('parent', 'name', *fixed))
  bad = sorted(set(kwargs) - set(allowed))
  if bad:
    raise ValueError(
        f'{where}: unknown argument(s) {", ".join(bad)}; accepted: '
        f'{", ".join(allowed)}')


def create_backbone(name: str, *, cpu_kernels: bool = False, **kwargs) -> nn.Module:
  """A frozen frame backbone by name: `f32[n, h, w, 3] -> f32[n, d]`.

  Keywords: pooling ('avg', 'grid' or 'map'), grid_size, dtype; and for
  EfficientNet-Lite, classifier (ImageNet logits instead of features).
  cpu_kernels: apply the spec's `cpu_options` (same params, same function).

  Raises:
    ValueError: on an unknown name, keyword or pooling.
  """
  spec = get(name)
  factory = spec.module
  if cpu_kernels:
    kwargs = {**dict(spec.cpu_options), **kwargs}
  # The architecture (depths, widths) comes from the name.
  _check_kwargs(f'create_backbone({name!r})', kwargs, factory.func, tuple(factory.keywords))
  if kwargs.get('pooling', 'avg') not in _pooling.POOLINGS:
    raise ValueError(
        f'create_backbone({name!r}): pooling must be one of '
        f'{_pooling.POOLINGS}; got {kwargs["pooling"]!r}')
  return factory(**kwargs)


def preprocess_frames(name: str, frames: jax.Array) -> jax.Array:
  """RGB frames u8[n, h, w, 3] scaled as backbone `name` was trained on."""
  return get(name).preprocess(frames)


def backbone_feature_dim(name: str, pooling: str = 'avg', grid_size: int = 2) -> int:
  """Width d of `create_backbone(name, pooling=..., grid_size=...)` features.

  Raises:
    ValueError: on an unknown name, or a pooling other than avg and grid.
  """
  return math.prod(frame_shape(name, pooling, grid_size))


def backbone_weights_path(name: str, weights: str) -> pathlib.Path | None:
  """The file behind `weights` for backbone `name`; None for 'random-init'.

  Args:
    name: a backbone name.
    weights: 'imagenet' (the weights that ship with the EfficientNet-Lite
      packages), 'random-init', or the path or URL of a `.pth` /
      `.safetensors` file (torchvision or timm layout for ResNets, MobileNetV2
      and InceptionV3, efficientnet-lite-pytorch layout for EfficientNet-Lite,
      lukemelas or timm tf_ layout for efficientnet_b0 / efficientnetv2_s) or
      of a Keras `.h5` / `.weights.h5` / `.keras` file (MobileNetV2,
      InceptionV3, EfficientNet-B0/V2-S: keras.applications downloads them to
      ~/.keras/models/); a URL is downloaded once into
      `checkpoint_io.cache_dir()`.

  Raises:
    ValueError: 'imagenet' for a backbone whose weights do not ship with us.
    FileNotFoundError: a path that does not exist.
  """
  spec = get(name)
  if weights == 'random-init':
    return None
  if weights == 'imagenet':
    if spec.packaged_weights is not None:
      return spec.packaged_weights()
    shipped = ', '.join(n for n, s in BACKBONES.items() if s.packaged_weights is not None)
    raise ValueError(
        f'no ImageNet weights ship for {name}: set config.extract.weights to '
        f'{spec.weight_files} you downloaded '
        f'(the README says where), or use {shipped}, or random-init')
  if urllib.parse.urlparse(weights).scheme in ('http', 'https', 'file'):
    return checkpoint_io.fetch(weights)
  path = pathlib.Path(weights).expanduser()
  if not path.is_file():
    raise FileNotFoundError(
        f'config.extract.weights={weights!r}: no such file (accepted: imagenet, '
        f'random-init or the path of {spec.weight_files})')
  return path


def check_weights_layout(name: str, layout: str) -> None:
  """Refuses a `layout` (config extract.weights_layout) that backbone `name` does not take.

  Raises:
    ValueError: naming the accepted values.
  """
  layouts = get(name).layouts
  if layout and layout not in layouts:
    raise ValueError(
        f'config.extract.weights_layout={layout!r}: '
        + (f'{name} takes one of {", ".join(layouts)} (or leave it unset)' if layouts else
           f'{name} reads its layout from the file; leave it unset'))


def load_backbone_variables(name: str, module: nn.Module, weights: str, *,
                            seed: int = 0, image_size: int | None = None,
                            layout: str = '') -> dict:
  """Variables {'params', 'batch_stats'} (+ 'layout', see BackboneSpec) for backbone `name`.

  `weights` is as in `backbone_weights_path`; 'random-init' draws them from
  `seed`, initialising on frames of side `image_size` (default: the spec's).
  `layout` (extract.weights_layout): one of the spec's `layouts`, for a file
  whose keys do not tell; '' for the others.

  Raises:
    ValueError, FileNotFoundError: see `backbone_weights_path`; a layout the
      backbone does not take.
    checkpoint_io.WeightsError: a file that does not fit the architecture.
  """
  spec = get(name)
  check_weights_layout(name, layout)
  path = backbone_weights_path(name, weights)
  if layout:
    if path is None:
      raise ValueError(f'config.extract.weights_layout={layout!r} names how a weights file '
                       'was trained; unset it for random-init')
    return spec.load_weights(path, module, layout=layout)
  if path is None:
    size = image_size or spec.image_size
    dummy = jnp.zeros((1, size, size, 3), jnp.float32)
    # Jitted: eager init of a ResNet-18 took 14 s on 2 CPU cores.
    return jax.device_get(jax.jit(module.init)(jax.random.key(seed), dummy))
  return spec.load_weights(path, module)
