"""tf.data input pipelines over feature sets, in memory or streamed from the shards.

Batches are dicts of numpy arrays:

  features  f16[b, t, d]  cast to f32 on the device, which halves the transfer
  mask      bool[b, t]    True on real frames (a prefix of each row)
  label     i32[b]
  valid     bool[b]       False on examples that only pad the last eval batch

The training order is a function of (seed, step) and the parts' shard sizes
alone (`order.epoch_order`), so a run resumed at step s sees exactly the batches
an uninterrupted run would have seen from s on. A FeatureSet whose features are
a `stream.ShardArray` is read a shuffle window at a time (`stream.WindowReader`);
one in memory is indexed directly: the same batches either way.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from videojax import platform
from videojax.data import stream
from videojax.data.features import FeatureSet
from videojax.data.order import epoch_order

if TYPE_CHECKING:  # Loaded where a pipeline is built (`_as_tf_dataset`).
  import tensorflow as tf

Batch = dict[str, np.ndarray]
# Batches read ahead of the step (config.data.prefetch_batches): a bound on memory, unlike
# AUTOTUNE's buffer.
PREFETCH_BATCHES = 4


def lengths_to_mask(lengths: np.ndarray, num_frames: int) -> np.ndarray:
  """bool[n, t] with the first lengths[i] entries of row i True."""
  return np.arange(num_frames)[None, :] < np.asarray(lengths)[:, None]


def _gather(fs: FeatureSet, idx: np.ndarray, valid: np.ndarray) -> Batch:
  if not len(fs):  # A host's part can be empty in eval: all padding.
    fs = dataclasses.replace(fs, features=np.zeros((1, *fs.features.shape[1:]), np.float16),
                             lengths=np.zeros(1, np.int32), labels=np.zeros(1, np.int32))
  lengths = np.where(valid, fs.lengths[idx], 0)
  return {"features": fs.features[idx], "mask": lengths_to_mask(lengths, fs.num_frames),
          "label": np.where(valid, fs.labels[idx], 0).astype(np.int32), "valid": valid}


def _concat(batches: Sequence[Batch]) -> Batch:
  return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def _as_parts(parts: FeatureSet | Sequence[FeatureSet]) -> list[FeatureSet]:
  return [parts] if isinstance(parts, FeatureSet) else list(parts)


def _as_tf_dataset(fs: FeatureSet, batch_size: int, generator,
                   prefetch: int = PREFETCH_BATCHES) -> tf.data.Dataset:
  # TensorFlow loads here, not at import: a script fails on a bad config before its 3-5 s.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  platform.keep_tensorflow_off_accelerators()  # tf.data must never take them from JAX.
  t, d = fs.num_frames, fs.feature_dim
  signature = {
      "features": tf.TensorSpec([batch_size, t, d], tf.float16),
      "mask": tf.TensorSpec([batch_size, t], tf.bool),
      "label": tf.TensorSpec([batch_size], tf.int32),
      "valid": tf.TensorSpec([batch_size], tf.bool),
  }
  ds = tf.data.Dataset.from_generator(generator, output_signature=signature)
  return ds.prefetch(prefetch)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full training batches per epoch; the shuffled remainder is dropped.

  For data parts, pass the smallest part's size and the per-part batch size.
  """
  if num_examples < batch_size:
    raise ValueError(f"train.batch_size={batch_size} exceeds the {num_examples} "
                     "training examples; lower it")
  return num_examples // batch_size


def train_batches(parts: FeatureSet | Sequence[FeatureSet], batch_size: int, *, seed: int,
                  start_step: int = 0, epoch_steps: int | None = None,
                  part_ids: Sequence[int] | None = None,
                  shard_sizes: Sequence[Sequence[int]] | None = None, window_shards: int = 0,
                  prefetch: int = PREFETCH_BATCHES) -> Iterator[Batch]:
  """Endless shuffled training batches from `start_step` on (all valid).

  With several data parts (one or more per host, see `train.py`), each part
  is shuffled on its own and a batch is the concatenation of `batch_size`
  examples of each part, in part order: the global batch of a step is the same
  whichever process holds which part.

  Args:
    parts: one FeatureSet, or this process's parts.
    batch_size: examples per part and step.
    seed: with the epoch and the part id, fixes the order.
    start_step: the first step to yield.
    epoch_steps: steps per epoch; default: from the smallest of `parts`; a
      multi-host run passes the value over all hosts' parts.
    part_ids: the global index of each part (default 0, 1, ...).
    shard_sizes: each part's examples per shard (`parts.Parts.shard_sizes`);
      default: each part one shard.
    window_shards: shards per shuffle window (`order.epoch_order`); 0: all.
    prefetch: batches read ahead.
  """
  parts = _as_parts(parts)
  part_ids = list(range(len(parts))) if part_ids is None else list(part_ids)
  shard_sizes = [[len(p)] for p in parts] if shard_sizes is None else shard_sizes
  for p, sizes in zip(parts, shard_sizes, strict=True):
    if sum(sizes) != len(p):
      raise ValueError(f"shard sizes {list(sizes)} do not add up to the part's {len(p)} examples")
  spe = epoch_steps or min(steps_per_epoch(len(p), batch_size) for p in parts)
  valid = np.ones(batch_size, bool)

  def generate():
    epoch, offset = divmod(start_step, spe)
    with concurrent.futures.ThreadPoolExecutor(stream.READ_THREADS) as pool:
      while True:
        plans = [epoch_order(sizes, seed, epoch, q, window_shards)
                 for sizes, q in zip(shard_sizes, part_ids)]
        readers = [_reader(p, order, bounds, pool) for p, (order, bounds) in zip(parts, plans)]
        for k in range(offset, spe):
          lo, hi = k * batch_size, (k + 1) * batch_size
          yield _concat([_batch(p, order[lo:hi], read(lo, hi), valid)
                         for p, (order, _), read in zip(parts, plans, readers)])
        epoch, offset = epoch + 1, 0

  return _as_tf_dataset(parts[0], batch_size * len(parts), generate, prefetch).as_numpy_iterator()


def _reader(fs: FeatureSet, order: np.ndarray, bounds: np.ndarray, pool):
  """(lo, hi) -> fs.features[order[lo:hi]]: by window from the shards, or from memory."""
  if isinstance(fs.features, stream.ShardArray):
    return stream.WindowReader(fs.features, order, bounds, pool).rows
  return lambda lo, hi: fs.features[order[lo:hi]]


def _batch(fs: FeatureSet, idx: np.ndarray, features: np.ndarray, valid: np.ndarray) -> Batch:
  return {"features": features, "mask": lengths_to_mask(fs.lengths[idx], fs.num_frames),
          "label": fs.labels[idx].astype(np.int32), "valid": valid}


def eval_batches(parts: FeatureSet | Sequence[FeatureSet], batch_size: int,
                 num_batches: int | None = None,
                 prefetch: int = PREFETCH_BATCHES) -> Iterator[Batch]:
  """One pass in order; batches are padded with examples marked invalid.

  Args:
    parts: one FeatureSet, or this process's parts.
    batch_size: examples per part and batch.
    num_batches: default: enough for the largest of `parts`; a multi-host run
      passes the value over all hosts' parts, so that every process runs the
      same number of steps.
    prefetch: batches read ahead; parts on disk are read batch by batch, in order.
  """
  parts = _as_parts(parts)
  if num_batches is None:
    num_batches = max(num_eval_batches(len(p), batch_size) for p in parts)

  def generate():
    for start in range(0, num_batches * batch_size, batch_size):
      idx = np.arange(start, start + batch_size)
      yield _concat([_gather(p, np.where(idx < len(p), idx, 0), idx < len(p)) for p in parts])

  return _as_tf_dataset(parts[0], batch_size * len(parts), generate, prefetch).as_numpy_iterator()


def num_eval_batches(num_examples: int, batch_size: int) -> int:
  return -(-num_examples // batch_size)
