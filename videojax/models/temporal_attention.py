"""Attention video classifiers over per-frame features: BiLSTM + attention, Transformer.

Same contract as `temporal.py`: `features: f32[b, t, d]`, `mask: bool[b, t]`
(True on a prefix of real frames) -> logits `f32[b, k]`, independent of what
the padding holds or how long it is. Padded rows are zeroed after every block,
so garbage never reaches real rows, and attention sees real keys only.
Dropout draws from the 'dropout' rng stream.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from videojax.models.attention import AttentionPool, SelfAttention
from videojax.models.rnn import LSTM, Bidirectional
from videojax.models.temporal import check_features, masked_mean

POSITIONS = ('sinusoidal', 'learned')
POOLINGS = ('mean', 'attention')


def _zero_padding(x: jax.Array, mask: jax.Array) -> jax.Array:
  return jnp.where(mask[..., None], x, 0)


def sinusoidal_positions(t: int, d: int) -> np.ndarray:
  """The fixed encodings of "Attention Is All You Need", f32[t, d].

  Column 2i is sin(p / 10000^(2i/d)) and column 2i+1 its cos, at position p.
  """
  pos = np.arange(t, dtype=np.float64)[:, None]
  freq = 10000.0 ** (-np.arange(0, d, 2, dtype=np.float64) / d)
  pe = np.zeros((t, d))
  pe[:, 0::2] = np.sin(pos * freq)
  pe[:, 1::2] = np.cos(pos * freq[:d // 2])
  return pe.astype(np.float32)


class InputProjection(nn.Module):
  """Dense to the model width, then LayerNorm; padded rows stay zero.

  Attributes:
    width: output width.
  """
  width: int

  @nn.compact
  def __call__(self, features: jax.Array, mask: jax.Array) -> jax.Array:
    """f32[b, t, d], bool[b, t] -> f32[b, t, width]."""
    x = nn.Dense(self.width, name='dense')(_zero_padding(features, mask))
    return _zero_padding(nn.LayerNorm(name='norm')(x), mask)


class BiLSTMAttentionClassifier(nn.Module):
  """Projection, stacked BiLSTMs, self-attention, attention pooling, MLP head.

  features -> Dense(width) + LayerNorm -> num_layers x BiLSTM (width / 2 per
  direction, so the width stays `width`) -> LayerNorm(x + MHSA(x)) ->
  AttentionPool -> Dense(width, relu) -> Dense(k).

  Attributes:
    num_classes: k.
    width: model width; even, and a multiple of num_heads.
    num_layers: BiLSTM layers.
    num_heads: self-attention heads.
    dropout: rate after the projection, between layers, on the attention
      weights and output, and in the head.
  """
  num_classes: int
  width: int = 64
  num_layers: int = 1
  num_heads: int = 4
  dropout: float = 0.0

  @nn.compact
  def __call__(
      self, features: jax.Array, mask: jax.Array, *, train: bool
  ) -> jax.Array:
    """f32[b, t, d], bool[b, t] -> logits f32[b, k].

    Raises:
      ValueError: if the shapes of features and mask do not match, or width is
        odd or not a multiple of num_heads.
    """
    name = type(self).__name__
    check_features(features, mask, name)
    if self.width % 2 or self.width % self.num_heads:
      raise ValueError(
          f'{name}: width {self.width} must be even and a multiple of '
          f'num_heads {self.num_heads}')
    drop = nn.Dropout(self.dropout, deterministic=not train)
    x = drop(InputProjection(self.width, name='input')(features, mask))
    for i in range(self.num_layers):
      x = Bidirectional(LSTM(self.width // 2), name=f'bilstm_{i}')(x, mask)
      x = drop(x)
    a = SelfAttention(self.num_heads, dropout_rate=self.dropout,
                      name='self_attention')(x, mask, train=train)
    x = nn.LayerNorm(name='attention_norm')(x + drop(a))
    x = AttentionPool(hidden=self.width, name='pool')(x, mask)
    x = nn.relu(nn.Dense(self.width, name='dense')(x))
    x = drop(x)
    return nn.Dense(self.num_classes, name='logits')(x)


class EncoderBlock(nn.Module):
  """Pre-LN Transformer encoder block with a key padding mask.

  x + MHSA(LN(x)), then x + MLP(LN(x)); padded rows come out zero.

  Attributes:
    num_heads: attention heads.
    mlp_dim: hidden width of the MLP.
    dropout: rate on attention weights and on both residual branches.
  """
  num_heads: int
  mlp_dim: int
  dropout: float = 0.0

  @nn.compact
  def __call__(
      self, x: jax.Array, mask: jax.Array, *, train: bool
  ) -> jax.Array:
    """f32[b, t, d], bool[b, t] -> f32[b, t, d]."""
    drop = nn.Dropout(self.dropout, deterministic=not train)
    y = nn.LayerNorm(name='attention_norm')(x)
    y = SelfAttention(self.num_heads, dropout_rate=self.dropout,
                      name='self_attention')(y, mask, train=train)
    x = x + drop(y)
    y = nn.LayerNorm(name='mlp_norm')(x)
    y = nn.gelu(nn.Dense(self.mlp_dim, name='mlp_in')(y))
    y = nn.Dense(x.shape[-1], name='mlp_out')(drop(y))
    return _zero_padding(x + drop(y), mask)


class TransformerClassifier(nn.Module):
  """Projection, positions, pre-LN encoder blocks, masked pooling, linear head.

  Attributes:
    num_classes: k.
    width: model width; even, and a multiple of num_heads.
    num_layers: encoder blocks.
    num_heads: attention heads.
    mlp_dim: hidden width of each block's MLP.
    dropout: rate after the positions, inside blocks, and before the head.
    positions: 'sinusoidal' (fixed, any length) or 'learned' (up to max_len).
    max_len: longest sequence the learned positions cover.
    pooling: 'mean' (masked mean) or 'attention' (learned scorer).
  """
  num_classes: int
  width: int = 64
  num_layers: int = 2
  num_heads: int = 4
  mlp_dim: int = 128
  dropout: float = 0.0
  positions: str = 'sinusoidal'
  max_len: int = 256
  pooling: str = 'mean'

  @nn.compact
  def __call__(
      self, features: jax.Array, mask: jax.Array, *, train: bool
  ) -> jax.Array:
    """f32[b, t, d], bool[b, t] -> logits f32[b, k].

    Raises:
      ValueError: if the shapes of features and mask do not match, on an
        unknown `positions` or `pooling`, an odd width or one heads do not
        divide, or with learned positions t > max_len.
    """
    name = type(self).__name__
    check_features(features, mask, name)
    if self.positions not in POSITIONS:
      raise ValueError(f'{name}.positions must be one of {POSITIONS}; got '
                       f'{self.positions!r}')
    if self.pooling not in POOLINGS:
      raise ValueError(f'{name}.pooling must be one of {POOLINGS}; got '
                       f'{self.pooling!r}')
    if self.width % 2 or self.width % self.num_heads:
      raise ValueError(
          f'{name}: width {self.width} must be even and a multiple of '
          f'num_heads {self.num_heads}')
    t = features.shape[1]
    x = InputProjection(self.width, name='input')(features, mask)
    if self.positions == 'learned':
      if t > self.max_len:
        raise ValueError(f'{name}: {t} frames exceed max_len {self.max_len} '
                         'of the learned positions')
      pos = self.param('pos_embedding', nn.initializers.normal(0.02),
                       (self.max_len, self.width))[:t]
    else:
      pos = sinusoidal_positions(t, self.width)
    drop = nn.Dropout(self.dropout, deterministic=not train)
    x = drop(_zero_padding(x + pos, mask))
    for i in range(self.num_layers):
      x = EncoderBlock(self.num_heads, self.mlp_dim, self.dropout,
                       name=f'block_{i}')(x, mask, train=train)
    x = nn.LayerNorm(name='encoder_norm')(x)
    if self.pooling == 'attention':
      x = AttentionPool(hidden=self.width, name='pool')(x, mask)
    else:
      x = masked_mean(x, mask)
    return nn.Dense(self.num_classes, name='logits')(drop(x))
