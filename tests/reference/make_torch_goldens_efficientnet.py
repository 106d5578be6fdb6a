"""Writes tests/data/efficientnet_timm_goldens.json: timm's own features for seeded weights.

The golden holds, per timm model, its state-dict keys and shapes, the seed, and the
pooled features f32[2, 1280] that timm computes for two seeded 64 px frames with
weights drawn by `fill` (numpy only, so tests/test_efficientnet_b0_v2.py draws the
same weights without timm, loads them with videojax's loader and compares). Not the
weights themselves: the file stays small.

Run in the reference venv (torch 2.14.1+cu130, torchvision 0.29.1, timm 1.0.31; the
main venv's torch 2.13 cannot import torchvision/timm), from the repository root:

  /work/refvenv/bin/python tests/reference/make_torch_goldens_efficientnet.py

Models: timm `tf_efficientnet_b0` and `tf_efficientnetv2_s`, the TF-ported ones
(TF 'SAME' padding, BN eps 1e-3), each fed as its pretrained_cfg says (mean/std).
"""

import json
import math
import pathlib

import numpy as np

SEED = 0
IMAGE_SEED = 1
IMAGE_SIZE = 64
MODELS = ('tf_efficientnet_b0', 'tf_efficientnetv2_s')
OUT = pathlib.Path(__file__).resolve().parents[1] / 'data' / 'efficientnet_timm_goldens.json'


# Conv weight variance gain / fan_in per model: enough that the features follow the input
# (B0 at gain 1 changed by 4e-6 between frames, below the tests' tolerance), not so much
# that they blow up through the blocks.
GAINS = {'tf_efficientnet_b0': 2.0, 'tf_efficientnetv2_s': 1.0}


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


def main():
  import timm  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import torchvision  # pylint: disable=g-import-not-at-top
  golden = {'versions': {'torch': torch.__version__, 'torchvision': torchvision.__version__,
                         'timm': timm.__version__, 'numpy': np.__version__},
            'seed': SEED, 'image_seed': IMAGE_SEED, 'image_size': IMAGE_SIZE, 'models': {}}
  x = frames().astype(np.float64) / 255
  for name in MODELS:
    model = timm.create_model(name, pretrained=False).eval()
    keys_shapes = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    model.load_state_dict({k: torch.from_numpy(v)
                           for k, v in fill(keys_shapes, SEED, GAINS[name]).items()})
    mean, std = model.pretrained_cfg['mean'], model.pretrained_cfg['std']

    def pooled_features(x):
      inp = ((x - mean) / std).astype(np.float32).transpose(0, 3, 1, 2)
      with torch.no_grad():
        feats = model.forward_features(torch.from_numpy(np.ascontiguousarray(inp)))
      return feats.mean(dim=(2, 3)).numpy()
    pooled = pooled_features(x)
    spread = np.abs(pooled_features(x[::-1]) - pooled).max()
    if spread < 1e-2:
      raise SystemExit(f'{name}: features barely depend on the input ({spread:.1e}); raise GAINS')
    golden['models'][name] = {
        'mean': list(mean), 'std': list(std), 'gain': GAINS[name], 'keys': keys_shapes,
        'features': [[float(f'{v:.8g}') for v in row] for row in pooled.tolist()]}
    print(name, pooled.shape, float(np.abs(pooled).max()))
  OUT.write_text(json.dumps(golden, separators=(',', ':')) + '\n')
  print(OUT, OUT.stat().st_size, 'bytes')


if __name__ == '__main__':
  main()
