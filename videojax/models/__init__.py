"""Models picked by name: temporal classifiers and frozen frame backbones."""

import dataclasses

import flax.linen as nn

from videojax.models import resnet
from videojax.models.temporal import GRUClassifier, MeanPoolClassifier

_MODELS: dict[str, type[nn.Module]] = {
    'gru': GRUClassifier,
    'meanpool': MeanPoolClassifier,
}
_BACKBONES: dict[str, tuple[tuple[int, ...], type[nn.Module]]] = {
    'resnet18': ((2, 2, 2, 2), resnet.BasicBlock),
    'resnet34': ((3, 4, 6, 3), resnet.BasicBlock),
    'resnet50': ((3, 4, 6, 3), resnet.Bottleneck),
}
MODEL_NAMES: tuple[str, ...] = tuple(_MODELS)
BACKBONE_NAMES: tuple[str, ...] = tuple(_BACKBONES)
# What create_backbone lets callers set; the architecture comes from the name.
_BACKBONE_KWARGS = ('pooling', 'grid_size', 'dtype')


def _lookup(kind: str, name: str, registry: dict) -> object:
  if name not in registry:
    raise ValueError(
        f'unknown {kind} {name!r}; accepted names: {", ".join(registry)}')
  return registry[name]


def _check_kwargs(where: str, kwargs: dict, allowed: tuple[str, ...]) -> None:
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
  allowed = tuple(
      f.name for f in dataclasses.fields(cls)
      if f.init and f.name not in ('parent', 'name', 'num_classes'))
  _check_kwargs(f'create_model({name!r})', kwargs, allowed)
  # Configs saved as JSON give lists; Linen modules must be hashable.
  kwargs = {k: tuple(v) if isinstance(v, list) else v
            for k, v in kwargs.items()}
  return cls(num_classes=num_classes, **kwargs)


def create_backbone(name: str, **kwargs) -> nn.Module:
  """A frozen frame backbone by name: `f32[n, h, w, 3] -> f32[n, d]`.

  Keywords: pooling ('avg' or 'grid'), grid_size, dtype; see `resnet.ResNet`.

  Raises:
    ValueError: on an unknown name, keyword or pooling.
  """
  stage_sizes, block_cls = _lookup('backbone', name, _BACKBONES)
  _check_kwargs(f'create_backbone({name!r})', kwargs, _BACKBONE_KWARGS)
  pooling = kwargs.get('pooling', 'avg')
  if pooling not in resnet.POOLINGS:
    raise ValueError(
        f'create_backbone({name!r}): pooling must be one of '
        f'{resnet.POOLINGS}; got {pooling!r}')
  return resnet.ResNet(stage_sizes=stage_sizes, block_cls=block_cls, **kwargs)


def backbone_feature_dim(name: str, pooling: str = 'avg',
                         grid_size: int = 2) -> int:
  """Width d of `create_backbone(name, pooling=..., grid_size=...)` features.

  Raises:
    ValueError: on an unknown name or pooling.
  """
  _, block_cls = _lookup('backbone', name, _BACKBONES)
  return resnet.feature_dim(block_cls, pooling, grid_size)


__all__ = [
    'BACKBONE_NAMES',
    'MODEL_NAMES',
    'backbone_feature_dim',
    'create_backbone',
    'create_model',
]
