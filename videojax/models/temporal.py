"""Video classifiers over per-frame features.

Every classifier maps `features: f32[b, t, d]` and `mask: bool[b, t]` (True on
a prefix of real frames) to logits `f32[b, k]`, and must not depend on what the
padding holds or how long it is. Dropout draws from the 'dropout' rng stream.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from videojax.models.rnn import GRU


def check_features(features: jax.Array, mask: jax.Array, where: str) -> None:
  """Raises ValueError unless features is f32[b, t, d] and mask is bool[b, t].

  Runs on static shapes, so it fails at trace time, before any compute.
  """
  if features.ndim != 3 or mask.shape != features.shape[:2]:
    raise ValueError(
        f'{where}: expected features f32[b, t, d] and mask bool[b, t] with '
        f'matching (b, t); got features {tuple(features.shape)}, '
        f'mask {tuple(mask.shape)}')


def masked_mean(x: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean of x over its valid steps.

  Args:
    x: f32[b, t, d].
    mask: bool[b, t].

  Returns:
    f32[b, d]; zeros for a sequence with no valid steps (the count is clamped
    to 1 so it never divides by zero).
  """
  check_features(x, mask, 'masked_mean')
  # where, not multiply: 0 * inf in the padding would be NaN.
  total = jnp.where(mask[..., None], x, 0).sum(axis=1)
  count = mask.sum(axis=1, keepdims=True).astype(x.dtype)
  return total / jnp.maximum(count, 1)


class GRUClassifier(nn.Module):
  """Stacked masked GRUs, then an MLP head.

  The head of the Keras CNN-RNN video classification example: GRU(16) over the
  sequence -> GRU(8) final state -> Dropout(0.4) -> Dense(8, relu) ->
  Dense(k).

  Attributes:
    num_classes: k.
    hidden: GRU widths; all but the last return sequences, the last gives the
      final state.
    dropout: dropout rate before the dense head.
    dense: width of the hidden dense layer.
  """
  num_classes: int
  hidden: Sequence[int] = (16, 8)
  dropout: float = 0.4
  dense: int = 8

  @nn.compact
  def __call__(
      self, features: jax.Array, mask: jax.Array, *, train: bool
  ) -> jax.Array:
    """f32[b, t, d], bool[b, t] -> logits f32[b, k].

    Raises:
      ValueError: if the shapes of features and mask do not match.
    """
    check_features(features, mask, type(self).__name__)
    if not self.hidden:
      raise ValueError('GRUClassifier.hidden must name at least one GRU width')
    x = features
    for i, width in enumerate(self.hidden):
      last = i == len(self.hidden) - 1
      x = GRU(width, return_sequences=not last, name=f'gru_{i}')(x, mask)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    x = nn.relu(nn.Dense(self.dense, name='dense')(x))
    return nn.Dense(self.num_classes, name='logits')(x)


class MeanPoolClassifier(nn.Module):
  """Masked mean over frames, then an MLP: the order-blind baseline.

  Attributes:
    num_classes: k.
    hidden: width of the hidden dense layer.
    dropout: dropout rate after the hidden layer.
  """
  num_classes: int
  hidden: int = 64
  dropout: float = 0.0

  @nn.compact
  def __call__(
      self, features: jax.Array, mask: jax.Array, *, train: bool
  ) -> jax.Array:
    """f32[b, t, d], bool[b, t] -> logits f32[b, k].

    Raises:
      ValueError: if the shapes of features and mask do not match.
    """
    check_features(features, mask, type(self).__name__)
    x = masked_mean(features, mask)
    x = nn.relu(nn.Dense(self.hidden, name='dense')(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, name='logits')(x)
