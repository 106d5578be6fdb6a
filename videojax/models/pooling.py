"""How a backbone's final feature map becomes per-frame features."""

import jax
import jax.numpy as jnp

POOLINGS = ('avg', 'grid', 'map')


def adaptive_avg_pool(x: jax.Array, size: int) -> jax.Array:
  """PyTorch's AdaptiveAvgPool2d: averages x over a size x size grid of bins.

  Bin i along an axis of length L covers [floor(i L / size), ceil((i+1) L /
  size)), so bins overlap when L is not a multiple of size and every bin is
  non-empty even when L < size.

  Args:
    x: f32[n, h, w, c].
    size: grid side k.

  Returns:
    f32[n, k, k, c].
  """
  def bounds(length: int) -> list[tuple[int, int]]:
    return [(i * length // size, -(-(i + 1) * length // size))
            for i in range(size)]

  # Shapes are static, so these loops unroll into k*k small reductions.
  rows = []
  for y0, y1 in bounds(x.shape[1]):
    row = [x[:, y0:y1, x0:x1, :].mean(axis=(1, 2))
           for x0, x1 in bounds(x.shape[2])]
    rows.append(jnp.stack(row, axis=1))
  return jnp.stack(rows, axis=1)


def pool(x: jax.Array, pooling: str, grid_size: int) -> jax.Array:
  """Per-frame features from a final map, in float32.

  Args:
    x: f32[n, h, w, c] final feature map.
    pooling: 'avg' global average -> f32[n, c]. 'grid' averages over
      grid_size x grid_size bins and flattens them in (row, column, channel)
      order -> f32[n, c k^2]: global pooling forgets where things are in the
      frame, the grid keeps a coarse layout (left vs right, top vs bottom).
      'map' returns x itself, f32[n, h, w, c], for models that keep the
      spatial structure (ConvLSTM over feature maps).
    grid_size: k for 'grid'.

  Raises:
    ValueError: on an unknown pooling or a grid size below 1.
  """
  if pooling not in POOLINGS:
    raise ValueError(f'pooling must be one of {POOLINGS}; got {pooling!r}')
  # Pool in float32: a mean over many bfloat16 values loses precision.
  x = x.astype(jnp.float32)
  if pooling == 'avg':
    return x.mean(axis=(1, 2))
  if pooling == 'map':
    return x
  if grid_size < 1:
    raise ValueError(f'grid_size must be >= 1; got {grid_size}')
  grid = adaptive_avg_pool(x, grid_size)
  return grid.reshape(grid.shape[0], -1)


def feature_dim(width: int, pooling: str, grid_size: int) -> int:
  """Per-frame feature width d for a map of `width` channels ('avg' or 'grid').

  Raises:
    ValueError: on 'map' (no single width) or an unknown pooling.
  """
  if pooling == 'avg':
    return width
  if pooling == 'grid':
    return width * grid_size * grid_size
  raise ValueError(f'feature_dim: pooling must be avg or grid; got {pooling!r}')
