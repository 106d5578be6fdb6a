"""Temporal augmentation of a training batch, on device, inside the jitted train step.

Both take a clip's real frames (a prefix mask) and keep some of them, in order,
re-packed to the left so the mask stays a prefix (the models require it):

  temporal_crop:   a random contiguous window of at least a fraction of the real frames;
  temporal_stride: every s-th of those frames, s uniform in [1, max_stride], at a random
                   phase (a faster replay of the clip);
  frame_dropout:   each real frame dropped with a probability, never all of a clip's.

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


def stride_frames(keep: jax.Array, max_stride: int, rng: jax.Array) -> jax.Array:
  """bool[b, t]: every s-th True of each row of a contiguous `keep`, s uniform in [1, max_stride].

  The first kept frame is one of the first s of the window (uniform phase, within
  the window), so a row with frames keeps at least one; empty rows stay empty.

  Args:
    keep: bool[b, t], True on one contiguous run per row (a prefix or a crop window).
    max_stride: >= 1; 1 gives `keep` back.
  """
  t = keep.shape[1]
  length = keep.sum(1)
  first = jnp.argmax(keep, axis=1)
  u = jax.random.uniform(rng, (keep.shape[0], 2))
  stride = 1 + jnp.floor(u[:, 0] * max_stride).astype(length.dtype)
  stride = jnp.minimum(stride, max_stride)
  phase = jnp.minimum(jnp.floor(u[:, 1] * stride).astype(length.dtype),
                      jnp.maximum(length - 1, 0))
  offset = jnp.arange(t)[None] - (first + phase)[:, None]
  return keep & (offset >= 0) & (offset % stride[:, None] == 0)


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
            frame_dropout: float = 0.0, temporal_crop: float = 0.0, temporal_stride: int = 1,
            ) -> tuple[jax.Array, jax.Array]:
  """A temporal crop (if temporal_crop > 0), a random stride (if temporal_stride > 1),
  then frame dropout (if frame_dropout > 0).

  Args:
    features: f16 or f32[b, t, d].
    mask: bool[b, t], a prefix mask.
    rng: a key; the same key gives the same result.
    frame_dropout: probability of dropping each real frame, in [0, 1).
    temporal_crop: least fraction of the real frames a crop keeps, in (0, 1]; 0: no crop.
    temporal_stride: largest stride drawn, an int >= 1; 1: every frame.

  Returns:
    features [b, t, d] and their prefix mask bool[b, t]; unchanged when all are off.
  """
  if not frame_dropout and not temporal_crop and temporal_stride <= 1:
    return features, mask
  crop_rng, drop_rng = jax.random.split(rng)
  keep = mask
  if temporal_crop:
    keep = crop_window(keep, temporal_crop, crop_rng)
  if temporal_stride > 1:  # Its own stream: the crop's and dropout's draws stay as they were.
    keep = stride_frames(keep, temporal_stride, jax.random.fold_in(rng, 1))
  if frame_dropout:
    keep = drop_frames(keep, frame_dropout, drop_rng)
  return pack(features, keep)
