"""Masked pooling over time and self-attention with a key padding mask.

Sequences are right-padded: `mask: bool[b, t]` is True on real steps. Padded
steps get exactly zero weight (their scores are replaced by a large negative
before the softmax, so exp underflows to 0), and a sequence with no real steps
pools to zeros instead of NaN from 0 / 0.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Initializer = Any


def check_sequences(x: jax.Array, mask: jax.Array, where: str) -> None:
  """Raises ValueError, prefixed with `where`, unless x is [b, t, d] and mask [b, t]."""
  if x.ndim != 3 or mask.shape != x.shape[:2]:
    raise ValueError(
        f'{where}: expected x f32[b, t, d] and mask bool[b, t] with matching '
        f'(b, t); got x {tuple(x.shape)}, mask {tuple(mask.shape)}')


def masked_softmax(scores: jax.Array, mask: jax.Array) -> jax.Array:
  """Softmax over time of the real steps only.

  Args:
    scores: f32[b, t] unnormalised scores; padded entries may hold anything,
      inf and NaN included.
    mask: bool[b, t].

  Returns:
    f32[b, t] weights, exactly 0 on padding, summing to 1 over each row's real
    steps, and all 0 for a row with none.
  """
  if mask.shape != scores.shape:
    raise ValueError(
        f'masked_softmax: mask shape {tuple(mask.shape)} must equal scores '
        f'shape {tuple(scores.shape)}')
  # Mask before the softmax: masking after it would leave padded scores in the
  # normaliser. A finite big negative (not -inf) keeps all-padding rows from
  # computing -inf - -inf = NaN; those rows come out uniform and are zeroed.
  big_neg = jnp.finfo(scores.dtype).min
  weights = jax.nn.softmax(jnp.where(mask, scores, big_neg), axis=-1)
  return jnp.where(mask, weights, 0)


def attention_pool(
    x: jax.Array, scores: jax.Array, mask: jax.Array
) -> jax.Array:
  """Weighted sum of real steps with weights `masked_softmax(scores, mask)`.

  Args:
    x: f32[b, t, d].
    scores: f32[b, t].
    mask: bool[b, t].

  Returns:
    f32[b, d]; zeros for a sequence with no real steps.

  Raises:
    ValueError: if the shapes do not match.
  """
  check_sequences(x, mask, 'attention_pool')
  weights = masked_softmax(scores, mask)
  # where, not multiply: 0 * inf in the padding would be NaN.
  x = jnp.where(mask[..., None], x, 0)
  return jnp.einsum('bt,btd->bd', weights, x)


class AttentionPool(nn.Module):
  """Attention pooling over time with a learned scorer.

  score_t = w . tanh(W x_t + b) with `hidden > 0`, else w . x_t + b; then
  `attention_pool`.

  Attributes:
    hidden: width of the scorer's hidden layer; 0 for a linear scorer.
  """
  hidden: int = 0

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    """f32[b, t, d], bool[b, t] -> f32[b, d] (zeros where no step is real).

    Raises:
      ValueError: if the shapes do not match.
    """
    check_sequences(x, mask, 'AttentionPool')
    x = jnp.where(mask[..., None], x, 0)
    s = x
    if self.hidden:
      s = jnp.tanh(nn.Dense(self.hidden, name='hidden')(s))
    scores = nn.Dense(1, name='score')(s)[..., 0]  # f32[b, t]
    return attention_pool(x, scores, mask)


def last_valid(x: jax.Array, mask: jax.Array) -> jax.Array:
  """Each sequence's last real step.

  Args:
    x: f32[b, t, d].
    mask: bool[b, t], True on a prefix of real steps.

  Returns:
    f32[b, d]; zeros for a sequence with no real steps.

  Raises:
    ValueError: if the shapes do not match.
  """
  check_sequences(x, mask, 'last_valid')
  lengths = mask.sum(axis=1)
  idx = jnp.maximum(lengths - 1, 0)
  last = jnp.take_along_axis(x, idx[:, None, None], axis=1)[:, 0]
  return jnp.where((lengths > 0)[:, None], last, 0)


class SelfAttention(nn.Module):
  """Multi-head self-attention that ignores padded keys and zeros padded rows.

  Params under 'attention', those of the `nn.MultiHeadDotProductAttention` it runs:
  query, key, value kernels f32[d, heads, d / heads] and biases f32[heads,
  d / heads], out kernel f32[heads, d / heads, d] and bias f32[d]. Padded
  queries are not masked (like torch's `key_padding_mask`); their rows are
  finite and come out zero. A sequence with no real steps gives zeros, never
  NaN.

  Attributes:
    num_heads: number of heads; must divide d.
    dropout_rate: dropout on the attention weights ('dropout' rng).
    kernel_init: initializer of the four projections.
  """
  num_heads: int
  dropout_rate: float = 0.0
  kernel_init: Initializer = nn.initializers.xavier_uniform()

  @nn.compact
  def __call__(
      self, x: jax.Array, mask: jax.Array, *, train: bool
  ) -> jax.Array:
    """f32[b, t, d], bool[b, t] -> f32[b, t, d], zeros at padded steps.

    Raises:
      ValueError: if the shapes do not match or heads do not divide d.
    """
    check_sequences(x, mask, 'SelfAttention')
    if x.shape[-1] % self.num_heads:
      raise ValueError(
          f'SelfAttention: num_heads {self.num_heads} must divide the feature '
          f'width {x.shape[-1]}')
    # Garbage (inf/NaN) in padded rows would reach real rows as 0 * NaN in
    # the weights @ values product, so zero it first.
    x = jnp.where(mask[..., None], x, 0)
    # Padded keys are masked; padded queries are not (their rows are zeroed below).
    key_mask = nn.make_attention_mask(jnp.ones_like(mask), mask)  # bool[b, 1, t, t]
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, dropout_rate=self.dropout_rate,
        # A mask per example, as the other dropouts: flax's default shares one mask over
        # the batch, which a device then draws for its own rows only (8 devices != 1).
        broadcast_dropout=False,
        kernel_init=self.kernel_init, name='attention')(
            x, mask=key_mask, deterministic=not train)
    return jnp.where(mask[..., None], y, 0)
