"""Per-dimension feature standardisation, shared by training, evaluation and prediction.

Kept apart from train.py, which imports TensorFlow (its input pipeline), so that
evaluation and prediction start without it.
"""
import jax
import jax.numpy as jnp


def standardize(features: jax.Array, mask: jax.Array, mean: jax.Array,
                std: jax.Array) -> jax.Array:
  """(features - mean) / std as f32[b, t, d]; padded frames stay zero (the mask marks them).

  Args:
    features: f16 or f32[b, t, d].
    mask: bool[b, t], True on real frames.
    mean, std: f32[d], from the training split's real frames.
  """
  x = (features.astype(jnp.float32) - mean) / std
  return jnp.where(mask[..., None], x, 0.0)
