"""The input check every backbone's preprocessing shares."""

import jax
import jax.numpy as jnp


def rgb_float32(frames: jax.Array) -> jax.Array:
  """RGB frames u8[n, h, w, 3] as f32, values unchanged.

  Raises:
    ValueError: if the last axis is not 3 channels.
  """
  if frames.ndim < 1 or frames.shape[-1] != 3:
    raise ValueError(
        f'preprocess: expected RGB frames u8[n, h, w, 3]; got shape '
        f'{tuple(frames.shape)}')
  return jnp.asarray(frames, jnp.float32)
