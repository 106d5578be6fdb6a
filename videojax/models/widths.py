"""Model widths scaled to the features: a width of 0 in a config means "from d".

A temporal head over d-dimensional frame features should grow with d (a 512-d
ResNet-18 feature needs less than a 4096-d one), but not without bound on a
small data set. `resolve(name, kwargs, feature_dim)` replaces each 0 in the
widths a model scales (SCALED) with `width_from_dim(d)`, so a run's recorded
model_kwargs are always concrete numbers.
"""
from __future__ import annotations

import math
from typing import Any

# Model name -> the keyword arguments whose 0 (or 0 entries, for a tuple) mean "from d".
# mlp_dim is twice the width, as in the transformer's default (64, 128).
SCALED: dict[str, tuple[str, ...]] = {
    "gru": ("hidden",),
    "bilstm_attention": ("width",),
    "transformer": ("width", "mlp_dim"),
}
MIN_WIDTH, MAX_WIDTH = 32, 256


def width_from_dim(feature_dim: int) -> int:
  """d / 8 rounded to a power of two, within [32, 256]: 512 -> 64, 1280 -> 128, 2048+ -> 256.

  A power of two >= 32 is even and divisible by 4 or 8 attention heads.
  """
  width = 2 ** round(math.log2(max(feature_dim, 1) / 8))
  return int(min(MAX_WIDTH, max(MIN_WIDTH, width)))


def resolve(name: str, kwargs: dict[str, Any], feature_dim: int) -> dict[str, Any]:
  """`kwargs` of model `name` with each scaled 0 replaced (mlp_dim: 2 x width).

  Args:
    name: a model name; models not in SCALED come back unchanged.
    kwargs: the model's keyword arguments (JSON values: lists for tuples).
    feature_dim: d, the length of one frame's feature vector.
  """
  out = dict(kwargs)
  width = width_from_dim(feature_dim)
  for key in SCALED.get(name, ()):
    value = out.get(key)
    scale = 2 if key == "mlp_dim" else 1
    if isinstance(value, (list, tuple)):
      out[key] = type(value)(scale * width if v == 0 else v for v in value)
    elif value == 0:
      out[key] = scale * width
  return out
