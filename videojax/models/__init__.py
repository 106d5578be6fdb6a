"""Models picked by name: temporal classifiers and frozen frame backbones."""

import dataclasses
import functools
import pathlib
import urllib.parse
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from videojax.models import checkpoint_io, efficientnet, pixels, resnet
from videojax.models import pooling as _pooling
from videojax.models.convlstm import (
    ConvLSTMClassifier, ConvLSTMFeatureClassifier)
from videojax.models.temporal import GRUClassifier, MeanPoolClassifier
from videojax.models.temporal_attention import (
    BiLSTMAttentionClassifier, TransformerClassifier)

_MODELS: dict[str, type[nn.Module]] = {
    'gru': GRUClassifier,
    'meanpool': MeanPoolClassifier,
    'bilstm_attention': BiLSTMAttentionClassifier,
    'transformer': TransformerClassifier,
    'convlstm': ConvLSTMClassifier,
    'convlstm_features': ConvLSTMFeatureClassifier,
}
# name -> (module class with its architecture bound, frame preprocessing
# u8[n, h, w, 3] -> f32). 'pixels' is no network: its features are the
# frames themselves, for the end-to-end convlstm.
_BACKBONES: dict[str, tuple[functools.partial, Callable]] = {
    **{name: (functools.partial(resnet.ResNet, stage_sizes=sizes, block_cls=block),
              resnet.preprocess)
       for name, sizes, block in [
           ('resnet18', (2, 2, 2, 2), resnet.BasicBlock),
           ('resnet34', (3, 4, 6, 3), resnet.BasicBlock),
           ('resnet50', (3, 4, 6, 3), resnet.Bottleneck),
           ('resnet101', (3, 4, 23, 3), resnet.Bottleneck),
           ('resnet152', (3, 8, 36, 3), resnet.Bottleneck)]},
    **{name: (functools.partial(efficientnet.EfficientNetLite, width=w, depth=d),
              efficientnet.preprocess)
       for name, (w, d, _) in efficientnet.VARIANTS.items()},
    'pixels': (functools.partial(pixels.Pixels), pixels.preprocess),
}
MODEL_NAMES: tuple[str, ...] = tuple(_MODELS)
BACKBONE_NAMES: tuple[str, ...] = tuple(_BACKBONES)


def _lookup(kind: str, name: str, registry: dict) -> object:
  if name not in registry:
    raise ValueError(
        f'unknown {kind} {name!r}; accepted names: {", ".join(registry)}')
  return registry[name]


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


def create_model(name: str, num_classes: int, **kwargs) -> nn.Module:
  """A temporal classifier by name, e.g. `create_model('gru', 10, dropout=0.2)`.

  The module maps `features: f32[b, t, d]`, `mask: bool[b, t]` to logits
  `f32[b, k]` with `k = num_classes`.

  List values (as JSON configs give them) become tuples.

  Raises:
    ValueError: on an unknown name, or a keyword the model does not have.
  """
  cls = _lookup('model', name, _MODELS)
  _check_kwargs(f'create_model({name!r})', kwargs, cls, ('num_classes',))
  # Configs saved as JSON give lists; Linen modules must be hashable.
  kwargs = {k: tuple(v) if isinstance(v, list) else v
            for k, v in kwargs.items()}
  return cls(num_classes=num_classes, **kwargs)


def create_backbone(name: str, **kwargs) -> nn.Module:
  """A frozen frame backbone by name: `f32[n, h, w, 3] -> f32[n, d]`.

  Keywords: pooling ('avg', 'grid' or 'map'), grid_size, dtype; and for
  EfficientNet-Lite, classifier (ImageNet logits instead of features).
  'pixels' takes pooling and grid_size only, and only pooling='avg'.

  Raises:
    ValueError: on an unknown name, keyword or pooling.
  """
  factory, _ = _lookup('backbone', name, _BACKBONES)
  # The architecture (depths, widths) comes from the name.
  _check_kwargs(f'create_backbone({name!r})', kwargs, factory.func, tuple(factory.keywords))
  if kwargs.get('pooling', 'avg') not in _pooling.POOLINGS:
    raise ValueError(
        f'create_backbone({name!r}): pooling must be one of '
        f'{_pooling.POOLINGS}; got {kwargs["pooling"]!r}')
  return factory(**kwargs)


def preprocess_frames(name: str, frames: jax.Array) -> jax.Array:
  """RGB frames u8[n, h, w, 3] scaled as backbone `name` was trained on."""
  return _lookup('backbone', name, _BACKBONES)[1](frames)


def backbone_feature_dim(name: str, pooling: str = 'avg', grid_size: int = 2,
                         image_size: int | None = None) -> int:
  """Width d of `create_backbone(name, pooling=..., grid_size=...)` features.

  `image_size` (the frames' side s) is needed for 'pixels' only, whose
  features are whole frames, d = s*s*3; CNN features do not depend on it.

  Raises:
    ValueError: on an unknown name, a pooling other than avg and grid (avg
      only for pixels), or pixels without image_size.
  """
  module = create_backbone(name, pooling=pooling)
  if isinstance(module, pixels.Pixels):
    if image_size is None:
      raise ValueError(
          "backbone_feature_dim('pixels'): its features are whole frames, "
          'd = image_size^2 * 3; pass image_size')
    return pixels.feature_dim(image_size)
  return _pooling.feature_dim(module.feature_width, pooling, grid_size)


def backbone_weights_path(name: str, weights: str) -> pathlib.Path | None:
  """The file behind `weights` for backbone `name`; None for 'random-init'.

  Args:
    name: a backbone name.
    weights: 'imagenet' (the weights that ship with the EfficientNet-Lite
      packages), 'random-init', or the path or URL of a `.pth` /
      `.safetensors` file (torchvision or timm layout for ResNets,
      efficientnet-lite-pytorch layout for EfficientNet-Lite); a URL is
      downloaded once into `checkpoint_io.cache_dir()`. 'pixels' has no
      weights and takes 'random-init' only.

  Raises:
    ValueError: 'imagenet' for a backbone whose weights do not ship with us;
      anything but 'random-init' for 'pixels'.
    FileNotFoundError: a path that does not exist.
  """
  _lookup('backbone', name, _BACKBONES)
  if weights == 'random-init':
    return None
  if name == 'pixels':
    raise ValueError(
        f'config.extract.weights={weights!r}: the pixels backbone has no '
        'weights; set config.extract.weights=random-init')
  if weights == 'imagenet':
    if name in efficientnet.VARIANTS:
      return efficientnet.packaged_weights(name)
    raise ValueError(
        f'no ImageNet weights ship for {name}: set config.extract.weights to a '
        'torchvision or timm checkpoint (.pth or .safetensors) you downloaded, '
        'or use efficientnet_lite0/1/2, or random-init')
  if urllib.parse.urlparse(weights).scheme in ('http', 'https', 'file'):
    return checkpoint_io.fetch(weights)
  path = pathlib.Path(weights).expanduser()
  if not path.is_file():
    raise FileNotFoundError(
        f'config.extract.weights={weights!r}: no such file (accepted: imagenet, '
        'random-init or a .pth / .safetensors path)')
  return path


def load_backbone_variables(name: str, module: nn.Module, weights: str, *,
                            seed: int = 0, image_size: int = 64) -> dict:
  """Variables {'params', 'batch_stats'} for backbone `module` called `name`.

  `weights` is as in `backbone_weights_path`; 'random-init' draws them from
  `seed`.

  Raises:
    ValueError, FileNotFoundError: see `backbone_weights_path`.
    checkpoint_io.WeightsError: a file that does not fit the architecture.
  """
  path = backbone_weights_path(name, weights)
  if path is None:
    dummy = jnp.zeros((1, image_size, image_size, 3), jnp.float32)
    # Jitted: eager init of a ResNet-18 took 14 s on 2 CPU cores.
    return jax.device_get(jax.jit(module.init)(jax.random.key(seed), dummy))
  if name in efficientnet.VARIANTS:
    return efficientnet.load_weights(path, module)
  return resnet.load_torch_weights(path, module.stage_sizes, module.block_cls)


__all__ = [
    'BACKBONE_NAMES',
    'MODEL_NAMES',
    'backbone_feature_dim',
    'create_backbone',
    'backbone_weights_path',
    'create_model',
    'load_backbone_variables',
    'preprocess_frames',
]
