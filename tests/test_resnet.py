"""ResNet backbone: shapes, purity, pooling. Small inputs: CPU compiles are slow."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videojax.models import (BACKBONE_NAMES, backbone_feature_dim, backbones,
                             create_backbone)
from videojax.models.pooling import adaptive_avg_pool
from videojax.models.resnet import preprocess

N = 2
S = 112  # Image side for every compiled run; the final map is 4x4.


@functools.cache
def _resnet18():
  """ResNet18 variables and one jitted fn giving (avg, grid) features.

  Every test that runs the net feeds f32[2, 112, 112, 3], so it compiles once.
  """
  avg = create_backbone('resnet18', pooling='avg')
  grid = create_backbone('resnet18', pooling='grid', grid_size=2)
  # An 'rbg' key: threefry init of ~60 kernels takes XLA ~3x longer to compile.
  # Pooling has no params, so both poolings share one set of variables.
  variables = jax.jit(avg.init)(jax.random.key(0, impl='rbg'),
                                jnp.zeros((1, S, S, 3)))

  @jax.jit
  def features(x):
    return avg.apply(variables, x), grid.apply(variables, x)

  return variables, features


# Each backbone traced once (1-5 s each): average pooling for all, the grid (pooling.pool,
# which every backbone calls last) for one of each module class.
GRID_TRACED = ('resnet18', 'efficientnet_lite0', 'efficientnet_b0', 'mobilenet_v2',
               'inception_v3')


@pytest.mark.parametrize('name, pooling', [(n, 'avg') for n in BACKBONE_NAMES]
                         + [(n, 'grid') for n in GRID_TRACED])
def test_output_shapes_without_compiling(name, pooling):
  model = create_backbone(name, pooling=pooling, grid_size=3)
  x = jax.ShapeDtypeStruct((N, 112, 112, 3), jnp.float32)
  out, variables = jax.eval_shape(
      lambda x: model.init_with_output(jax.random.key(0), x), x)
  d = {'resnet18': 512, 'resnet34': 512}.get(
      name, 1280 if name.startswith(('efficientnet', 'mobilenet')) else 2048)
  want = d if pooling == 'avg' else d * 9
  assert backbone_feature_dim(name, pooling, grid_size=3) == want
  assert backbones.get(name).width == d  # The spec's width, which the output has:
  assert out.shape == (N, want) and out.dtype == jnp.float32
  # 'layout': the input scaling / padding of the weights' source (mobilenet_v2, ...).
  assert set(variables) - {'layout'} == {'params', 'batch_stats'}


def test_bfloat16_compute_gives_float32_output_and_params():
  model = create_backbone('resnet50', dtype=jnp.bfloat16)
  x = jax.ShapeDtypeStruct((N, 64, 64, 3), jnp.float32)
  out, variables = jax.eval_shape(
      lambda x: model.init_with_output(jax.random.key(0), x), x)
  assert out.dtype == jnp.float32
  dtypes = {a.dtype for a in jax.tree.leaves(variables)}
  assert dtypes == {jnp.dtype(jnp.float32)}


def test_torchvision_names():
  variables, _ = _resnet18()
  p = variables['params']
  assert p['conv1']['kernel'].shape == (7, 7, 3, 64)
  assert set(p['layer2_0']) == {'conv1', 'bn1', 'conv2', 'bn2',
                                'downsample_conv', 'downsample_bn'}
  assert 'downsample_conv' not in p['layer1_0']  # Same width, stride 1.
  assert variables['batch_stats']['layer4_1']['bn2']['var'].shape == (512,)


def test_jit_deterministic_finite_and_grid_consistent():
  _, features = _resnet18()
  x = preprocess(jax.random.randint(
      jax.random.key(2), (N, S, S, 3), 0, 256).astype(jnp.uint8))
  avg, grid = features(x)
  avg2, grid2 = features(x)
  assert avg.shape == (N, 512) and grid.shape == (N, 512 * 4)
  np.testing.assert_array_equal(avg, avg2)
  np.testing.assert_array_equal(grid, grid2)
  assert np.isfinite(np.asarray(avg)).all() and np.abs(avg).max() > 0
  assert np.isfinite(np.asarray(grid)).all()
  # The 4x4 final map splits into four equal 2x2 bins, so the bins average
  # to the global pool; this pins the (row, column, channel) flattening.
  cells = np.asarray(grid).reshape(N, 2, 2, 512)
  np.testing.assert_allclose(cells.mean(axis=(1, 2)), avg, rtol=1e-5,
                             atol=1e-5 * np.abs(avg).max())


def test_grid_pooling_keeps_left_right_layout():
  _, features = _resnet18()
  blank = np.zeros((S, S, 3), np.uint8)
  left = blank.copy()
  left[48:64, 8:24] = 255  # Bright blob on the left; its mirror on the right.
  right = left[:, ::-1]
  (avg_l, avg_r), (grid_l, grid_r) = (np.asarray(f) for f in features(
      preprocess(np.stack([left, right]))))
  _, (grid_0, _) = (np.asarray(f) for f in features(
      preprocess(np.stack([blank, blank]))))
  rel = lambda a, b: np.linalg.norm(a - b) / np.linalg.norm(a)
  # A random-init net is neither mirror symmetric nor translation invariant
  # (its receptive field spans the image, zero padding included), so avg
  # features move too: measured rel(grid) ~= 2 * rel(avg) (1.8-2.3 over
  # init seeds). 1.5 fails if grid pooling loses position.
  assert rel(grid_l, grid_r) > 1.5 * rel(avg_l, avg_r)
  # Sharper: what the blob adds to the blank image's grid lies mostly in the
  # grid column on the blob's side. Measured energy ratios 2.9 (left) and
  # 4.7 (right) for this init, 2.4-6.4 over seeds.
  def column_energy(grid):  # f32[2*2*d] -> f32[2]: (left, right) column.
    return ((grid - grid_0).reshape(2, 2, -1) ** 2).sum(axis=(0, 2))
  e_l, e_r = column_energy(grid_l), column_energy(grid_r)
  assert e_l[0] > 2 * e_l[1], e_l
  assert e_r[1] > 2 * e_r[0], e_r


def test_adaptive_avg_pool_matches_torch_bins():
  x = np.random.default_rng(0).normal(size=(1, 7, 5, 2)).astype(np.float32)
  got = np.asarray(adaptive_avg_pool(jnp.asarray(x), 2))
  # torch bins for 7 -> 2: [0, 4), [3, 7); for 5 -> 2: [0, 3), [2, 5).
  ys, xs = [(0, 4), (3, 7)], [(0, 3), (2, 5)]
  for i, (y0, y1) in enumerate(ys):
    for j, (x0, x1) in enumerate(xs):
      np.testing.assert_allclose(got[0, i, j], x[0, y0:y1, x0:x1].mean((0, 1)),
                                 atol=1e-6)


def test_preprocess():
  frames = np.array([[[[0, 0, 0], [255, 255, 255]]]], np.uint8)
  out = np.asarray(preprocess(frames))
  assert out.dtype == np.float32 and out.shape == (1, 1, 2, 3)
  mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
  np.testing.assert_allclose(out[0, 0, 0], -mean / std, atol=1e-6)
  np.testing.assert_allclose(out[0, 0, 1], (1 - mean) / std, atol=1e-6)
  with pytest.raises(ValueError, match=r'\(1, 2, 4\)'):
    preprocess(np.zeros((1, 2, 4), np.uint8))


def test_registry_errors():
  with pytest.raises(ValueError, match='resnet18, resnet34, resnet50'):
    create_backbone('resnet1000')
  with pytest.raises(ValueError, match='poolng'):
    create_backbone('resnet18', poolng='grid')
  with pytest.raises(ValueError, match='max'):
    create_backbone('resnet18', pooling='max')
  with pytest.raises(ValueError, match='max'):
    backbone_feature_dim('resnet18', pooling='max')
