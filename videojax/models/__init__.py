"""Models picked by name: temporal classifiers and frozen frame backbones.

Backbones are described by their specs in `videojax.models.backbones`.
"""

import dataclasses
import math
from collections.abc import Callable

import flax.linen as nn

from videojax.models.backbones import (
    BACKBONES, backbone_feature_dim, backbone_weights_path, create_backbone,
    feature_frame_shape, load_backbone_variables, preprocess_frames)
from videojax.models.convlstm import (
    ConvLSTMClassifier, ConvLSTMFeatureClassifier)
from videojax.models.temporal import (
    BiLSTMClassifier, GRUClassifier, LinearProbeClassifier, LSTMClassifier,
    MeanPoolClassifier)
from videojax.models.temporal_attention import (
    BiLSTMAttentionClassifier, TransformerClassifier)

_MODELS: dict[str, type[nn.Module]] = {
    'gru': GRUClassifier,
    'meanpool': MeanPoolClassifier,
    'linear_probe': LinearProbeClassifier,
    'lstm': LSTMClassifier,
    'bilstm': BiLSTMClassifier,
    'bilstm_attention': BiLSTMAttentionClassifier,
    'transformer': TransformerClassifier,
    'convlstm': ConvLSTMClassifier,
    'convlstm_features': ConvLSTMFeatureClassifier,
}
MODEL_NAMES: tuple[str, ...] = tuple(_MODELS)
BACKBONE_NAMES: tuple[str, ...] = tuple(BACKBONES)


def _model_class(name: str) -> type[nn.Module]:
  if name not in _MODELS:
    raise ValueError(
        f'unknown model {name!r}; accepted names: {", ".join(_MODELS)}')
  return _MODELS[name]


def create_model(name: str, num_classes: int, **kwargs) -> nn.Module:
  """A temporal classifier by name, e.g. `create_model('gru', 10, dropout=0.2)`.

  The module maps `features: f32[b, t, *frame]`, `mask: bool[b, t]` to logits
  `f32[b, k]` with `k = num_classes`; `frame` is (d,), or (h, w, c) for a
  model that reads maps (see `model_frame_shape`).

  List values (as JSON configs give them) become tuples.

  Raises:
    ValueError: on an unknown name, or a keyword the model does not have.
  """
  cls = _model_class(name)
  allowed = tuple(f.name for f in dataclasses.fields(cls)
                  if f.init and f.name not in ('parent', 'name', 'num_classes'))
  bad = sorted(set(kwargs) - set(allowed))
  if bad:
    raise ValueError(
        f'create_model({name!r}): unknown argument(s) {", ".join(bad)}; accepted: '
        f'{", ".join(allowed)}')
  # Configs saved as JSON give lists; Linen modules must be hashable.
  kwargs = {k: tuple(v) if isinstance(v, list) else v
            for k, v in kwargs.items()}
  return cls(num_classes=num_classes, **kwargs)


def model_frame_shape(name: str, frame_shape: tuple[int, ...]) -> tuple[int, ...]:
  """The shape of one frame that model `name` reads, for features laid out as `frame_shape`.

  A model class that sets `reads_maps = True` reads a map f32[h, w, c] per
  frame: it gets `frame_shape` itself. Every other model reads the flat
  vector f32[d], d = prod(frame_shape).

  Raises:
    ValueError: a model that reads maps, given features with no spatial layout.
  """
  shape = tuple(int(n) for n in frame_shape)
  if not getattr(_model_class(name), 'reads_maps', False):
    return (math.prod(shape),)
  if len(shape) != 3:
    raise ValueError(
        f'{name} reads a spatial map per frame, but these features are f32{list(shape)} per '
        'frame; extract with config.extract.pooling=grid or config.extract.frames=pixels')
  return shape


def apply_to_flat(model: nn.Module, frame_shape: tuple[int, ...]) -> Callable:
  """`model.apply` taking features f32[b, t, d] that flatten f32[b, t, *frame_shape].

  `frame_shape` is what `model_frame_shape` gives for the model; for (d,) this
  is `model.apply` itself.
  """
  if len(frame_shape) == 1:
    return model.apply

  def apply(variables, features, mask, *args, **kwargs):
    maps = features.reshape(*features.shape[:2], *frame_shape)
    return model.apply(variables, maps, mask, *args, **kwargs)

  return apply


__all__ = [
    'BACKBONE_NAMES',
    'apply_to_flat',
    'MODEL_NAMES',
    'backbone_feature_dim',
    'backbone_weights_path',
    'create_backbone',
    'create_model',
    'feature_frame_shape',
    'load_backbone_variables',
    'model_frame_shape',
    'preprocess_frames',
]
