"""Torchvision/timm ResNet weights into the Flax ResNet, against a torch ResNet.

The reference is `transformers.ResNetModel` (PyTorch, random init), not code
written here. Its BatchNorm stats and affine params are randomised (identity
BatchNorm would hide a mis-mapped mean/var/scale/bias), its state dict is
renamed to torchvision's names by a table in this file (standing in for a
torchvision download), written with torch.save (zip and legacy) and
safetensors, and read back through `load_torch_weights`. CPU only, nothing
downloaded.
"""

import copy
import functools
import os
import pickle
import re
import shutil
import struct
import zipfile

import jax
import numpy as np
import pytest

torch = pytest.importorskip(
    'torch', reason='torch writes the reference checkpoints')
transformers = pytest.importorskip(
    'transformers', reason='transformers.ResNetModel is the reference ResNet')
safetensors_torch = pytest.importorskip(
    'safetensors.torch', reason='safetensors writes .safetensors files')

from videojax.models.checkpoint_io import (  # noqa: E402
    WeightsError, load_state_dict)
from videojax.models.resnet import (  # noqa: E402
    BasicBlock, Bottleneck, ResNet, load_torch_weights, variables_from_torch)

# Max abs difference of pooled fp32 features (O(1), checked below), ours vs
# torch's fp32 forward. ResNet18 meets 1e-4 (measured 1e-5 avg, 3e-5 grid).
# ResNet50 cannot: torch's own fp32 grid features are ~5.6e-4 from its
# float64 ones (53 layers), ours ~4.9e-4, and the two fp32 runs differ by
# ~4.7e-4. One mis-mapped tensor moves features by >= 4 (see
# test_tolerance_catches_one_wrong_tensor), so 1e-3 still separates rounding
# from bugs by 1000x. RNDOFF_RATIO is the tighter check: our fp32 error
# against torch's float64 answer is at most 1.5x torch's own fp32 error.
ATOL = {'resnet18': 1e-4, 'resnet50': 1e-3}
RNDOFF_RATIO = 1.5
# Final map 2x3: 80 wide passes through an odd 5 (padding of strided convs),
# and 2x2 grid bins overlap along the width, as AdaptiveAvgPool2d's do.
X_SHAPE = (2, 64, 80, 3)
GRID = 2
# name -> (stage_sizes, block_cls, HF layer_type, HF hidden_sizes).
ARCHS = {
    'resnet18': ((2, 2, 2, 2), BasicBlock, 'basic', (64, 128, 256, 512)),
    'resnet50': ((3, 4, 6, 3), Bottleneck, 'bottleneck',
                 (256, 512, 1024, 2048)),
}
FORMATS = ('zip', 'legacy', 'safetensors')


def _torchvision_name(hf_name: str) -> str:
  """HF ResNetModel tensor name -> torchvision's, e.g.

  encoder.stages.1.layers.0.layer.2.normalization.running_var
    -> layer2.0.bn3.running_var
  encoder.stages.1.layers.0.shortcut.convolution.weight
    -> layer2.0.downsample.0.weight
  """
  m = re.fullmatch(r'embedder\.embedder\.(convolution|normalization)\.(\w+)',
                   hf_name)
  if m:
    return f"{'conv1' if m[1] == 'convolution' else 'bn1'}.{m[2]}"
  m = re.fullmatch(r'encoder\.stages\.(\d+)\.layers\.(\d+)\.'
                   r'(?:layer\.(\d+)|shortcut)\.(convolution|normalization)\.'
                   r'(\w+)', hf_name)
  if m is None:
    raise KeyError(f'no torchvision name for HF tensor {hf_name!r}')
  stage, block, k, op, leaf = m.groups()
  is_conv = op == 'convolution'
  if k is None:
    module = 'downsample.0' if is_conv else 'downsample.1'
  else:
    module = f"{'conv' if is_conv else 'bn'}{int(k) + 1}"
  return f'layer{int(stage) + 1}.{block}.{module}.{leaf}'


@functools.cache
def _reference(arch: str):
  """(HF model, torchvision-named state, x, avg, grid, avg64, grid64).

  x: f32[n, h, w, 3]; avg: f32[n, d]; grid: f32[n, d * GRID^2] in (row,
  column, channel) order; avg64, grid64: the same from torch in float64 on
  the same (fp32) weights, as the exact answer.
  """
  sizes, _, layer_type, hidden = ARCHS[arch]
  torch.manual_seed(0)
  config = transformers.ResNetConfig(
      depths=list(sizes), hidden_sizes=list(hidden), layer_type=layer_type,
      embedding_size=64)
  model = transformers.ResNetModel(config)
  gen = torch.Generator().manual_seed(1)
  norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
  # Random affine params, and running stats from one train-mode pass on other
  # random images: per-channel values far from 0 and 1, so no BatchNorm is an
  # identity, while activations stay O(1) through the residual sums. (Purely
  # random stats blow ResNet50 features up to ~100, where fp32 rounding
  # alone exceeds ATOL.)
  with torch.no_grad():
    for m in norms:
      m.weight.uniform_(0.5, 1.5, generator=gen)
      m.bias.normal_(0.0, 0.2, generator=gen)
      m.reset_running_stats()
      m.momentum = None  # Running stats = this batch's stats.
    model.train()(torch.randn(4, 3, *X_SHAPE[1:3], generator=gen))
  model.eval()
  x = np.random.default_rng(0).standard_normal(X_SHAPE, dtype=np.float32)

  def features(net, dtype):
    with torch.no_grad():
      out = net(torch.from_numpy(x).permute(0, 3, 1, 2).to(dtype))
      grid = torch.nn.functional.adaptive_avg_pool2d(
          out.last_hidden_state, GRID)
      return (out.pooler_output.flatten(1).numpy(),
              grid.permute(0, 2, 3, 1).flatten(1).numpy())

  avg, grid = features(model, torch.float32)
  avg64, grid64 = features(copy.deepcopy(model).double(), torch.float64)
  state = {_torchvision_name(k): v.clone()
           for k, v in model.state_dict().items()}
  # A classifier, as torchvision files have; the backbone must ignore it.
  state['fc.weight'] = torch.randn(10, hidden[-1], generator=gen)
  state['fc.bias'] = torch.zeros(10)
  return model, state, x, avg, grid, avg64, grid64


def _save(state: dict, path, fmt: str):
  if fmt == 'zip':
    torch.save(state, path)
  elif fmt == 'legacy':
    torch.save(state, path, _use_new_zipfile_serialization=False)
  else:
    safetensors_torch.save_file(state, str(path))
  return path


@pytest.fixture(scope='module')
def saved(tmp_path_factory):
  """(arch, fmt) -> path of the reference weights saved in that format."""
  root = tmp_path_factory.mktemp('weights')

  @functools.cache
  def get(arch: str, fmt: str):
    suffix = '.safetensors' if fmt == 'safetensors' else '.pth'
    return _save(_reference(arch)[1], root / f'{arch}_{fmt}{suffix}', fmt)

  yield get
  shutil.rmtree(root)  # ~450 MB; pytest would keep it for three runs.


def _numpy_state(arch: str) -> dict[str, np.ndarray]:
  return {k: v.numpy() for k, v in _reference(arch)[1].items()}


@functools.cache
def _features(arch: str):
  """Jitted (variables, x) -> (avg, grid) features; compiles once per arch."""
  sizes, block, _, _ = ARCHS[arch]
  avg = ResNet(sizes, block, pooling='avg')
  grid = ResNet(sizes, block, pooling='grid', grid_size=GRID)
  return jax.jit(lambda v, x: (avg.apply(v, x), grid.apply(v, x)))


def test_reference_is_resnet_v1_5():
  """HF's ResNet must be the architecture we claim to compare against."""
  r50 = _reference('resnet50')[0]
  assert not r50.config.downsample_in_bottleneck  # Stride on the 3x3.
  assert not r50.config.downsample_in_first_stage
  first = r50.encoder.stages[1].layers[0]
  assert [c.convolution.stride for c in first.layer] == [(1, 1), (2, 2), (1, 1)]
  assert first.shortcut.convolution.stride == (2, 2)
  r18 = _reference('resnet18')[0]
  first = r18.encoder.stages[1].layers[0]
  assert [c.convolution.stride for c in first.layer] == [(2, 2), (1, 1)]
  assert isinstance(r18.encoder.stages[0].layers[0].shortcut, torch.nn.Identity)


@pytest.mark.parametrize('fmt', FORMATS)
@pytest.mark.parametrize('arch', ARCHS)
def test_features_match_torch_reference(arch, fmt, saved):
  _, _, x, *want = _reference(arch)
  sizes, block, _, _ = ARCHS[arch]
  variables = load_torch_weights(saved(arch, fmt), sizes, block)
  shapes = jax.eval_shape(ResNet(sizes, block).init, jax.random.key(0), x)
  assert jax.tree.structure(variables) == jax.tree.structure(shapes)
  got = [np.asarray(f) for f in _features(arch)(variables, x)]
  want_avg, want_grid, avg64, grid64 = want
  # Features of size ~1, so ATOL is a tight bound, not a vacuous one.
  assert 0.3 < np.abs(want_avg).mean() and np.abs(want_avg).max() < 10
  for ours, torch32, exact in [(got[0], want_avg, avg64),
                               (got[1], want_grid, grid64)]:
    assert np.abs(ours - torch32).max() <= ATOL[arch]
    assert (np.abs(ours - exact).max()
            <= RNDOFF_RATIO * np.abs(torch32 - exact).max() + 1e-6)


@pytest.mark.parametrize('arch', ARCHS)
def test_tolerance_catches_one_wrong_tensor(arch):
  """A single 3x3 kernel flipped in space, in the last block, fails ATOL."""
  _, _, x, want_avg, _, _, _ = _reference(arch)
  sizes, block, _, _ = ARCHS[arch]
  state = _numpy_state(arch)
  name = f'layer4.{sizes[-1] - 1}.conv2.weight'
  state[name] = state[name][:, :, ::-1, ::-1]
  avg, _ = _features(arch)(variables_from_torch(state, sizes, block), x)
  assert np.abs(np.asarray(avg) - want_avg).max() > 1000 * ATOL[arch]


def test_resnet50_file_into_resnet18_names_tensor_and_architecture(saved):
  path = saved('resnet50', 'safetensors')
  with pytest.raises(WeightsError) as e:
    load_torch_weights(path, (2, 2, 2, 2), BasicBlock)
  msg = str(e.value)
  assert str(path) in msg
  assert re.search(r'layer\d\.\d\.(conv3|bn3|downsample\.\d)\.\w+', msg)
  assert 'another architecture: resnet50' in msg


def test_resnet18_weights_into_resnet50_name_missing_tensors():
  with pytest.raises(WeightsError, match=r'missing: layer1\.0\.bn3\.bias.*'
                     r'another architecture: resnet18'):
    variables_from_torch(_numpy_state('resnet18'), (3, 4, 6, 3), Bottleneck)


def test_missing_key_is_named():
  state = _numpy_state('resnet18')
  del state['layer3.1.bn2.running_var']
  with pytest.raises(WeightsError) as e:
    variables_from_torch(state, (2, 2, 2, 2), BasicBlock)
  assert '1 tensor(s) missing: layer3.1.bn2.running_var' in str(e.value)
  assert 'architecture' not in str(e.value)


def test_wrong_shape_is_named_with_both_shapes():
  state = _numpy_state('resnet18')
  state['layer2.0.conv2.weight'] = np.zeros((128, 128, 1, 1), np.float32)
  with pytest.raises(WeightsError, match=re.escape(
      'layer2.0.conv2.weight expected (128, 128, 3, 3), got (128, 128, 1, 1)')):
    variables_from_torch(state, (2, 2, 2, 2), BasicBlock)


def test_kernels_are_hwio_and_stats_are_batch_stats():
  state = _numpy_state('resnet18')
  v = variables_from_torch(state, (2, 2, 2, 2), BasicBlock)
  np.testing.assert_array_equal(
      v['params']['layer2_0']['downsample_conv']['kernel'],
      state['layer2.0.downsample.0.weight'].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(v['batch_stats']['layer4_1']['bn2']['var'],
                                state['layer4.1.bn2.running_var'])


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
def test_truncated_file_is_refused(fmt, saved, tmp_path):
  data = saved('resnet18', fmt).read_bytes()
  path = tmp_path / 'cut.pth'
  path.write_bytes(data[:len(data) // 2])
  with pytest.raises(WeightsError, match='truncated'):
    load_torch_weights(path, (2, 2, 2, 2), BasicBlock)


def test_damaged_zip_member_is_refused(saved, tmp_path):
  """A flipped byte in a storage fails the zip CRC; that is a WeightsError."""
  src = saved('resnet18', 'zip')
  data = bytearray(src.read_bytes())
  with zipfile.ZipFile(src) as z:
    info = next(i for i in z.infolist() if '/data/' in i.filename)
  # Local header: 30 bytes, then the name and extra field, then the data.
  name_len, extra_len = struct.unpack(
      '<HH', data[info.header_offset + 26:info.header_offset + 30])
  data[info.header_offset + 30 + name_len + extra_len] ^= 0xFF
  path = tmp_path / 'damaged.pth'
  path.write_bytes(data)
  with pytest.raises(WeightsError, match='CRC'):
    load_state_dict(path)


class _RunsCommand:
  """Unpickles as a call of os.system: what a hostile weights file does."""

  def __init__(self, marker):
    self.marker = marker

  def __reduce__(self):
    return (os.system, (f'touch {self.marker}',))


class _NotATensor:
  pass


@pytest.mark.parametrize('where', ['header', 'body'])
def test_legacy_pickle_with_other_globals_is_refused(where, tmp_path):
  """Every pickle of the legacy stream goes through the allow-list."""
  marker = tmp_path / 'code_ran'
  path = tmp_path / 'evil.pth'
  with open(path, 'wb') as f:
    if where == 'body':  # A valid header, as torch's legacy writer puts it.
      pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
      pickle.dump(1001, f, protocol=2)
      pickle.dump({'protocol_version': 1001, 'little_endian': True}, f,
                  protocol=2)
    pickle.dump({'w': _RunsCommand(marker)}, f, protocol=2)
    pickle.dump([], f, protocol=2)
  with pytest.raises(WeightsError, match='refusing to load .*system'):
    load_state_dict(path)
  assert not marker.exists()


@pytest.mark.parametrize('fmt', ['zip', 'legacy'])
def test_torch_save_of_non_tensor_object_is_refused(fmt, tmp_path):
  path = _save({'w': torch.zeros(2), 'x': _NotATensor()}, tmp_path / 'o.pth',
               fmt)
  with pytest.raises(WeightsError, match='refusing to load .*_NotATensor'):
    load_state_dict(path)
