"""Masked pooling over time and self-attention with a key padding mask.

Sequences are right-padded: `mask: bool[b, t]` is True on real steps. Padded
steps get exactly zero weight (their scores are replaced by a large negative
before the softmax, so exp underflows to 0), and a sequence with no real steps
pools to zeros instead of NaN from 0 / 0.
"""

import math
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


class _DenseParams(nn.Module):
  """`nn.DenseGeneral`'s params (names, shapes, initial values), as 2-D matrices.

  Returns (kernel f32[fan_in, fan_out], bias f32[fan_out]) for the caller's own
  matmul; the stored kernel is f32[kernel_shape], the first `in_dims` of it the
  inputs, as DenseGeneral stores it.
  """
  kernel_shape: tuple[int, ...]
  in_dims: int
  kernel_init: Initializer

  @nn.compact
  def __call__(self) -> tuple[jax.Array, jax.Array]:
    shape = self.kernel_shape
    flat = (math.prod(shape[:self.in_dims]), math.prod(shape[self.in_dims:]))
    # DenseGeneral initialises the flat matrix, so fans are those of the matmul.
    init = lambda key, s, dtype=jnp.float32: self.kernel_init(key, flat, dtype).reshape(s)
    kernel = self.param('kernel', init, shape)
    bias = self.param('bias', nn.initializers.zeros_init(), shape[self.in_dims:])
    return kernel.reshape(flat), bias.reshape(-1)


class _MultiHeadAttention(nn.Module):
  """`nn.MultiHeadDotProductAttention` for self-attention with a key padding mask.

  The same params, initial values, scaling, masking and dropout (the same
  'dropout' rng, broadcast over batch and heads), so it computes what flax's
  layer computes (tests). The projections run as 2-D matmuls [b t, d] @
  [d, d] and heads are split once; flax's DenseGeneral einsums over [b, t, h,
  d / h] made XLA's CPU backend transpose their gradients through slower
  strided copies (attention's share of bilstm_attention's step: BENCHMARKS.md).
  """
  num_heads: int
  dropout_rate: float
  kernel_init: Initializer

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array, deterministic: bool) -> jax.Array:
    """f32[b, t, d], bool[b, t] (True on real keys) -> f32[b, t, d]."""
    b, t, d = x.shape
    h = self.num_heads
    e = d // h
    rows = x.reshape(b * t, d)

    def heads(name: str) -> jax.Array:  # f32[b, h, t, e]
      kernel, bias = _DenseParams((d, h, e), 1, self.kernel_init, name=name)()
      return jnp.swapaxes((rows @ kernel + bias).reshape(b, t, h, e), 1, 2)

    q, k, v = heads('query'), heads('key'), heads('value')
    scores = (q / jnp.sqrt(e).astype(q.dtype)) @ jnp.swapaxes(k, -1, -2)  # f32[b, h, t, t]
    scores = jnp.where(mask[:, None, None, :], scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1)
    if not deterministic and self.dropout_rate > 0:
      keep_prob = 1.0 - self.dropout_rate
      keep = jax.random.bernoulli(self.make_rng('dropout'), keep_prob, (1, 1, t, t))
      weights = weights * (keep.astype(weights.dtype) / jnp.asarray(keep_prob, weights.dtype))
    heads_out = jnp.swapaxes(weights @ v, 1, 2).reshape(b * t, d)
    kernel, bias = _DenseParams((h, e, d), 2, self.kernel_init, name='out')()
    return (heads_out @ kernel + bias).reshape(b, t, d)


class SelfAttention(nn.Module):
  """Multi-head self-attention that ignores padded keys and zeros padded rows.

  Params under 'attention', laid out as `nn.MultiHeadDotProductAttention`'s:
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
    y = _MultiHeadAttention(self.num_heads, self.dropout_rate, self.kernel_init,
                            name='attention')(x, mask, deterministic=not train)
    return jnp.where(mask[..., None], y, 0)
