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


def golden_tensor(seed: int, index: int, name: str, shape: tuple[int, ...],
                  dtype: str) -> np.ndarray:
  """Tensor `index` of a state dict, from np.random.default_rng([seed, index]).

  Conv / linear weights ~ N(0, 2 / fan_in) (activations stay O(1) through the
  net); BatchNorm weight 1 + N(0, 0.1^2) (up to 0.3 apart), bias and running
  mean N(0, 0.1^2), running var U(0.5, 1.5) (positive); integer tensors
  (num_batches_tracked) 0.
  """
  if not np.issubdtype(np.dtype(dtype), np.floating):
    return np.zeros(shape, dtype)
  rng = np.random.default_rng([seed, index])
  if name.endswith('running_var'):
    x = rng.uniform(0.5, 1.5, shape)
  elif len(shape) >= 2:
    x = rng.normal(0.0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
  elif name.endswith('weight'):
    x = 1.0 + rng.normal(0.0, 0.1, shape)
  else:
    x = rng.normal(0.0, 0.1, shape)
  return x.astype(dtype)


def golden_state(seed: int, keys: list[tuple[str, tuple[int, ...], str]]) -> dict[str, np.ndarray]:
  """name -> tensor for (name, shape, dtype) `keys` in state-dict order."""
  return {name: golden_tensor(seed, i, name, tuple(shape), dtype)
          for i, (name, shape, dtype) in enumerate(keys)}
