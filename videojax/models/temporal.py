"""Video classifiers over per-frame features.

Every classifier maps `features: f32[b, t, d]` and `mask: bool[b, t]` (True on
a prefix of real frames) to logits `f32[b, k]`, and must not depend on what the
padding holds or how long it is. Dropout draws from the 'dropout' rng stream.
"""

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from videojax.models.rnn import GRU, LSTM, Bidirectional

LSTM_POOLINGS = ('mean', 'last')


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


class LinearProbeClassifier(nn.Module):
  """Masked mean over frames, then one Dense layer: the linear-probe baseline.

  Logistic regression on the mean of the frames, trained by the same loop as
  every other model, so a temporal model is always read against it.

  Attributes:
    num_classes: k.
    dropout: dropout rate on the mean before the linear layer (0: none).
  """
  num_classes: int
  dropout: float = 0.0

  @nn.compact
  def __call__(
      self, features: jax.Array, mask: jax.Array, *, train: bool
  ) -> jax.Array:
    """f32[b, t, d], bool[b, t] -> logits f32[b, k] = mean_t(features) W + b.

    Raises:
      ValueError: if the shapes of features and mask do not match.
    """
    check_features(features, mask, type(self).__name__)
    x = masked_mean(features, mask)
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_classes, name='logits')(x)


class LSTMClassifier(nn.Module):
  """Stacked masked LSTMs, pooled over time, then dropout and a linear head.

  Each layer is `models.rnn.LSTM` (PyTorch gate order and biases summed), so
  torch's `nn.LSTM` weights load by a transpose; `BiLSTMClassifier` runs each
  layer in both directions (`models.rnn.Bidirectional`).

  Attributes:
    num_classes: k.
    hidden: LSTM widths, one per layer (per direction for the BiLSTM).
    pooling: 'mean', the masked mean of the last layer's outputs over the
      real frames; or 'last', its final state: the state after the last real
      frame (and, bidirectional, the backward state after frame 0), as
      torch's h_n.
    dropout: rate between layers and before the head.
  """
  num_classes: int
  hidden: Sequence[int] = (128,)
  pooling: str = 'mean'
  dropout: float = 0.0
  bidirectional = False  # A class constant, not a module field: the name picks it.

  @nn.compact
  def __call__(
      self, features: jax.Array, mask: jax.Array, *, train: bool
  ) -> jax.Array:
    """f32[b, t, d], bool[b, t] -> logits f32[b, k].

    Raises:
      ValueError: if the shapes of features and mask do not match, no
        hidden width is given, or on an unknown pooling.
    """
    name = type(self).__name__
    check_features(features, mask, name)
    if not self.hidden:
      raise ValueError(f'{name}.hidden must name at least one LSTM width')
    if self.pooling not in LSTM_POOLINGS:
      raise ValueError(f'{name}.pooling must be one of {LSTM_POOLINGS}; got '
                       f'{self.pooling!r}')
    drop = nn.Dropout(self.dropout, deterministic=not train)
    x = features
    for i, width in enumerate(self.hidden):
      last = i == len(self.hidden) - 1
      # Only the last layer may return its final state: the one 'last' pools.
      seq = not (last and self.pooling == 'last')
      if self.bidirectional:
        x = Bidirectional(LSTM(width, return_sequences=seq), name=f'bilstm_{i}')(x, mask)
      else:
        x = LSTM(width, return_sequences=seq, name=f'lstm_{i}')(x, mask)
      if not last:
        x = drop(x)
    if self.pooling == 'mean':
      x = masked_mean(x, mask)
    return nn.Dense(self.num_classes, name='logits')(drop(x))


class BiLSTMClassifier(LSTMClassifier):
  """`LSTMClassifier` with every layer bidirectional: f32[b, t, 2h] outputs.

  With pooling 'last' the head reads [forward state after the last real
  frame | backward state after frame 0], torch's h_n of both directions.
  """
  bidirectional = True
