"""Streaming from the shards: the windowed order, and the same batches as in memory."""
import itertools

import numpy as np
import pytest

from videojax import train
from videojax.data import features as F
from videojax.data import order, pipeline, stream
from videojax.data import parts as parts_lib

CLASSES = ["a", "b", "c"]
T, D = 6, 4


@pytest.fixture(scope="module")
def features(tmp_path_factory):
  """7 train shards of 3 to 9 clips (groups of 2 for validation), 3 test shards."""
  d = tmp_path_factory.mktemp("features")
  rng = np.random.default_rng(0)
  for split, sizes in (("train", (5, 9, 3, 8, 6, 7, 4)), ("test", (5, 2, 4))):
    for j, n in enumerate(sizes):
      labels = rng.integers(0, len(CLASSES), n)
      lengths = rng.integers(1, T + 1, n)
      feats = rng.normal(size=(n, T, D)) + labels[:, None, None]
      ids = [f"{CLASSES[l]}/v_{CLASSES[l]}_g{j:02d}{i // 2}_c{i:02d}" for i, l in enumerate(labels)]
      F.write_shard(d / F.shard_name(split, j, len(sizes)), features=feats, lengths=lengths,
                    labels=labels, video_ids=ids, class_names=CLASSES,
                    spec={"backbone": "test", "num_frames": T})
  return d


def _load(features, in_memory, num_parts=2, num_frames=0, buffer_mb=0.0):
  return parts_lib.load_parts(
      features, num_parts=num_parts, process_index=0, process_count=1, num_frames=num_frames,
      in_memory=in_memory, shuffle_buffer_mb=buffer_mb,
      split_validation=lambda fs: train.split_validation(fs, 0.25, 0, echo=lambda *_: None))


def test_one_window_is_the_plain_permutation_and_windows_keep_their_shards():
  sizes = [5, 9, 3, 8]
  for w in (0, 4, 10):
    got, bounds = order.epoch_order(sizes, 3, 2, 1, w)
    np.testing.assert_array_equal(got, order.epoch_permutation(25, 3, 2, 1))
    assert bounds.tolist() == [0, 25]
  got, bounds = order.epoch_order(sizes, 3, 2, 1, 2)
  assert sorted(got.tolist()) == list(range(25)) and len(bounds) == 3
  shard = np.repeat(np.arange(4), sizes)
  for lo, hi in zip(bounds[:-1], bounds[1:]):
    assert len(set(shard[got[lo:hi]])) == 2  # a window is two whole shards
  assert not np.array_equal(got, order.epoch_order(sizes, 3, 3, 1, 2)[0])  # epochs differ
  np.testing.assert_array_equal(got, order.epoch_order(sizes, 3, 2, 1, 2)[0])


def test_window_shards_from_the_buffer_size():
  assert order.window_shards(2**20, 0) == 0
  assert order.window_shards(2**20, 3.5) == 3
  assert order.window_shards(2**30, 512) == 1


def test_streamed_parts_give_the_batches_of_parts_in_memory(features):
  mem, disk = _load(features, True), _load(features, False)
  assert isinstance(disk.train[0].features, stream.ShardArray)
  assert isinstance(mem.train[0].features, np.ndarray)
  assert [len(p) for p in disk.val] == [len(p) for p in mem.val] and sum(disk.sizes["val"])
  assert [s.tolist() for s in disk.shard_sizes] == [s.tolist() for s in mem.shard_sizes]
  assert [len(s) for s in disk.shard_sizes] == [4, 3]

  def batches(p, start=0, n=12):
    it = pipeline.train_batches(p.train, 2, seed=5, start_step=start, part_ids=p.part_ids,
                                shard_sizes=p.shard_sizes, window_shards=2, prefetch=1)
    return list(itertools.islice(it, n))

  a, b = batches(mem), batches(disk)  # 12 steps: 2 epochs and more of 5 steps
  for x, y in zip(a, b):
    for k in x:
      np.testing.assert_array_equal(x[k], y[k])
  for x, y in zip(a[7:], batches(disk, start=7, n=5)):  # resumed mid-epoch, streaming
    np.testing.assert_array_equal(x["features"], y["features"])
  for split in ("val", "test"):
    for x, y in zip(pipeline.eval_batches(getattr(mem, split), 3),
                    pipeline.eval_batches(getattr(disk, split), 3), strict=True):
      for k in x:
        np.testing.assert_array_equal(x[k], y[k])
  np.testing.assert_array_equal(train.feature_statistics(mem.train, chunk=4),
                                train.feature_statistics(disk.train, chunk=4))
  np.testing.assert_allclose(train.feature_statistics(mem.train),
                             train.feature_statistics(disk.train, max_chunk_bytes=1), rtol=1e-6)


def test_streamed_subsampling_and_the_automatic_choice(features):
  mem, disk = _load(features, True, num_parts=1, num_frames=3), _load(features, "auto", 1, 3)
  assert isinstance(disk.train[0].features, np.ndarray)  # a few KB: in memory
  disk = _load(features, False, num_parts=1, num_frames=3)
  assert disk.num_frames == 3
  np.testing.assert_array_equal(disk.test[0].features[np.arange(len(disk.test[0]))],
                                mem.test[0].features)
  np.testing.assert_array_equal(disk.test[0].lengths, mem.test[0].lengths)


def test_a_damaged_chunk_is_named_when_streamed(features, tmp_path):
  from tests.test_shard_integrity import _flip_byte
  path = tmp_path / "train-00000-of-00001.h5"
  path.write_bytes((features / F.shard_name("train", 1, 7)).read_bytes())
  arr = stream.ShardArray([path], np.zeros(9), np.arange(9), (T, D), np.full(9, T))
  whole = arr[np.arange(9)]
  _flip_byte(path, "features", chunk=4)
  np.testing.assert_array_equal(arr[np.arange(4)], whole[:4])
  with pytest.raises(F.FeatureError, match=rf"{path}: damaged feature shard.*--verify"):
    arr[np.array([4])]


@pytest.mark.parametrize("compression", F.COMPRESSIONS)
def test_every_compression_reads_back_the_same(tmp_path, compression):
  rng = np.random.default_rng(1)
  feats = rng.normal(size=(3, T, D)).astype(np.float16)
  path = F.write_shard(tmp_path / F.shard_name("train", 0, 1), features=feats,
                       lengths=np.full(3, T), labels=np.arange(3), video_ids=["a", "b", "c"],
                       class_names=CLASSES, spec={"backbone": "test"}, compression=compression)
  with F.open_shard(path) as f:
    assert f["features"].chunks == (1, T, D)
    assert f["features"].compression == (None if compression == "none" else compression)
  arr = stream.ShardArray([path], np.zeros(3), np.arange(3), (T, D), np.full(3, T))
  np.testing.assert_array_equal(arr[np.array([2, 0])], feats[[2, 0]])


def test_an_unknown_compression_is_refused(tmp_path):
  with pytest.raises(ValueError, match="accepted: gzip, lzf, none"):
    F.write_shard(tmp_path / "x.h5", features=np.zeros((1, T, D)), lengths=[T], labels=[0],
                  video_ids=["a"], class_names=CLASSES, spec={}, compression="zstd")


def test_auto_bounds_train_and_test_together(features, monkeypatch):
  # 42 train clips (2016 feature bytes) and 11 test clips (528): each under the bound, not both.
  monkeypatch.setattr(parts_lib, "IN_MEMORY_MAX_BYTES", 2100)
  p = _load(features, "auto", num_parts=1)
  assert isinstance(p.train[0].features, stream.ShardArray)
  assert isinstance(p.test[0].features, stream.ShardArray)
  monkeypatch.setattr(parts_lib, "IN_MEMORY_MAX_BYTES", 2544)
  assert isinstance(_load(features, "auto", num_parts=1).test[0].features, np.ndarray)
