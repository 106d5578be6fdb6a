"""tf.data input pipelines over in-memory feature sets.

Batches are dicts of numpy arrays:

  features  f16[b, t, d]  cast to f32 on the device, which halves the transfer
  mask      bool[b, t]    True on real frames (a prefix of each row)
  label     i32[b]
  valid     bool[b]       False on examples that only pad the last eval batch

The training order is a function of (seed, step) alone: epoch e visits the
examples in `permutation(seed, e)`, so a run resumed at step s sees exactly the
batches an uninterrupted run would have seen from s on.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from videojax.data.features import FeatureSet

# tf.data only: TensorFlow must never take the accelerators from JAX.
tf.config.set_visible_devices([], "GPU")

Batch = dict[str, np.ndarray]


def lengths_to_mask(lengths: np.ndarray, num_frames: int) -> np.ndarray:
  """bool[n, t] with the first lengths[i] entries of row i True."""
  return np.arange(num_frames)[None, :] < np.asarray(lengths)[:, None]


def epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """The order in which epoch `epoch` visits the examples: i64[n]."""
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


def _gather(fs: FeatureSet, idx: np.ndarray, valid: np.ndarray) -> Batch:
  lengths = np.where(valid, fs.lengths[idx], 0)
  return {"features": fs.features[idx], "mask": lengths_to_mask(lengths, fs.num_frames),
          "label": np.where(valid, fs.labels[idx], 0).astype(np.int32), "valid": valid}


def _as_tf_dataset(fs: FeatureSet, batch_size: int, generator) -> tf.data.Dataset:
  t, d = fs.num_frames, fs.feature_dim
  signature = {
      "features": tf.TensorSpec([batch_size, t, d], tf.float16),
      "mask": tf.TensorSpec([batch_size, t], tf.bool),
      "label": tf.TensorSpec([batch_size], tf.int32),
      "valid": tf.TensorSpec([batch_size], tf.bool),
  }
  ds = tf.data.Dataset.from_generator(generator, output_signature=signature)
  return ds.prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full training batches per epoch; the shuffled remainder is dropped."""
  if num_examples < batch_size:
    raise ValueError(f"train.batch_size={batch_size} exceeds the {num_examples} "
                     "training examples; lower it")
  return num_examples // batch_size


def train_batches(fs: FeatureSet, batch_size: int, *, seed: int,
                  start_step: int = 0) -> Iterator[Batch]:
  """Endless shuffled training batches from `start_step` on (all valid)."""
  spe = steps_per_epoch(len(fs), batch_size)
  valid = np.ones(batch_size, bool)

  def generate():
    epoch, offset = divmod(start_step, spe)
    while True:
      perm = epoch_permutation(len(fs), seed, epoch)
      for k in range(offset, spe):
        yield _gather(fs, perm[k * batch_size:(k + 1) * batch_size], valid)
      epoch, offset = epoch + 1, 0

  return _as_tf_dataset(fs, batch_size, generate).as_numpy_iterator()


def eval_batches(fs: FeatureSet, batch_size: int) -> Iterator[Batch]:
  """One pass in order; the last batch is padded with examples marked invalid."""
  n = len(fs)

  def generate():
    for start in range(0, n, batch_size):
      idx = np.arange(start, start + batch_size)
      valid = idx < n
      yield _gather(fs, np.where(valid, idx, 0), valid)

  return _as_tf_dataset(fs, batch_size, generate).as_numpy_iterator()


def num_eval_batches(num_examples: int, batch_size: int) -> int:
  return -(-num_examples // batch_size)
