"""EfficientNet-B0 and EfficientNetV2-S: each weight layout, loaded from a file by our
loader, against an implementation not written here, on random weights with random BN
statistics (identity BN would hide mapping bugs):

- B0, lukemelas layout (.pth): `efficientnet_lite_pytorch`'s 'efficientnet-b0' (a fork
  of lukemelas' EfficientNet-PyTorch), run here.
- B0 and V2-S, Keras layout (Keras 2 .h5, the keras.applications downloads' format):
  keras.applications' features, which tests/data/keras_goldens_efficientnet.npz recorded
  with the files' skeleton (tests/reference/make_keras_goldens_efficientnet.py: building
  the two Keras models here cost ~40 s). Keras 3's .weights.h5 / .keras need Keras to read
  them (efficientnet_from_keras builds the model); the suite checks the step after,
  `variables_from_keras_model`, on a stand-in model, not Keras reading those files.
- B0 and V2-S, timm layout (.safetensors): timm's `tf_efficientnet_b0` and
  `tf_efficientnetv2_s`, whose features tests/data/efficientnet_timm_goldens.json
  recorded (timm does not import beside this venv's torch; see
  tests/reference/make_torch_goldens_efficientnet.py).
- The PyTorch-padded ones (.safetensors): timm's own `efficientnet_b0` (BN eps 1e-5)
  and torchvision's `efficientnet_b0` (eps 1e-5) and `efficientnet_v2_s` (eps 1e-3),
  recorded by the same script in tests/data/efficientnet_torch_goldens.json.gz.

All at 64 px with one compiled program per architecture, to keep these tests cheap.
"""

import functools
import importlib.util
import json
import pathlib
import sys
import types

import h5py
import jax
import numpy as np
import pytest

from configs import default
from videojax import extract, models
from videojax.models import checkpoint_io, create_backbone
from videojax.models import efficientnet as E

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / 'reference'))
from golden_weights import write_keras_h5  # noqa: E402

KERAS_GOLDENS = HERE / 'data' / 'keras_goldens_efficientnet.npz'
KERAS_FRAMES_SEED = 2
_spec = importlib.util.spec_from_file_location(
    'make_goldens', HERE / 'reference' / 'make_torch_goldens_efficientnet.py')
golden_lib = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden_lib)
GOLDEN = golden_lib.read(HERE / 'data' / 'efficientnet_timm_goldens.json')
TORCH_GOLDEN = golden_lib.read(HERE / 'data' / 'efficientnet_torch_goldens.json.gz')

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
    elif isinstance(m, torch.nn.Conv2d):  # N(0, 2 / fan_in): features that follow the input.
      m.weight.data.normal_(0, (2 / m.weight[0].numel()) ** 0.5, generator=g)
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
  np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
  # The features depend on the input far beyond the tolerance (other frames: 0.45 apart).
  assert np.abs(_features(apply, 'b0', variables, _frames(seed=1)) - got).max() > 100 * ATOL


# ---------------------------------------------------------------- Keras (.h5)


@pytest.fixture(scope='module')
def keras_files(tmp_path_factory):
  """case -> (arch, Keras 2 `.h5` path, Keras's pooled features f32[2, 1280], the
  Normalization values written or None): the files of make_keras_goldens_efficientnet.py,
  written again from their recorded skeleton and seeds."""
  data = np.load(KERAS_GOLDENS, allow_pickle=False)
  meta = json.loads(str(data['meta']))
  tmp = tmp_path_factory.mktemp('keras')
  out = {}
  for arch in NAMES:
    m = meta[arch]
    assert m['size'] == 64 and m['frames_seed'] == KERAS_FRAMES_SEED
    for case, fixed in (m['normalizations'] or {None: None}).items():
      key = arch if case is None else f'{arch}_{case}'
      # keras.applications' downloads (efficientnetb0_notop.h5, efficientnetv2-s_notop.h5)
      # are Keras 2 save_weights files: layer groups at the root, 'stem_conv/kernel:0'.
      path = tmp / f'{key}.h5'
      write_keras_h5(path, m['files']['keras2.h5'], m['seed'], m['variables'], m['gain'], fixed)
      out[key] = arch, path, data[key], fixed
  return out


# What our loader must make of each file's input layers: B0's Normalization (the file's
# mean m and variance v, Keras computing (x / 255 - m) / sqrt(v)); with Keras' ImageNet
# numbers v is the std (tensorflow#49930) and keras.applications adds Rescaling(1 /
# sqrt(std)), which the golden's reference run emulates, so (x / 255 - m) / std. V2-S:
# Rescaling(1 / 128, offset=-1).
_KERAS_SCALING = {
    'b0_imagenet': lambda fixed: (fixed['normalization/mean'], fixed['normalization/variance']),
    'b0_plain': lambda fixed: (fixed['normalization/mean'],
                               np.sqrt(fixed['normalization/variance'])),
    'v2_s': lambda fixed: ([128 / 255] * 3, [128 / 255] * 3),
}


@pytest.mark.parametrize('case', list(_KERAS_SCALING))
def test_keras2_h5_file_matches_keras(case, apply, keras_files):
  """Through a Keras 2 `.h5` file, read by layer and weight name with h5py."""
  arch, path, want, fixed = keras_files[case]
  variables = models.load_backbone_variables(NAMES[arch], apply[arch][0], str(path))
  mean, std = _KERAS_SCALING[case](fixed)
  np.testing.assert_allclose(variables['layout']['input_mean'], 255 * np.array(mean), rtol=1e-6)
  np.testing.assert_allclose(variables['layout']['input_std'], 255 * np.array(std), rtol=1e-6)
  got = _features(apply, arch, variables, _frames(seed=KERAS_FRAMES_SEED))
  # Measured 3.6e-7 (B0, both cases, features up to 0.7), 1.3e-6 (V2-S, up to 2.6). Other
  # frames change the features by 0.05-0.07; B0 without the variance quirk's factor by
  # 0.15, with the mean off by 1 (of 255) by 4e-3.
  np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize('case', ['b0_imagenet', 'v2_s'])
def test_keras3_model_names_give_the_same_variables(case, apply, keras_files):
  """`variables_from_keras_model`, the step after Keras 3 loads a `.weights.h5` / `.keras`
  (only Keras reads those: their groups go by position), on a stand-in for the built
  model: Keras 3's layer and weight names ('block1a_dwconv' / 'kernel'), as recorded."""
  arch, path, _, _ = keras_files[case]
  meta = json.loads(str(np.load(KERAS_GOLDENS, allow_pickle=False)['meta']))[arch]
  values = {}
  with h5py.File(path, 'r') as f:
    for dataset, i in meta['files']['keras2.h5']['datasets']:
      values[meta['variables'][i][0]] = f[dataset][()]
  layers = {}
  for name, _, _ in meta['variables']:  # model.weights order: 'stem_bn/gamma'.
    layer, weight = name.split('/')
    layers.setdefault(layer, []).append(
        types.SimpleNamespace(name=weight, numpy=functools.partial(np.asarray, values[name])))
  model = types.SimpleNamespace(layers=[types.SimpleNamespace(name=k, weights=v)
                                        for k, v in layers.items()])
  module = apply[arch][0]
  jax.tree_util.tree_map(np.testing.assert_array_equal,
                         E.variables_from_keras_model(model, module),
                         E.load_efficientnet_weights(path, module))


# ---------------------------------------------------------------- timm (.safetensors)


@pytest.mark.parametrize('arch, timm_name', [('b0', 'tf_efficientnet_b0'),
                                             ('v2_s', 'tf_efficientnetv2_s')])
def test_timm_layout_matches_timm_golden(arch, timm_name, apply, tmp_path):
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  golden = GOLDEN['models'][timm_name]
  path = tmp_path / f'{timm_name}.safetensors'
  save_file(golden_lib.fill(golden['keys'], GOLDEN['seed'], golden['gain']), str(path))
  variables = models.load_backbone_variables(NAMES[arch], apply[arch][0], str(path),
                                             layout='timm_tf')
  # timm feeds (x / 255 - mean) / std with its pretrained_cfg's numbers.
  np.testing.assert_allclose(variables['layout']['input_mean'],
                             255 * np.array(golden['mean']), rtol=1e-6)
  assert variables['layout']['tf_padding'] == 1
  got = _features(apply, arch, variables, golden_lib.frames())
  want = np.array(golden['features'])
  np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
  assert np.abs(want[0] - want[1]).max() > 100 * ATOL  # the two frames' features differ


# ------------------------------------------- PyTorch padding: timm, torchvision


@pytest.mark.parametrize('arch, ref, layout', [
    ('b0', 'efficientnet_b0', 'timm'),  # timm's keys: the user says which.
    ('b0', 'torchvision_efficientnet_b0', ''),  # torchvision's keys tell.
    ('v2_s', 'torchvision_efficientnet_v2_s', '')])
def test_pytorch_padded_layouts_match_golden(arch, ref, layout, apply, tmp_path):
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  golden = TORCH_GOLDEN['models'][ref]
  path = tmp_path / f'{ref}.safetensors'
  save_file(golden_lib.fill(golden['keys'], TORCH_GOLDEN['seed'], golden['gain']), str(path))
  variables = models.load_backbone_variables(NAMES[arch], apply[arch][0], str(path),
                                             layout=layout)
  np.testing.assert_allclose(variables['layout']['input_std'],
                             255 * np.array(golden['std']), rtol=1e-6)
  assert variables['layout']['tf_padding'] == 0
  frames = golden_lib.frames()
  got = _features(apply, arch, variables, frames)
  want = np.array(golden['features'])
  # Measured 6.6e-7 (B0, both files; features up to 1.3), 9.3e-7 (V2-S, up to 2.2).
  np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
  assert np.abs(want[0] - want[1]).max() > 100 * ATOL  # the two frames' features differ
  # TF padding instead moves the features by 0.41 (B0) and 0.21 (V2-S); B0's variances
  # left at the file's eps 1e-5 under the port's 1e-3 by 0.014.
  tf_padded = {**variables, 'layout': {**variables['layout'], 'tf_padding': np.int32(1)}}
  assert np.abs(_features(apply, arch, tf_padded, frames) - want).max() > 100 * ATOL
  if golden['bn_eps'] != [1e-3]:  # The file's variances as they are, under eps 1e-3.
    stats = jax.tree_util.tree_map_with_path(
        lambda p, a: a + (1e-3 - golden['bn_eps'][0]) if p[-1].key == 'var' else a,
        variables['batch_stats'])
    off = np.abs(_features(apply, arch, {**variables, 'batch_stats': stats}, frames) - want)
    assert off.max() > 10 * ATOL


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
  # PyTorch padding (pad_stride2, tf_padding=0) on an even side, in both paths (the whole
  # nets' goldens check the 'conv' path against torchvision and timm).
  x = x[:, :8, :8]
  np.testing.assert_allclose(jax.jit(shifted.apply)(variables, x, np.int32(0)),
                             jax.jit(block.apply)(variables, x, np.int32(0)), atol=1e-5, rtol=0)


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
    E.efficientnet_from_torch(missing, module, 'timm_tf')
  misshapen = dict(state)
  misshapen['blocks.3.0.se.conv_reduce.weight'] = state['blocks.3.0.se.conv_reduce.weight'][:-1]
  with pytest.raises(checkpoint_io.WeightsError,
                     match=r'blocks\.3\.0\.se\.conv_reduce\.weight: shape .*needs'):
    E.efficientnet_from_torch(misshapen, module, 'timm')
  extra = {**state, 'blocks.6.1.conv_pw.weight': np.zeros((1,), np.float32)}
  with pytest.raises(checkpoint_io.WeightsError, match=r'do not belong.*blocks\.6\.1\.conv_pw'):
    E.efficientnet_from_torch(extra, module, 'timm_tf')
  tv = TORCH_GOLDEN['models']['torchvision_efficientnet_b0']
  tv_state = golden_lib.fill(tv['keys'], 0)
  del tv_state['features.2.1.block.2.fc1.bias']
  with pytest.raises(checkpoint_io.WeightsError,
                     match=r'tensor features\.2\.1\.block\.2\.fc1\.bias is missing'):
    E.efficientnet_from_torch(tv_state, module)
  path = tmp_path / 'b0.h5'
  path.write_bytes(b'not hdf5')
  with pytest.raises(checkpoint_io.WeightsError, match=r'b0\.h5: not an HDF5 file'):
    E.load_efficientnet_weights(path, module)


def test_extraction_records_the_weights_layout_and_saves_its_padding(tmp_path):
  """extract.weights_layout reaches the loader, joins the features' spec (so it keys the
  features), and the padding it picks is saved in backbone.msgpack and read back."""
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  golden = TORCH_GOLDEN['models']['efficientnet_b0']
  path = tmp_path / 'efficientnet_b0.safetensors'
  save_file(golden_lib.fill(golden['keys'], TORCH_GOLDEN['seed'], golden['gain']), str(path))
  c = default.get_config()
  c.extract.backbone, c.extract.weights, c.extract.image_size = 'efficientnet_b0', str(path), 64
  unset = extract.extraction_spec(c)
  c.extract.weights_layout = 'timm'
  spec = extract.extraction_spec(c)
  assert 'weights_layout' not in unset and spec == {**unset, 'weights_layout': 'timm'}
  for _ in range(2):  # Loaded from the file, then read back from backbone.msgpack.
    _, variables = extract.load_or_init_backbone(spec, tmp_path)
    assert int(variables['layout']['tf_padding']) == 0


def test_weights_layout_is_asked_for_where_keys_do_not_tell(apply):
  """timm's tf_ and own EfficientNets share their keys: the user says which, in one line."""
  timm_keys = {'conv_stem.weight': np.zeros((32, 3, 3, 3), np.float32)}
  module = apply['b0'][0]
  with pytest.raises(checkpoint_io.WeightsError,
                     match=r'same keys: set extract.weights_layout to timm_tf or timm$'):
    E.efficientnet_from_torch(timm_keys, module)
  with pytest.raises(checkpoint_io.WeightsError,
                     match=r"weights_layout='torchvision' does not fit.*timm's: use timm_tf or"):
    E.efficientnet_from_torch(timm_keys, module, 'torchvision')
  with pytest.raises(checkpoint_io.WeightsError,
                     match=r'no timm EfficientNet v2_s checkpoints exist; use timm_tf or '
                           r'torchvision weights \(or Keras ones\)'):
    E.efficientnet_from_torch(timm_keys, apply['v2_s'][0], 'timm')
  assert models.BACKBONES['efficientnetv2_s'].layouts == ('timm_tf', 'torchvision')
  with pytest.raises(ValueError, match=r"weights_layout='timm': mobilenet_v2 reads its layout"):
    models.load_backbone_variables('mobilenet_v2', None, 'random-init', layout='timm')
  with pytest.raises(ValueError, match=r'efficientnet_b0 takes one of lukemelas, timm_tf, timm'):
    models.load_backbone_variables('efficientnet_b0', None, 'random-init', layout='tf')
  with pytest.raises(ValueError, match='unset it for random-init'):
    models.load_backbone_variables('efficientnet_b0', None, 'random-init', layout='timm')
