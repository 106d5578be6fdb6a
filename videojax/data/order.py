"""The training order: a function of (seed, epoch, part) and the part's shard sizes only.

A part's examples are numbered in shard order (the train rows of its first
shard, then of its second, ...). Epoch e permutes the shards, groups them into
windows of `window_shards` consecutive shards of that permutation, and visits
each window's examples in a permutation of their own. A reader then needs only
one window in memory at a time (`stream.py`), and a run resumed at any step
sees exactly the batches of an uninterrupted one.

With one window over all shards (window_shards = 0 or >= the shard count) the
order is `epoch_permutation`, the order of every run made before windows
existed.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SHARD_STREAM = 0  # The key of the shard permutation; window w is keyed 1 + w.


def epoch_permutation(num_examples: int, seed: int, epoch: int, part: int = 0) -> np.ndarray:
  """The order in which epoch `epoch` visits the examples of data part `part`: i64[n]."""
  return np.random.default_rng([seed, epoch, part]).permutation(num_examples)


def epoch_order(shard_sizes: Sequence[int], seed: int, epoch: int, part: int = 0,
                window_shards: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """The examples of part `part` in the order epoch `epoch` visits them, and its windows.

  Args:
    shard_sizes: i64[s], the part's examples in each of its shards, in shard order.
    seed, epoch, part: fix the order.
    window_shards: shards per window; 0 (or >= s): one window of all shards.

  Returns:
    (order i64[n], bounds i64[w + 1]): window j is order[bounds[j]:bounds[j + 1]].
  """
  sizes = np.asarray(shard_sizes, np.int64)
  n, s = int(sizes.sum()), len(sizes)
  if not window_shards or window_shards >= s:
    return epoch_permutation(n, seed, epoch, part), np.array([0, n], np.int64)
  starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
  shards = np.random.default_rng([seed, epoch, part, _SHARD_STREAM]).permutation(s)
  windows = []
  for w, first in enumerate(range(0, s, window_shards)):
    idx = np.concatenate([np.arange(starts[k], starts[k] + sizes[k])
                          for k in shards[first:first + window_shards]])
    windows.append(idx[np.random.default_rng([seed, epoch, part, 1 + w]).permutation(len(idx))])
  bounds = np.cumsum([0] + [len(x) for x in windows])
  return np.concatenate(windows), bounds.astype(np.int64)


def window_shards(shard_bytes: int, buffer_mb: float) -> int:
  """Shards per window so that a window's features fit `buffer_mb` (at least 1); 0: all.

  Args:
    shard_bytes: the feature bytes of the largest shard of the split (the same on
      every process, so that every process computes the same windows).
    buffer_mb: config.data.shuffle_buffer_mb; 0 means one window of all shards.
  """
  if not buffer_mb:
    return 0
  return max(1, int(buffer_mb * 2**20 // max(shard_bytes, 1)))
