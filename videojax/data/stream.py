"""Features read from the HDF5 shards when a batch needs them, not all at once.

`ShardArray` stands in for the f16[n, t, d] features of a FeatureSet whose
split is too large for memory (`parts.load_parts` decides): indexing it reads
the rows asked for, shard by shard, several shards in parallel. `WindowReader`
serves the training order of `order.epoch_order` one window at a time, reading
the next window while the current one is consumed, so memory is about two
windows (config.data.shuffle_buffer_mb) whatever the size of the split.
"""
from __future__ import annotations

import concurrent.futures
import os
import pathlib
from collections.abc import Sequence

import numpy as np

from videojax import files
from videojax.data import features as features_lib
from videojax.data.features import FeatureError

# Shards read at once. h5py serialises its calls under one lock (gzip inflate and
# fletcher32 run under it), so threads mostly overlap the numpy gathers: on the shared
# 2-core machine 2 threads read gzip shards about as fast as 1 (benchmarks/bench_stream.py);
# inflating the chunks outside the lock (zlib) measured no faster, so it is not done.
READ_THREADS = 2


class ShardArray:
  """f16[n, t, d]: rows `rows[i]` of shards `paths[shards[i]]`, read on indexing.

  Supports what the pipeline and the statistics use of a numpy array: shape,
  dtype, len, `a[int array or slice]` (a numpy copy) and `a.take(idx, axis=0)`
  (another ShardArray, nothing read).

  With `num_frames` set, each row is subsampled on read to that many positions
  as `features.subsample_frames` does, from its stored length `stored_lengths[i]`.
  """

  def __init__(self, paths: Sequence[str | os.PathLike], shards: np.ndarray, rows: np.ndarray,
               stored_shape: tuple[int, int], stored_lengths: np.ndarray, num_frames: int = 0):
    self.paths = [files.path(p) for p in paths]  # Local, or a URL (gs://...).
    self.shards = np.asarray(shards, np.int32)
    self.rows = np.asarray(rows, np.int64)
    self.stored_shape = tuple(stored_shape)
    self.stored_lengths = np.asarray(stored_lengths, np.int32)
    self.num_frames = num_frames or self.stored_shape[0]
    self.dtype = np.dtype(np.float16)

  @property
  def shape(self) -> tuple[int, int, int]:
    return (len(self.rows), self.num_frames, self.stored_shape[1])

  @property
  def ndim(self) -> int:
    return 3

  @property
  def nbytes(self) -> int:
    return int(np.prod(self.shape)) * self.dtype.itemsize

  def __len__(self) -> int:
    return len(self.rows)

  def take(self, indices, axis: int = 0) -> ShardArray:
    assert axis == 0
    idx = np.asarray(indices, np.int64)
    return ShardArray(self.paths, self.shards[idx], self.rows[idx], self.stored_shape,
                      self.stored_lengths[idx], self.num_frames)

  def subsampled(self, num_frames: int) -> ShardArray:
    """The same rows, `num_frames` positions each (`features.subsample_frames`)."""
    return ShardArray(self.paths, self.shards, self.rows, self.stored_shape,
                      self.stored_lengths, num_frames)

  def __getitem__(self, key) -> np.ndarray:
    if isinstance(key, slice):
      key = np.arange(len(self))[key]
    idx = np.asarray(key, np.int64)
    if idx.ndim != 1:
      raise TypeError(f"ShardArray takes a slice or an int array of indices, got {key!r}")
    return self.read(idx)

  def __array__(self, dtype=None, copy=None):
    out = self.read(np.arange(len(self)))
    return out if dtype is None else out.astype(dtype)

  def read(self, idx: np.ndarray, pool: concurrent.futures.Executor | None = None) -> np.ndarray:
    """f16[m, t, d]: the rows `idx` (any order, repeats allowed), several shards in parallel."""
    t, d = self.stored_shape
    out = np.empty((len(idx), t, d), np.float16)
    shards = self.shards[idx]
    jobs = [(s, np.flatnonzero(shards == s)) for s in np.unique(shards)]

    def fill(job):
      s, where = job
      out[where] = _read_rows(self.paths[s], self.rows[idx[where]])

    if pool is None and len(jobs) > 1:
      with concurrent.futures.ThreadPoolExecutor(READ_THREADS) as own:
        list(own.map(fill, jobs))
    elif pool is not None:
      list(pool.map(fill, jobs))
    else:
      for job in jobs:
        fill(job)
    if self.num_frames == t:
      return out
    return features_lib.subsample_array(out, self.stored_lengths[idx], self.num_frames)


def _read_rows(path: pathlib.Path, rows: np.ndarray) -> np.ndarray:
  """f16[m, t, d]: the `features` rows `rows` of one shard, in that order.

  Raises:
    FeatureError: the shard is damaged or holds NaN/inf in these rows (named).
  """
  unique, inverse = np.unique(rows, return_inverse=True)
  lo, hi = int(unique[0]), int(unique[-1]) + 1
  with features_lib.open_shard(path) as f:
    ds = f["features"]
    if 2 * len(unique) >= hi - lo:  # Dense: one contiguous read beats a point selection.
      block = ds[lo:hi][unique - lo]
    else:
      block = ds[unique]
  finite = np.isfinite(block).all(axis=(1, 2))
  if not finite.all():
    raise FeatureError(f"{path}: example {unique[np.flatnonzero(~finite)[0]]} has NaN or inf "
                       "features")
  return block[inverse]


class WindowReader:
  """The rows of one part in an epoch's order, read one window at a time.

  `rows(lo, hi)` returns features[order[lo:hi]]; the windows it spans are read
  (all their rows at once, in parallel over their shards) and the next window
  is read ahead in the background. Windows before `lo` are dropped, so at most
  the windows of one batch plus the next one are in memory.
  """

  def __init__(self, features: ShardArray, order: np.ndarray, bounds: np.ndarray,
               pool: concurrent.futures.ThreadPoolExecutor):
    self.features, self.order, self.bounds, self.pool = features, order, bounds, pool
    self.windows: dict[int, concurrent.futures.Future] = {}
    # A window's read waits on `pool`: it runs on a thread of its own.
    self.ahead = concurrent.futures.ThreadPoolExecutor(1)

  def _load(self, w: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.sort(self.order[self.bounds[w]:self.bounds[w + 1]])
    return idx, self.features.read(idx, self.pool)

  def _window(self, w: int) -> concurrent.futures.Future:
    if w not in self.windows:
      self.windows[w] = self.ahead.submit(self._load, w)
    return self.windows[w]

  def rows(self, lo: int, hi: int) -> np.ndarray:
    first = int(np.searchsorted(self.bounds, lo, side="right")) - 1
    last = int(np.searchsorted(self.bounds, hi, side="left")) - 1
    for w in [w for w in self.windows if w < first]:
      del self.windows[w]
    pieces = []
    for w in range(first, last + 1):
      idx, data = self._window(w).result()
      want = self.order[max(lo, self.bounds[w]):min(hi, self.bounds[w + 1])]
      pieces.append(data[np.searchsorted(idx, want)])
    if last + 1 < len(self.bounds) - 1:
      self._window(last + 1)  # Read ahead.
    else:
      self.ahead.shutdown(wait=False)
    return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
