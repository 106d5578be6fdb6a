"""Temporal augmentation of a training batch, on device, inside the jitted train step.

Both take a clip's real frames (a prefix mask) and keep some of them, in order,
re-packed to the left so the mask stays a prefix (the models require it):

  temporal_crop:  a random contiguous window of at least a fraction of the real frames;
  frame_dropout:  each real frame dropped with a probability, never all of a clip's.

Random numbers are drawn batch-first (shape [b, ...]), so under `Steps`'s
shard_map with `sharding.rows_of_global_draws` each device gets its rows of the
whole batch's draws. Evaluation never calls these.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def crop_window(mask: jax.Array, min_fraction: float, rng: jax.Array) -> jax.Array:
  """bool[b, t]: a random contiguous window of each row's real frames.

  The window holds n frames, n uniform in [ceil(min_fraction * length), length],
  at a uniform start; rows without real frames stay empty.

  Args:
    mask: bool[b, t], a prefix mask.
    min_fraction: in (0, 1].
  """
  t = mask.shape[1]
  length = mask.sum(1)
  u = jax.random.uniform(rng, (mask.shape[0], 2))
  shortest = jnp.maximum(jnp.ceil(min_fraction * length).astype(length.dtype), 1)
  n = jnp.minimum(shortest + jnp.floor(u[:, 0] * (length - shortest + 1)).astype(length.dtype),
                  length)
  start = jnp.floor(u[:, 1] * (length - n + 1)).astype(length.dtype)
  j = jnp.arange(t)[None]
  return (j >= start[:, None]) & (j < (start + n)[:, None])


def drop_frames(mask: jax.Array, rate: float, rng: jax.Array) -> jax.Array:
  """bool[b, t]: `mask` with each True dropped with probability `rate`.

  A row that would lose every frame keeps one of them, the one of largest draw
  (so uniformly chosen).
  """
  u = jax.random.uniform(rng, mask.shape)
  keep = mask & (u >= rate)
  last = mask & (u == jnp.max(jnp.where(mask, u, -1.0), axis=1, keepdims=True))
  return jnp.where(keep.any(1, keepdims=True), keep, last)


def pack(features: jax.Array, keep: jax.Array) -> tuple[jax.Array, jax.Array]:
  """The kept frames of each row moved to the front, in order; the rest zero.

  Args:
    features: [b, t, ...].
    keep: bool[b, t], any pattern.

  Returns:
    features of the same shape and dtype, and their prefix mask bool[b, t].
  """
  t = keep.shape[1]
  order = jnp.argsort(~keep, axis=1, stable=True)  # Kept positions first, in order.
  mask = jnp.arange(t)[None] < keep.sum(1, keepdims=True)
  idx = order.reshape(order.shape + (1,) * (features.ndim - 2))
  x = jnp.take_along_axis(features, idx, axis=1)
  return jnp.where(mask.reshape(mask.shape + (1,) * (features.ndim - 2)), x, 0), mask


def augment(features: jax.Array, mask: jax.Array, rng: jax.Array, *,
            frame_dropout: float = 0.0, temporal_crop: float = 0.0,
            ) -> tuple[jax.Array, jax.Array]:
  """A temporal crop (if temporal_crop > 0), then frame dropout (if frame_dropout > 0).

  Args:
    features: f16 or f32[b, t, d].
    mask: bool[b, t], a prefix mask.
    rng: a key; the same key gives the same result.
    frame_dropout: probability of dropping each real frame, in [0, 1).
    temporal_crop: least fraction of the real frames a crop keeps, in (0, 1]; 0: no crop.

  Returns:
    features [b, t, d] and their prefix mask bool[b, t]; unchanged when both are 0.
  """
  if not frame_dropout and not temporal_crop:
    return features, mask
  crop_rng, drop_rng = jax.random.split(rng)
  keep = mask
  if temporal_crop:
    keep = crop_window(keep, temporal_crop, crop_rng)
  if frame_dropout:
    keep = drop_frames(keep, frame_dropout, drop_rng)
  return pack(features, keep)
