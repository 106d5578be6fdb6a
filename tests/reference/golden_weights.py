"""Deterministic weights from a state dict's names and shapes (numpy only).

Shared by make_torch_goldens.py (run beside torch/torchvision/timm, it fills a
reference model with these weights) and test_mobilenet_inception.py (which
regenerates the same tensors and loads them into videojax's port), so a golden
file records names, shapes and a seed instead of the weights themselves.
"""
import numpy as np


def golden_frames(seed: int, n: int, size: int) -> np.ndarray:
  """Random RGB frames u8[n, size, size, 3]."""
  return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


# Keras variable names -> the torch names whose distribution they get.
KERAS_ROLES = {'gamma': 'weight', 'beta': 'bias', 'moving_mean': 'running_mean',
               'moving_variance': 'running_var', 'kernel': 'weight', 'bias': 'bias'}


def golden_tensor(seed: int, index: int, name: str, shape: tuple[int, ...],
                  dtype: str, keras: bool = False, gain: float = 2.0) -> np.ndarray:
  """Tensor `index` of a state dict, from np.random.default_rng([seed, index]).

  Conv / linear weights ~ N(0, gain / fan_in) (activations stay O(1) through
  the net; the EfficientNet goldens take gain 1 for swish); BatchNorm weight 1 + N(0, 0.1^2) (up to 0.3 apart), bias and running
  mean N(0, 0.1^2), running var U(0.5, 1.5) (positive); integer tensors
  (num_batches_tracked) 0. `keras`: `name` ends in a Keras variable name
  (gamma, moving_variance, ...) and kernels are f32[kh, kw, i, o] (depthwise
  f32[kh, kw, c, 1]).
  """
  if not np.issubdtype(np.dtype(dtype), np.floating):
    return np.zeros(shape, dtype)
  rng = np.random.default_rng([seed, index])
  if keras:
    name = KERAS_ROLES[name.rsplit('/', 1)[-1]]
    fan_in = np.prod(shape[:2]) * (shape[2] if len(shape) == 4 and shape[3] != 1 else 1)
  else:
    fan_in = np.prod(shape[1:])
  if name.endswith('running_var'):
    x = rng.uniform(0.5, 1.5, shape)
  elif len(shape) >= 2:
    x = rng.normal(0.0, np.sqrt(gain / fan_in), shape)
  elif name.endswith('weight'):
    x = 1.0 + rng.normal(0.0, 0.1, shape)
  else:
    x = rng.normal(0.0, 0.1, shape)
  return x.astype(dtype)


def golden_state(seed: int, keys: list[tuple[str, tuple[int, ...], str]]) -> dict[str, np.ndarray]:
  """name -> tensor for (name, shape, dtype) `keys` in state-dict order."""
  return {name: golden_tensor(seed, i, name, tuple(shape), dtype)
          for i, (name, shape, dtype) in enumerate(keys)}


def write_keras_h5(path, skeleton: dict, seed: int, variables: list, gain: float = 2.0,
                   fixed: dict | None = None) -> None:
  """Writes a Keras HDF5 file from a skeleton make_keras_goldens.py recorded.

  Args:
    skeleton: {'attrs': {group: {attr: list of str}}, 'datasets': [[path,
      variable index]]}: the file's groups, the attributes a reader needs
      (layer_names, weight_names) and which model variable each dataset holds.
    seed: the weight seed.
    variables: [[keras variable path, shape, dtype]] in `model.weights` order;
      variable i is golden_tensor(seed, i, path, shape, dtype, True, gain).
    gain: see `golden_tensor`.
    fixed: {keras variable path: value} written instead of the drawn tensor
      (B0's Normalization mean, variance and count).
  """
  import h5py  # pylint: disable=g-import-not-at-top
  with h5py.File(path, 'w') as f:
    for dataset, i in skeleton['datasets']:
      name, shape, dtype = variables[i]
      if fixed and name in fixed:
        data = np.asarray(fixed[name], dtype).reshape(shape)
      else:
        data = golden_tensor(seed, i, name, tuple(shape), dtype, True, gain)
      f.create_dataset(dataset, data=data)
    for group, attrs in skeleton['attrs'].items():
      g = f.require_group(group) if group != '/' else f
      for k, v in attrs.items():
        g.attrs[k] = np.array([s.encode() for s in v])
