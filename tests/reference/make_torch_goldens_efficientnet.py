"""Writes tests/data/efficientnet_timm_goldens.json and efficientnet_torch_goldens.json.gz:
timm's and torchvision's own features for seeded weights.

The golden holds, per timm model, its state-dict keys and shapes, the seed, and the
pooled features f32[2, 1280] that timm computes for two seeded 64 px frames with
weights drawn by `fill` (numpy only, so tests/test_efficientnet_b0_v2.py draws the
same weights without timm, loads them with videojax's loader and compares). Not the
weights themselves: the file stays small.

Run in the reference venv (torch 2.14.1+cu130, torchvision 0.29.1, timm 1.0.31; the
main venv's torch 2.13 cannot import torchvision/timm), from the repository root:

  /work/refvenv/bin/python tests/reference/make_torch_goldens_efficientnet.py

Models: timm `tf_efficientnet_b0` and `tf_efficientnetv2_s`, the TF-ported ones
(TF 'SAME' padding, BN eps 1e-3), each fed as its pretrained_cfg says (mean/std), in
the first file; in the second (gzipped: torchvision's key lists are long), the
PyTorch-padded ones: timm `efficientnet_b0` (BN eps 1e-5), torchvision
`efficientnet_b0` (eps 1e-5) and `efficientnet_v2_s` (eps 1e-3), fed ImageNet mean/std
as their weights' transforms do. At 64 px every stride-2 conv sees an even side, where
TF and PyTorch padding differ.
"""

import gzip
import json
import math
import pathlib

import numpy as np

SEED = 0
IMAGE_SEED = 1
IMAGE_SIZE = 64
DATA = pathlib.Path(__file__).resolve().parents[1] / 'data'
# Output file -> {golden name: (library, model name)}.
OUTPUTS = {
    DATA / 'efficientnet_timm_goldens.json': {
        'tf_efficientnet_b0': ('timm', 'tf_efficientnet_b0'),
        'tf_efficientnetv2_s': ('timm', 'tf_efficientnetv2_s')},
    DATA / 'efficientnet_torch_goldens.json.gz': {
        'efficientnet_b0': ('timm', 'efficientnet_b0'),
        'torchvision_efficientnet_b0': ('torchvision', 'efficientnet_b0'),
        'torchvision_efficientnet_v2_s': ('torchvision', 'efficientnet_v2_s')},
}
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


# Conv weight variance gain / fan_in per model: enough that the features follow the input
# (B0 at gain 1 changed by 4e-6 between frames, below the tests' tolerance), not so much
# that they blow up through the blocks.
GAINS = {'tf_efficientnet_b0': 2.0, 'tf_efficientnetv2_s': 1.0, 'efficientnet_b0': 2.0,
         'torchvision_efficientnet_b0': 2.0, 'torchvision_efficientnet_v2_s': 1.0}


def fill(keys_shapes: list[tuple[str, tuple[int, ...]]], seed: int,
         gain: float = 1.0) -> dict[str, np.ndarray]:
  """Deterministic tensors for a state dict, one np.random.default_rng([seed, i]) per tensor.

  Conv weights N(0, gain / fan_in); BN weight U(0.5, 1.5), running_var U(0.5, 1.5)
  (positive), running_mean and biases N(0, 0.1); num_batches_tracked 0.
  """
  out = {}
  for i, (name, shape) in enumerate(keys_shapes):
    shape = tuple(shape)
    rng = np.random.default_rng([seed, i])
    leaf = name.rsplit('.', 1)[-1]
    if leaf == 'num_batches_tracked':
      out[name] = np.zeros(shape, np.int64)
      continue
    if leaf in ('running_var',) or (leaf == 'weight' and len(shape) == 1):
      t = rng.uniform(0.5, 1.5, shape)
    elif leaf in ('running_mean', 'bias'):
      t = rng.normal(0.0, 0.1, shape)
    else:
      t = rng.normal(0.0, math.sqrt(gain / math.prod(shape[1:])), shape)
    out[name] = t.astype(np.float32)
  return out


def frames() -> np.ndarray:
  """The two input frames u8[2, 64, 64, 3]."""
  return np.random.default_rng(IMAGE_SEED).integers(0, 256, (2, IMAGE_SIZE, IMAGE_SIZE, 3),
                                                    dtype=np.uint8)


def read(path: pathlib.Path) -> dict:
  """A golden file written by `main` (gzipped where its name ends in .gz)."""
  data = path.read_bytes()
  return json.loads(gzip.decompress(data) if path.suffix == '.gz' else data)


def main():
  import timm  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import torchvision  # pylint: disable=g-import-not-at-top
  versions = {'torch': torch.__version__, 'torchvision': torchvision.__version__,
              'timm': timm.__version__, 'numpy': np.__version__}
  x = frames().astype(np.float64) / 255
  for out, models in OUTPUTS.items():
    golden = {'versions': versions, 'seed': SEED, 'image_seed': IMAGE_SEED,
              'image_size': IMAGE_SIZE, 'models': {}}
    for name, (library, model_name) in models.items():
      if library == 'timm':
        model = timm.create_model(model_name, pretrained=False).eval()
        mean, std = model.pretrained_cfg['mean'], model.pretrained_cfg['std']
        forward = model.forward_features
      else:  # torchvision's weights' transforms: ImageClassification's ImageNet mean/std.
        model = getattr(torchvision.models, model_name)(weights=None).eval()
        mean, std = IMAGENET
        forward = model.features
      keys_shapes = [(k, list(v.shape)) for k, v in model.state_dict().items()]
      model.load_state_dict({k: torch.from_numpy(v)
                             for k, v in fill(keys_shapes, SEED, GAINS[name]).items()})
      eps = sorted({m.eps for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)})

      def pooled_features(x, forward=forward, mean=mean, std=std):
        inp = ((x - mean) / std).astype(np.float32).transpose(0, 3, 1, 2)
        with torch.no_grad():
          feats = forward(torch.from_numpy(np.ascontiguousarray(inp)))
        return feats.mean(dim=(2, 3)).numpy()
      pooled = pooled_features(x)
      spread = np.abs(pooled_features(x[::-1]) - pooled).max()
      if spread < 1e-2:
        raise SystemExit(f'{name}: features barely depend on the input ({spread:.1e}); '
                         'raise GAINS')
      golden['models'][name] = {
          'library': library, 'model': model_name, 'bn_eps': eps, 'mean': list(mean),
          'std': list(std), 'gain': GAINS[name], 'keys': keys_shapes,
          'features': [[float(f'{v:.8g}') for v in row] for row in pooled.tolist()]}
      print(name, pooled.shape, 'max', float(np.abs(pooled).max()), 'frames apart', spread,
            'BN eps', eps)
    text = json.dumps(golden, separators=(',', ':')) + '\n'
    if out.suffix == '.gz':  # mtime 0: the same bytes on every run.
      out.write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
      out.write_text(text)
    print(out, out.stat().st_size, 'bytes')


if __name__ == '__main__':
  main()
