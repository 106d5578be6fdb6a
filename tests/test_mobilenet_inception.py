"""MobileNetV2 and InceptionV3 against keras.applications, torchvision and timm, with
random weights and random BatchNorm statistics loaded through our loaders.

The reference features were computed by those libraries (tests/reference/
make_keras_goldens.py, make_torch_goldens.py: the commands and versions are in
their docstrings); the golden files hold the references' outputs, the weight
seeds and the files' names and shapes, and the tests write the weight files
again (Keras `.weights.h5` / legacy `.h5` / `.keras`, torch `.pth`,
`.safetensors`) and load them with videojax's loaders.
"""
import json
import pathlib
import sys
import zipfile

import jax
import numpy as np
import pytest
from safetensors.numpy import save_file

from videojax import models
from videojax.models import backbones, checkpoint_io, depthwise, pooling
from videojax.models import inception_v3 as I
from videojax.models import mobilenet_v2 as M

sys.path.insert(0, str(pathlib.Path(__file__).parent / 'reference'))
from golden_weights import golden_frames, golden_state, write_keras_h5  # noqa: E402

GOLDENS = pathlib.Path(__file__).parent / 'data' / 'torch_goldens.npz'
KERAS_GOLDENS = pathlib.Path(__file__).parent / 'data' / 'keras_goldens.npz'
# Pooled features reach 6 (ReLU6) and 8; fp32, with other conv algorithms than the
# references'. Measured max abs differences: MobileNetV2 6-7e-5 against Keras,
# torchvision and timm (17 blocks of activations near 6; 2e-7 with Keras's
# smaller default init), InceptionV3 5e-6 (torchvision) and 7e-6 (Keras).
ATOL = 3e-4
# One input side per backbone, so each compiles once: 72 px gives MobileNetV2 even
# sides (where TF and PyTorch pad stride-2 convs differently) and odd ones; 139 px
# leaves InceptionV3's last blocks a 3x3 map, so every tap and pool border counts.
SIZES = {'mobilenet_v2': 72, 'inception_v3': 139}
FRAMES_SEED = 7


@pytest.fixture(scope='module')
def apply_map():
  """(name, variables, frames u8) -> the final map, jitted once per backbone."""
  fns = {}

  def run(name, variables, frames):
    if name not in fns:
      module = models.create_backbone(name, pooling='map')
      fns[name] = jax.jit(lambda v, f: module.apply(v, models.preprocess_frames(name, f)))
    return np.asarray(fns[name](variables, frames))
  return run


def _load(name, path):
  return models.load_backbone_variables(name, models.create_backbone(name), str(path))


def _check_poolings(name, fmap, want):
  """The final map's mean is the reference's pooled features; the map has the
  spec's width, and 'avg' / 'grid' pool it (pooling.pool, shared by all backbones)."""
  np.testing.assert_allclose(fmap.mean(axis=(1, 2)), want, rtol=0, atol=ATOL)
  width = backbones.get(name).width
  assert fmap.shape[-1] == width
  assert pooling.pool(fmap, 'grid', 2).shape == (len(fmap), models.backbone_feature_dim(
      name, 'grid', 2))


def _keras2_style(skeleton):
  """The skeleton of a Keras 3 model.save('x.h5') as Keras 2's save_weights wrote it."""
  def weight(name):  # 'block_1_depthwise/kernel' -> 'block_1_depthwise/depthwise_kernel:0'
    layer, var = name.rsplit('/', 1)
    if var == 'kernel' and layer.endswith('depthwise'):
      var = 'depthwise_kernel'
    return f'{layer}/{var}:0'

  def group(name):
    return name.removeprefix('model_weights').lstrip('/') or '/'

  attrs = {group(g): {k: [weight(w) for w in v] if k == 'weight_names' else v
                      for k, v in a.items()} for g, a in skeleton['attrs'].items()}
  datasets = [['/'.join([d.split('/')[1], weight(d.split('/', 2)[2])]), i]
              for d, i in skeleton['datasets']]
  return {'attrs': attrs, 'datasets': datasets}


@pytest.fixture(scope='module')
def keras_files(tmp_path_factory):
  """name -> ({format: path}, Keras's pooled features f32[2, d]): the files Keras
  wrote for make_keras_goldens.py, written again from their recorded skeletons."""
  data = np.load(KERAS_GOLDENS, allow_pickle=False)
  meta = json.loads(str(data['meta']))
  tmp = tmp_path_factory.mktemp('keras')
  out = {}
  for name in SIZES:
    m = meta[name]
    assert m['size'] == SIZES[name] and m['frames_seed'] == FRAMES_SEED
    files = {}
    for fmt, skeleton in m['files'].items():
      files[fmt] = tmp / f'{name}.{fmt}'
      write_keras_h5(files[fmt], skeleton, m['seed'], m['variables'])
    if 'h5' in files:
      # The keras.applications downloads were written by Keras 2 save_weights: layer
      # groups at the root, weights named 'Conv1/kernel:0', 'depthwise_kernel:0'.
      files['keras2.h5'] = tmp / f'{name}.keras2.h5'
      write_keras_h5(files['keras2.h5'], _keras2_style(m['files']['h5']), m['seed'],
                     m['variables'])
      # Keras 3's .keras: a zip holding the .weights.h5 (and the config, not read).
      files['keras'] = tmp / f'{name}.keras'
      with zipfile.ZipFile(files['keras'], 'w') as z:
        z.write(files['weights.h5'], 'model.weights.h5')
    out[name] = files, data[name]
  return out


@pytest.mark.parametrize('name', ['mobilenet_v2', 'inception_v3'])
def test_matches_keras(name, keras_files, apply_map):
  files, ref = keras_files[name]
  frames = golden_frames(FRAMES_SEED, 2, SIZES[name])
  for fmt, path in files.items():
    variables = _load(name, path)
    fmap = apply_map(name, variables, frames)
    err = np.abs(fmap.mean(axis=(1, 2)) - ref).max()
    assert err < ATOL, (fmt, err)
  _check_poolings(name, fmap, ref)


@pytest.fixture(scope='module')
def goldens():
  data = np.load(GOLDENS, allow_pickle=False)
  meta = json.loads(str(data['meta']))
  return {k: (v, data[k]) for k, v in meta.items() if k != 'versions'}


# cpu_kernels=True (depthwise convs as shifted sums, as extraction runs on CPU) matches
# too (7e-5 against timm and Keras), but another MobileNetV2 compile costs 4 s; the
# shifted conv's padding is checked in test_padding_and_pools_follow_the_layout, the
# shifted sums in test_efficientnet.
@pytest.mark.parametrize('ref, name', [
    ('torchvision_mobilenet_v2', 'mobilenet_v2'),
    ('timm_mobilenetv2_100', 'mobilenet_v2'),
    ('torchvision_inception_v3', 'inception_v3'),
])
def test_matches_torch_goldens(ref, name, goldens, apply_map, tmp_path):
  # .safetensors, not .pth: importing torch would cost seconds, and checkpoint_io's
  # tests cover reading .pth files into the same state dicts.
  meta, want = goldens[ref]
  assert meta['size'] == SIZES[name] and meta['frames_seed'] == FRAMES_SEED
  path = tmp_path / f'{ref}.safetensors'
  save_file(golden_state(meta['seed'], meta['keys']), str(path))
  variables = _load(name, path)
  frames = golden_frames(FRAMES_SEED, 2, meta['size'])
  fmap = apply_map(name, variables, frames)
  _check_poolings(name, fmap, want)


def test_loader_errors_name_the_tensors(goldens, keras_files, tmp_path):
  meta, _ = goldens['torchvision_mobilenet_v2']
  state = golden_state(meta['seed'], meta['keys'])
  del state['features.3.conv.1.0.weight']
  state['features.18.1.running_var'] = np.ones(7, np.float32)
  state['features.19.weight'] = np.ones(3, np.float32)
  save_file(state, str(tmp_path / 'bad.safetensors'))
  with pytest.raises(checkpoint_io.WeightsError) as e:
    _load('mobilenet_v2', tmp_path / 'bad.safetensors')
  msg = str(e.value)
  assert msg.startswith(str(tmp_path / 'bad.safetensors'))
  for part in ('does not have: features.19.weight', 'missing: features.3.conv.1.0.weight',
               'features.18.1.running_var has shape (7,)'):
    assert part in msg, msg
  # A Keras MobileNetV2 file is not an InceptionV3: the layers are named.
  with pytest.raises(checkpoint_io.WeightsError, match=r'conv layer\(s\) missing from the '
                     r'file: .*; \d+ depthwise layer\(s\) the model does not have: '
                     r'expanded_conv_depthwise'):
    _load('inception_v3', keras_files['mobilenet_v2'][0]['h5'])
  with pytest.raises(ValueError, match=r'no ImageNet weights ship for inception_v3: .*Keras'):
    models.backbone_weights_path('inception_v3', 'imagenet')


def test_padding_and_pools_follow_the_layout():
  """The pieces the ports add: the TF / PyTorch stride-2 padding switch, the shifted
  depthwise conv on pre-padded input (what cpu_kernels runs) and the two average pools."""
  rng = np.random.default_rng(0)
  x = rng.standard_normal((1, 6, 7, 4)).astype(np.float32)  # Height even, width odd.
  kernel = rng.standard_normal((3, 3, 1, 4)).astype(np.float32)
  ones = np.ones((1, 3, 4, 1), np.float32)

  def conv(inp, pads):
    return jax.lax.conv_general_dilated(inp, kernel, (2, 2), pads, feature_group_count=4,
                                        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))

  @jax.jit  # One program: eagerly, each op would compile on its own.
  def outputs():
    out = []
    for tf, pads in ((1, ((0, 1), (1, 1))), (0, ((1, 1), (1, 1)))):
      padded = M.pad_stride2(x, np.int32(tf))
      out += [conv(x, pads), conv(padded, 'VALID'),
              depthwise.shifted_depthwise_conv(padded, kernel, 2, 'VALID')]
    return out, I.avg_pool_3x3(ones, np.int32(1)), I.avg_pool_3x3(ones, np.int32(0))
  convs, tf_pool, torch_pool = outputs()
  for i in (0, 3):
    np.testing.assert_allclose(convs[i + 1], convs[i], atol=1e-5)
    np.testing.assert_allclose(convs[i + 2], convs[i], atol=1e-5)
  np.testing.assert_allclose(tf_pool, ones)  # TF: the mean of the pixels inside.
  assert torch_pool[0, 0, 0, 0] == pytest.approx(4 / 9)  # PyTorch: padding counts.
