"""EfficientNet-B0 and EfficientNetV2-S: each weight layout, loaded from a file by our
loader, against an implementation not written here, on random weights with random BN
statistics (identity BN would hide mapping bugs):

- B0, lukemelas layout (.pth): `efficientnet_lite_pytorch`'s 'efficientnet-b0' (a fork
  of lukemelas' EfficientNet-PyTorch), run here.
- B0 and V2-S, Keras layout (.weights.h5): keras.applications, run here.
- B0 and V2-S, timm layout (.safetensors): timm's `tf_efficientnet_b0` and
  `tf_efficientnetv2_s`, whose features tests/data/efficientnet_timm_goldens.json
  recorded (timm does not import beside this venv's torch; see
  tests/reference/make_torch_goldens_efficientnet.py).

All at 64 px with one compiled program per architecture, to keep these tests cheap.
"""

import importlib.util
import json
import os
import pathlib

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from videojax import models  # noqa: E402
from videojax.models import checkpoint_io, create_backbone  # noqa: E402
from videojax.models import efficientnet as E  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
GOLDEN = json.loads((HERE / 'data' / 'efficientnet_timm_goldens.json').read_text())
_spec = importlib.util.spec_from_file_location(
    'make_goldens', HERE / 'reference' / 'make_torch_goldens_efficientnet.py')
golden_lib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden_lib)

NAMES = {'b0': 'efficientnet_b0', 'v2_s': 'efficientnetv2_s'}
# fp32 on CPU, other conv algorithms and summation orders; features reach ~0.5 (B0) and
# ~2.3 (V2-S). Measured max abs differences on the pooled features are in each test.
ATOL = 1e-4


@pytest.fixture(scope='module')
def apply():
  """arch -> (module with pooling='map', its jitted apply): one compile per architecture."""
  out = {}
  for arch, name in NAMES.items():
    module = create_backbone(name, pooling='map')
    out[arch] = (module, jax.jit(module.apply))
  return out


def _features(apply, arch, variables, frames):
  """Pooled features f32[n, 1280] (what 'avg' extraction stores) and the map."""
  module, fn = apply[arch]
  fmap = np.asarray(fn(variables, models.preprocess_frames(NAMES[arch], frames)))
  assert fmap.shape == (len(frames), 2, 2, 1280)
  return fmap.mean(axis=(1, 2))


def _frames(seed=0, n=2, size=64):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# ---------------------------------------------------------------- lukemelas (.pth)


def test_b0_lukemelas_layout_matches_reference(apply, tmp_path):
  torch = pytest.importorskip('torch')
  ref_lib = pytest.importorskip('efficientnet_lite_pytorch')
  model = ref_lib.EfficientNet.from_name('efficientnet-b0', image_size=None)  # TF 'SAME'.
  g = torch.Generator().manual_seed(0)
  for m in model.modules():
    if isinstance(m, torch.nn.BatchNorm2d):
      m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
      m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
      m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
      m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
  model.eval()
  path = tmp_path / 'b0.pth'
  torch.save(model.state_dict(), path)
  variables = models.load_backbone_variables('efficientnet_b0', apply['b0'][0], str(path))
  frames = _frames()
  # lukemelas' weights were trained on ImageNet mean/std scaling.
  x = (frames / 255 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
  with torch.no_grad():
    want = model.extract_features(torch.from_numpy(x.transpose(0, 3, 1, 2).astype(np.float32)))
  want = want.numpy().mean(axis=(2, 3))
  got = _features(apply, 'b0', variables, frames)
  np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)  # Measured 7e-8 (features <= 0.5).


# ---------------------------------------------------------------- Keras (.weights.h5)


@pytest.fixture(scope='module')
def keras_models():
  """arch -> keras.applications model (include_top=False, pooling='avg'), random BN."""
  keras = pytest.importorskip('keras')
  keras.utils.set_random_seed(0)
  rng = np.random.default_rng(0)
  out = {}
  for arch in NAMES:
    model = getattr(keras.applications, E.ARCHS[arch].keras)(
        weights=None, include_top=False, pooling='avg')
    for layer in model.layers:
      kind = type(layer).__name__
      if kind == 'BatchNormalization':
        c = layer.gamma.shape
        layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c),
                           rng.normal(0, 0.1, c), rng.uniform(0.5, 1.5, c)])
      elif kind in ('Conv2D', 'DepthwiseConv2D'):
        # N(0, 1 / fan_in), as the timm golden's weights: Keras' own init makes features
        # of 1e4-1e5 in B0, where float32 rounding alone exceeds any useful tolerance.
        k = layer.kernel.shape
        fan_in = k[0] * k[1] * (1 if kind == 'DepthwiseConv2D' else k[2])
        weights = [rng.normal(0, 1 / np.sqrt(fan_in), k)]
        if layer.use_bias:  # Squeeze-excitation convs.
          weights.append(rng.normal(0, 0.1, layer.bias.shape))
        layer.set_weights(weights)
      elif kind == 'Normalization':
        # What Keras' ImageNet file holds: the std as the variance (tensorflow#49930).
        layer.set_weights([np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225]),
                           np.array(0)])
    out[arch] = model
  return out


def _keras_reference(arch, model, frames):
  """keras.applications' pooled features of `frames`, as its ImageNet weights are fed."""
  x = frames.astype(np.float64)
  if arch == 'b0':
    # keras.applications.EfficientNetB0(weights='imagenet') adds Rescaling(1 / sqrt(std))
    # after that Normalization; weights=None does not, so feed Keras the input on which its
    # Normalization gives (x / 255 - mean) / std, the scaling the ImageNet weights expect.
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    x = 255 * (mean + (x / 255 - mean) / np.sqrt(std))
  return np.asarray(model(x.astype(np.float32), training=False))


def test_b0_keras_h5_file_matches_keras(apply, keras_models, tmp_path):
  """Through a Keras 2 `.h5` file, the format of keras.applications' efficientnetb0_notop.h5."""
  h5py = pytest.importorskip('h5py')
  # Keras' own writer of that format (private: skip, not fail, if Keras moves it).
  legacy_h5_format = pytest.importorskip('keras.src.legacy.saving.legacy_h5_format')
  model = keras_models['b0']
  path = tmp_path / 'efficientnetb0_notop.h5'
  with h5py.File(path, 'w') as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, model)
  variables = models.load_backbone_variables('efficientnet_b0', apply['b0'][0], str(path))
  std = np.array([0.229, 0.224, 0.225])
  np.testing.assert_allclose(variables['layout']['input_std'], 255 * std, rtol=1e-6)
  frames = _frames(seed=2)
  got = _features(apply, 'b0', variables, frames)
  # Measured 2.1e-6 (features up to 0.5).
  np.testing.assert_allclose(got, _keras_reference('b0', model, frames), atol=ATOL, rtol=0)


def test_v2s_keras_layout_matches_keras(apply, keras_models):
  """From the Keras model itself (the file route is B0's above, the same code)."""
  model = keras_models['v2_s']
  variables = E.variables_from_keras_model(model, apply['v2_s'][0])
  np.testing.assert_array_equal(variables['layout']['input_mean'], 128)
  frames = _frames(seed=2)
  got = _features(apply, 'v2_s', variables, frames)
  # Measured 7e-7 (features up to 2.5).
  np.testing.assert_allclose(got, _keras_reference('v2_s', model, frames), atol=ATOL, rtol=0)


# ---------------------------------------------------------------- timm (.safetensors)


@pytest.mark.parametrize('arch, timm_name', [('b0', 'tf_efficientnet_b0'),
                                             ('v2_s', 'tf_efficientnetv2_s')])
def test_timm_layout_matches_timm_golden(arch, timm_name, apply, tmp_path):
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  golden = GOLDEN['models'][timm_name]
  path = tmp_path / f'{timm_name}.safetensors'
  save_file(golden_lib.fill(golden['keys'], GOLDEN['seed']), str(path))
  variables = models.load_backbone_variables(NAMES[arch], apply[arch][0], str(path))
  # timm feeds (x / 255 - mean) / std with its pretrained_cfg's numbers.
  np.testing.assert_allclose(variables['layout']['input_mean'],
                             255 * np.array(golden['mean']), rtol=1e-6)
  got = _features(apply, arch, variables, golden_lib.frames())
  # Measured 2.1e-7 (B0, features up to 0.66), 1.3e-6 (V2-S, up to 2.3).
  np.testing.assert_allclose(got, np.array(golden['features']), atol=ATOL, rtol=0)


# ---------------------------------------------------------------- the rest


def test_depthwise_shifted_matches_conv():
  """The CPU option, on one squeeze-excite swish block (the same kernel in both paths)."""
  assert create_backbone('efficientnet_b0', cpu_kernels=True).depthwise == 'shifted'
  x = np.random.default_rng(0).normal(size=(2, 9, 9, 16)).astype(np.float32)
  block = E.MBConv(5, 2, 6, 24, se_ratio=0.25, activation='swish')
  rng = np.random.default_rng(1)  # Numpy, not block.init: compiling RNG init costs seconds.
  variables = jax.tree_util.tree_map_with_path(
      lambda path, a: (rng.uniform(0.5, 1.5, a.shape) if path[-1].key == 'var'
                       else rng.normal(0, 0.3, a.shape)).astype(np.float32),
      jax.eval_shape(block.init, jax.random.key(1), x))
  shifted = E.MBConv(5, 2, 6, 24, se_ratio=0.25, activation='swish', depthwise='shifted')
  np.testing.assert_allclose(jax.jit(shifted.apply)(variables, x),
                             jax.jit(block.apply)(variables, x), atol=1e-5, rtol=0)  # 6e-8


def test_specs():
  """Widths and grid shapes of every spec are checked in test_backbones.py."""
  assert {n: (models.BACKBONES[n].image_size, models.backbone_feature_dim(n, 'grid', 2))
          for n in NAMES.values()} == {'efficientnet_b0': (224, 5120),
                                       'efficientnetv2_s': (384, 5120)}
  # Frames stay in [0, 255]: the model scales them with its variables.
  frames = _frames(n=1, size=4)
  np.testing.assert_array_equal(models.preprocess_frames('efficientnetv2_s', frames), frames)
  with pytest.raises(ValueError, match='no ImageNet weights ship for efficientnet_b0: .*Keras file'):
    models.backbone_weights_path('efficientnet_b0', 'imagenet')


def test_missing_and_misshapen_tensors_are_named(apply, tmp_path):
  golden = GOLDEN['models']['tf_efficientnet_b0']
  state = golden_lib.fill(golden['keys'], 0)
  module = apply['b0'][0]
  missing = dict(state)
  del missing['blocks.2.1.bn2.running_var']
  with pytest.raises(checkpoint_io.WeightsError,
                     match=r'tensor blocks\.2\.1\.bn2\.running_var is missing'):
    E.efficientnet_from_torch(missing, module)
  misshapen = dict(state)
  misshapen['blocks.3.0.se.conv_reduce.weight'] = state['blocks.3.0.se.conv_reduce.weight'][:-1]
  with pytest.raises(checkpoint_io.WeightsError,
                     match=r'blocks\.3\.0\.se\.conv_reduce\.weight: shape .*needs'):
    E.efficientnet_from_torch(misshapen, module)
  extra = {**state, 'blocks.6.1.conv_pw.weight': np.zeros((1,), np.float32)}
  with pytest.raises(checkpoint_io.WeightsError, match=r'do not belong.*blocks\.6\.1\.conv_pw'):
    E.efficientnet_from_torch(extra, module)
  with pytest.raises(checkpoint_io.WeightsError, match='torchvision pads convolutions'):
    E.efficientnet_from_torch({'features.0.0.weight': np.zeros((32, 3, 3, 3))}, module)
  path = tmp_path / 'b0.h5'
  path.write_bytes(b'not hdf5')
  with pytest.raises(checkpoint_io.WeightsError, match=r'b0\.h5: not an HDF5 file'):
    E.load_efficientnet_weights(path, module)
