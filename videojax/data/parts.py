"""Each process's share of the feature shards in a multi-host run: data parts.

The shards of a split are dealt into `num_parts` parts, shard j to part
j % num_parts, and process p of P holds parts p * (num_parts / P) onwards.
Each process reads only its own shards' features; the examples' ids and
labels (cheap) are read from all shards, so that every process holds out the
same validation groups and knows every part's size. A training step's global
batch is the concatenation of `batch_size / num_parts` examples of every part
(see `pipeline.train_batches`), so it depends on `num_parts` but not on which
process holds which part: one process with num_parts = 2 sees exactly the
batches of a 2-process run.

When the train and test features on this process together exceed
`IN_MEMORY_MAX_BYTES` (or always, with in_memory=False), they are not read here:
the FeatureSets hold a `stream.ShardArray` and the pipeline reads their rows as
batches need them.
Both give the same batches (`pipeline.train_batches`).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable

import numpy as np

from videojax.data import features as features_lib
from videojax.data import order as order_lib
from videojax.data.features import FeatureError, FeatureSet
from videojax.data.stream import ShardArray

SplitFn = Callable[[FeatureSet], tuple[FeatureSet, FeatureSet]]
# config.data.in_memory=auto reads the splits into memory below this many feature bytes per
# process (train and test together).
IN_MEMORY_MAX_BYTES = 2**30
IN_MEMORY = ("auto", True, False)


@dataclasses.dataclass
class Parts:
  """The splits of this process, as lists over its data parts.

  Attributes:
    train, val, test: this process's parts of each split.
    part_ids: the global index of each of this process's parts.
    sizes: split -> the size of every part of the run (all processes), i64[num_parts].
    spec: the extraction spec of the features (after any subsampling).
    class_names: k names.
    shard_sizes: the training examples of each shard of each of this process's
      parts, [i64[s_q]] (the order is a function of these: `order.epoch_order`).
    window_shards: shards per shuffle window (`order.window_shards`), 0: all.
  """
  train: list[FeatureSet]
  val: list[FeatureSet]
  test: list[FeatureSet]
  part_ids: list[int]
  sizes: dict[str, np.ndarray]
  spec: dict
  class_names: list[str]
  shard_sizes: list[np.ndarray] = dataclasses.field(default_factory=list)
  window_shards: int = 0

  @property
  def num_parts(self) -> int:
    return len(self.sizes["train"])

  @property
  def num_frames(self) -> int:
    return self.train[0].num_frames

  @property
  def feature_dim(self) -> int:
    return self.train[0].feature_dim


def check_not_empty(num_clips: int, features_dir: str | os.PathLike, split: str) -> None:
  """Refuses a split with no clip: its metrics would be NaN over 0 clips, not a result.

  Shards of 0 clips are what extraction leaves when every clip of a split failed.

  Raises:
    FeatureError: naming the split, `features_dir` and its failed_videos.csv.
  """
  if num_clips == 0:
    failed = os.path.join(features_dir, features_lib.FAILED_FILE)
    raise FeatureError(
        f"{features_dir}: the '{split}' shards hold no clip (every clip failed extraction?); "
        f"see {failed} for why, fix or replace those videos and extract again")


def parts_of_process(num_parts: int, process_index: int, process_count: int) -> list[int]:
  """The parts process `process_index` holds; ValueError unless P divides num_parts."""
  if num_parts < 1 or num_parts % process_count:
    raise ValueError(f"config.data.num_parts={num_parts} must be a positive multiple of the "
                     f"{process_count} processes (0 means one part per process)")
  per = num_parts // process_count
  return list(range(process_index * per, (process_index + 1) * per))


def _part_shards(features_dir, split: str, part: int, num_parts: int) -> list[int]:
  count = len(features_lib.shard_paths(features_dir, split))
  return list(range(part, count, num_parts))


def _load_part(features_dir: str | os.PathLike, split: str, part: int, num_parts: int,
               spec: dict) -> FeatureSet | None:
  """The examples of the shards j of `split` with j % num_parts == part; None if none."""
  shards = _part_shards(features_dir, split, part, num_parts)
  if not shards:
    return None
  return features_lib.load_split(features_dir, split, expect_spec=spec, shard_indices=shards)


def _stream_part(features_dir: str | os.PathLike, split: str, part: int, num_parts: int,
                 index: FeatureSet, shard: np.ndarray) -> FeatureSet | None:
  """As `_load_part`, with the features left on disk: a `stream.ShardArray`."""
  all_paths = features_lib.shard_paths(features_dir, split)
  shards = list(range(part, len(all_paths), num_parts))
  if not shards:
    return None
  paths = [all_paths[j] for j in shards]
  shape = features_lib.check_shards(paths, index.spec, index.class_names)
  where = np.flatnonzero(np.isin(shard, shards))
  first = np.searchsorted(shard, shard[where])  # The shard's first example in the split.
  local = np.searchsorted(shards, shard[where])
  fs = index.take(where)
  features_lib.validate_arrays(np.zeros((len(fs), shape[0], 0), np.float16), fs.lengths,
                               fs.labels, len(index.class_names), f"{features_dir} '{split}'")
  return dataclasses.replace(fs, features=ShardArray(paths, local, where - first, shape,
                                                     fs.lengths))


def _clip_bytes(path) -> int:
  """The float16 feature bytes of one clip of the shard at `path` (t * d * 2)."""
  with features_lib.open_shard(path) as f:
    t, d = f["features"].shape[1:]
  return t * d * 2


def _feature_bytes(shard: np.ndarray, paths: list, mine: list[int], num_parts: int) -> int:
  """The feature bytes of this process's shards of a split (from the first shard's shape)."""
  return int(np.isin(shard % num_parts, mine).sum()) * _clip_bytes(paths[0])


def _max_shard_bytes(shard: np.ndarray, path) -> int:
  return int(np.bincount(shard).max()) * _clip_bytes(path)


def load_parts(features_dir: str | os.PathLike, *, num_parts: int, process_index: int,
               process_count: int, split_validation: SplitFn,
               num_frames: int = 0, in_memory: str | bool = "auto",
               shuffle_buffer_mb: float = 0) -> Parts:
  """Reads this process's parts of the train, validation and test splits.

  Args:
    features_dir: the shards of 'train' and 'test'.
    num_parts: how many parts the shards are dealt into (a multiple of process_count).
    process_index, process_count: this process and how many there are.
    split_validation: (the whole train split without features) -> (rest, held
      out); must depend on ids and labels only, so every process agrees.
    num_frames: if > 0, subsample every clip to this many positions
      (`features.subsample_frames`).
    in_memory: True reads the features of every split into memory; False leaves
      them on disk (streamed, `stream.ShardArray`); 'auto' reads them into
      memory when this process's share of train and test together is under
      IN_MEMORY_MAX_BYTES.
    shuffle_buffer_mb: sets `Parts.window_shards` (`order.window_shards`).

  Raises:
    FeatureError: missing or inconsistent shards, train and test with other
      class lists, a split of no clip (check_not_empty), or a part with no
      training example (more parts than shards).
    ValueError: num_parts not a multiple of process_count, num_frames out of range.
  """
  mine = parts_of_process(num_parts, process_index, process_count)
  train_index, train_shard = features_lib.read_index(features_dir, "train")
  test_index, test_shard = features_lib.read_index(features_dir, "test")
  if test_index.class_names != train_index.class_names:
    raise FeatureError(f"{features_dir}: train and test shards have different class lists")
  # Before any training: a test split of 0 clips would end hours later in "accuracy nan".
  check_not_empty(len(train_index), features_dir, "train")
  check_not_empty(len(test_index), features_dir, "test")
  _, held = split_validation(train_index)
  held_ids = set(held.video_ids)
  is_val = np.array([v in held_ids for v in train_index.video_ids], bool)
  part = train_shard % num_parts
  sizes = {"train": np.bincount(part[~is_val], minlength=num_parts),
           "val": np.bincount(part[is_val], minlength=num_parts),
           "test": np.bincount(test_shard % num_parts, minlength=num_parts)}
  empty = np.flatnonzero(sizes["train"] == 0)
  if empty.size:
    raise FeatureError(
        f"{features_dir}: data part {empty[0]} of {num_parts} has no training example (the "
        f"train split has {train_shard.max() + 1} shard(s)); use fewer parts or extract with "
        "a smaller extract.shard_size")
  spec = train_index.spec
  paths = {"train": features_lib.shard_paths(features_dir, "train"),
           "test": features_lib.shard_paths(features_dir, "test")}
  # auto: both splits in memory when together under the bound, else both streamed, so that
  # the bound holds for the run (a 1 GB test split in memory beside a streamed train split
  # would add its 1 GB to the RSS).
  streamed = in_memory is False or (in_memory == "auto" and sum(
      _feature_bytes(shard, paths[split], mine, num_parts)
      for split, shard in (("train", train_shard), ("test", test_shard))) > IN_MEMORY_MAX_BYTES)
  stream = {"train": streamed, "test": streamed}

  def load(split, q, index, shard):
    if stream[split]:
      return _stream_part(features_dir, split, q, num_parts, index, shard)
    return _load_part(features_dir, split, q, num_parts, spec)

  out: dict[str, list[FeatureSet]] = {"train": [], "val": [], "test": []}
  shard_sizes = []
  for q in mine:
    train_all = load("train", q, train_index, train_shard)
    val_rows = np.array([v in held_ids for v in train_all.video_ids], bool)
    out["train"].append(train_all.take(np.flatnonzero(~val_rows)))
    out["val"].append(train_all.take(np.flatnonzero(val_rows)))
    in_part = part == q
    shard_sizes.append(np.bincount(train_shard[in_part & ~is_val] // num_parts,
                                   minlength=len(range(q, len(paths["train"]), num_parts))))
    test = load("test", q, test_index, test_shard)
    out["test"].append(test if test is not None else train_all.take([]))
  if num_frames:
    out = {k: [features_lib.subsample_frames(fs, num_frames) for fs in v]
           for k, v in out.items()}
  window = order_lib.window_shards(_max_shard_bytes(train_shard, paths["train"][0]),
                                   shuffle_buffer_mb)
  return Parts(train=out["train"], val=out["val"], test=out["test"], part_ids=mine,
               sizes=sizes, spec=out["train"][0].spec, class_names=train_index.class_names,
               shard_sizes=shard_sizes, window_shards=window)


def load_split(features_dir: str | os.PathLike, split: str,
               in_memory: str | bool = "auto") -> FeatureSet:
  """Every example of one split (evaluation, TTA, ensembles): its features in memory when
  they are under IN_MEMORY_MAX_BYTES (or in_memory=True), else a `stream.ShardArray`
  that reads the rows each batch indexes. Same examples, same order either way.

  Raises:
    FeatureError: as `features.load_split`.
  """
  if in_memory is True:
    return features_lib.load_split(features_dir, split)
  index, shard = features_lib.read_index(features_dir, split)
  paths = features_lib.shard_paths(features_dir, split)
  if in_memory == "auto" and (
      not len(index) or _feature_bytes(shard, paths, [0], 1) <= IN_MEMORY_MAX_BYTES):
    return features_lib.load_split(features_dir, split)
  return _stream_part(features_dir, split, 0, 1, index, shard)
