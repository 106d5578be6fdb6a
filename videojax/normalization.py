"""Per-frame feature normalisation, shared by training, evaluation and prediction.

config.train.feature_norm picks one of FEATURE_NORMS:

  standardize  (x - mean) / std per dimension, with the training split's statistics
  l2           each frame vector scaled to unit L2 norm
  power        signed square root, sign(x) sqrt(|x|), then L2 (Fisher-vector practice)
  none         the features as stored

Kept apart from train.py, which imports TensorFlow (its input pipeline), so that
evaluation and prediction start without it.
"""
import jax
import jax.numpy as jnp

FEATURE_NORMS = ("standardize", "l2", "power", "none")
# Below this norm a frame vector is left unscaled (as scikit-learn's normalize leaves
# zero rows): an all-zero frame stays zero instead of becoming NaN.
_TINY_NORM = 1e-12


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


def l2_normalize(x: jax.Array) -> jax.Array:
  """f32[..., d] with each vector over the last axis scaled to unit L2 norm."""
  norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
  return x / jnp.where(norm > _TINY_NORM, norm, 1.0)


def normalize(features: jax.Array, mask: jax.Array, kind: str, mean: jax.Array,
              std: jax.Array) -> jax.Array:
  """The features under normalisation `kind` (module docstring), f32[b, t, d].

  Padded frames come out zero, whatever they held.

  Args:
    features: f16 or f32[b, t, d].
    mask: bool[b, t], True on real frames.
    kind: one of FEATURE_NORMS.
    mean, std: f32[d], read by 'standardize' only.

  Raises:
    ValueError: an unknown kind.
  """
  if kind == "standardize":
    return standardize(features, mask, mean, std)
  if kind not in FEATURE_NORMS:
    raise ValueError(f"feature_norm={kind!r}; accepted: {', '.join(FEATURE_NORMS)}")
  # Padding first: garbage there (inf, NaN) must not reach a norm.
  x = jnp.where(mask[..., None], features.astype(jnp.float32), 0.0)
  if kind == "power":
    x = jnp.sign(x) * jnp.sqrt(jnp.abs(x))
  if kind in ("l2", "power"):
    x = l2_normalize(x)
  return x
