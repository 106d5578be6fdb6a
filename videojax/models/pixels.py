"""The 'pixels' backbone: each frame itself, flattened, is its feature vector.

It lets models that learn from raw frames (the end-to-end 'convlstm') train
on extracted features like every other model: extraction stores each frame,
already resized to image_size s, scaled to [0, 1] and flattened in (row,
column, channel) order, as f16[s*s*3]; `convlstm.pixels_to_frames` undoes it.

float16 storage is exact enough: the values are k / 255, and the nonzero ones
(>= 1/255) lie in float16's normal range (>= 2^-14), where rounding errs by
at most 2^-11 relative, 2^-12 absolute below 1: a sixteenth of the 1/255 step
between levels, so round(255 x) gives back every u8 level (one temporal
scale; several average their frames).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from videojax.models.frames import rgb_float32


def preprocess(frames: jax.Array) -> jax.Array:
  """RGB frames u8[n, h, w, 3] as f32 in [0, 1]: frames * float32(1 / 255).

  Within an ulp of frames / 255, and equal to it once rounded to float16.
  XLA turns a division by a constant into this multiply anyway; written out,
  it matches NumPy's frames * float32(1 / 255) bit for bit.

  Raises:
    ValueError: if the last axis is not 3 channels.
  """
  return rgb_float32(frames) * jnp.float32(1 / 255)


def feature_dim(image_size: int) -> int:
  """Width d = s*s*3 of the features of frames of side s = image_size."""
  return image_size * image_size * 3


class Pixels(nn.Module):
  """Frames f32[n, h, w, c] -> f32[n, h*w*c], (row, column, channel) order.

  No parameters: its variables are {}.

  Attributes:
    pooling, grid_size: the CNN backbones' keywords, so that extraction builds
      every backbone alike. Nothing is pooled: only pooling='avg' (the config
      default) is accepted, so that asking for grid cells fails instead of
      quietly giving whole frames.
  """
  pooling: str = 'avg'
  grid_size: int = 2

  def __post_init__(self):
    if self.pooling != 'avg':
      raise ValueError(
          f'config.extract.pooling={self.pooling!r}: the pixels backbone keeps '
          'whole frames and pools nothing; set config.extract.pooling=avg (its '
          'default, which pixels ignores)')
    super().__post_init__()

  def __call__(self, x: jax.Array) -> jax.Array:
    """f32[n, h, w, c], output of `preprocess` -> f32[n, h*w*c]."""
    return jnp.asarray(x, jnp.float32).reshape(x.shape[0], -1)
