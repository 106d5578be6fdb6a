"""HDF5 feature shards: round trip, atomicity, and refusal of inconsistent files."""
import pathlib

import numpy as np
import pytest

from videojax import files
from videojax.data import features as F

SPEC = {"backbone": "resnet18", "num_frames": 4, "image_size": 32}
CLASSES = ["a", "b", "c"]


def _arrays(n=5, t=4, d=3, seed=0):
  rng = np.random.default_rng(seed)
  lengths = rng.integers(1, t + 1, n).astype(np.int32)
  feats = rng.normal(size=(n, t, d)).astype(np.float32)
  feats[np.arange(t)[None, :] >= lengths[:, None]] = 0
  return dict(features=feats, lengths=lengths, labels=rng.integers(0, 3, n),
              video_ids=[f"c/v_{i}" for i in range(n)])


def _write(tmp_path, split="train", index=0, count=1, spec=SPEC, classes=CLASSES, **kw):
  arrays = {**_arrays(), **kw}
  return F.write_shard(tmp_path / F.shard_name(split, index, count), class_names=classes,
                       spec=spec, **arrays), arrays


def test_round_trip_stores_float16_and_everything_else(tmp_path):
  _, a = _write(tmp_path, failed=[["c/v_bad", "cannot decode"]])
  fs = F.load_split(tmp_path, "train", expect_spec=SPEC)
  assert fs.features.dtype == np.float16
  np.testing.assert_allclose(fs.features, a["features"], atol=2e-3)  # float16 rounding
  np.testing.assert_array_equal(fs.lengths, a["lengths"])
  np.testing.assert_array_equal(fs.labels, a["labels"])
  assert fs.video_ids == a["video_ids"] and fs.class_names == CLASSES
  assert fs.failed == [["c/v_bad", "cannot decode"]] and fs.spec == SPEC


def test_shards_concatenate_in_order_and_take_selects(tmp_path):
  _write(tmp_path, index=0, count=2, video_ids=[f"x/{i}" for i in range(5)])
  _write(tmp_path, index=1, count=2, video_ids=[f"y/{i}" for i in range(5)])
  fs = F.load_split(tmp_path, "train")
  assert len(fs) == 10 and fs.video_ids[5] == "y/0"
  sub = fs.take([7, 2])
  assert sub.video_ids == ["y/2", "x/2"]
  np.testing.assert_array_equal(sub.features[0], fs.features[7])


def test_temporary_files_never_count_and_missing_shards_are_named(tmp_path):
  _write(tmp_path, index=0, count=2)
  (tmp_path / f".{F.shard_name('train', 1, 2)}.tmp-99").write_bytes(b"half written")
  with pytest.raises(F.FeatureError, match=r"incomplete.*\[1\] of 2"):
    F.load_split(tmp_path, "train")


def test_no_shards_and_corrupt_file_raise_with_path(tmp_path):
  with pytest.raises(F.FeatureError, match="no feature shards for split 'test'"):
    F.load_split(tmp_path, "test")
  bad = tmp_path / F.shard_name("test", 0, 1)
  bad.write_bytes(b"not hdf5 at all")
  with pytest.raises(F.FeatureError, match=str(bad)):
    F.load_split(tmp_path, "test")


def test_other_extraction_settings_are_refused_naming_the_key(tmp_path):
  _write(tmp_path)
  with pytest.raises(F.FeatureError, match="num_frames: expected 8, found 4"):
    F.load_split(tmp_path, "train", expect_spec={**SPEC, "num_frames": 8})
  _write(tmp_path, index=0, count=2)
  _write(tmp_path, index=1, count=2, spec={**SPEC, "image_size": 64})
  (tmp_path / F.shard_name("train", 0, 1)).unlink()
  with pytest.raises(F.FeatureError, match="image_size"):
    F.load_split(tmp_path, "train")


def test_shards_with_different_class_lists_are_refused(tmp_path):
  _write(tmp_path, index=0, count=2)
  _write(tmp_path, index=1, count=2, classes=["a", "b", "z"])
  with pytest.raises(F.FeatureError, match="class list differs"):
    F.load_split(tmp_path, "train")


@pytest.mark.parametrize("change, message", [
    (lambda a: a["features"].__setitem__((1, 0, 0), np.nan), "NaN or inf"),
    (lambda a: a["features"].__setitem__((1, 0, 0), 1e6), "NaN or inf"),  # float16 overflow
    (lambda a: a["lengths"].__setitem__(2, 9), r"lengths must lie in \[0, 4\]"),
    (lambda a: a["labels"].__setitem__(0, 3), r"labels must lie in \[0, 3\)"),
    (lambda a: a.__setitem__("lengths", a["lengths"][:3]), "need lengths and labels"),
    (lambda a: a.__setitem__("features", a["features"][:, :, 0]), r"must be \[n, t, d\]"),
])
def test_bad_arrays_are_refused_and_nothing_is_written(tmp_path, change, message):
  a = _arrays()
  change(a)
  path = tmp_path / F.shard_name("train", 0, 1)
  with pytest.raises(F.FeatureError, match=message):
    F.write_shard(path, class_names=CLASSES, spec=SPEC, **a)
  assert not list(tmp_path.iterdir())


def test_spec_hash_is_stable_and_sensitive():
  assert F.spec_hash({"a": 1, "b": 2}) == F.spec_hash({"b": 2, "a": 1})
  assert F.spec_hash({"a": 1}) != F.spec_hash({"a": 2})


def test_subsample_frames_takes_what_direct_sampling_of_the_positions_takes():
  from videojax.data.video import sample_indices
  t_max, d = 16, 3
  lengths = np.array([16, 9, 3, 0], np.int32)
  # Position p of clip i holds the value 100 * i + p, so the kept positions can be read back.
  feats = np.zeros((4, t_max, d), np.float16)
  for i, n in enumerate(lengths):
    feats[i, :n] = (100 * i + np.arange(n))[:, None]
  fs = F.FeatureSet(feats, lengths, np.zeros(4, np.int32), list("abcd"), CLASSES,
                    dict(SPEC, num_frames=t_max), [])
  sub = F.subsample_frames(fs, 5)
  assert sub.features.shape == (4, 5, d)
  np.testing.assert_array_equal(sub.lengths, [5, 5, 3, 0])
  for i, n in enumerate(lengths):
    kept = sample_indices(int(n), 5)
    np.testing.assert_array_equal(sub.features[i, :len(kept), 0], 100 * i + kept)
    assert not sub.features[i, len(kept):].any()
  assert sub.spec["num_frames"] == 5 and sub.spec["subsampled_from"] == t_max
  assert F.spec_hash(sub.spec) != F.spec_hash(fs.spec)
  # t_max // 2 from 16 real positions: every other one, starting at the first segment centre.
  np.testing.assert_array_equal(F.subsample_frames(fs, 8).features[0, :, 0], np.arange(16)[1::2])
  assert F.subsample_frames(fs, t_max) is fs
  for bad in (0, t_max + 1):
    with pytest.raises(ValueError, match="data.num_frames"):
      F.subsample_frames(fs, bad)


def test_a_features_dir_on_a_bucket_reads_and_writes_like_a_local_one(memory_bucket, tmp_path):
  """features_dir may be a URL (gs://...): shards, spec.json and failed_videos.csv go
  through etils.epath; h5py reads each shard as a file object. Training reads it so."""
  from videojax.data import parts
  bucket = f"{memory_bucket}/feats"
  assert not (tmp_path / "gs:").exists()
  for split in ("train", "test"):
    for i in range(2):
      _write(files.path(bucket), split, i, 2, failed=[[f"{split}/v{i}", "bad"]],
             video_ids=[f"{split}{i}/{k}" for k in range(5)])
  F.check_spec_file(files.path(bucket), SPEC, CLASSES)
  assert F.write_failure_report(files.path(bucket))[0] == ["test", "test/v0", "bad"]
  with pytest.raises(F.FeatureError, match="holds features of other settings"):
    F.check_spec_file(files.path(bucket), {**SPEC, "image_size": 64}, CLASSES)
  fs = F.load_split(bucket, "train", expect_spec=SPEC)
  assert len(fs) == 10 and fs.video_ids[5] == "train1/0" and fs.spec == SPEC
  index, shard = F.read_index(bucket, "test")
  assert index.video_ids == F.load_split(bucket, "test").video_ids
  assert list(shard) == [0] * 5 + [1] * 5
  assert F.verify_shards(bucket) == ([], 4, 0)
  loaded = parts.load_parts(bucket, num_parts=1, process_index=0, process_count=1,
                            split_validation=lambda idx: (idx, idx.take([])))
  assert len(loaded.test[0]) == 10
  streamed = parts.load_split(bucket, "test", in_memory=False)  # Rows read from the bucket.
  np.testing.assert_array_equal(streamed.features[np.arange(10)], loaded.test[0].features)
  assert not (tmp_path / "gs:").exists() and not pathlib.Path("gs:").exists()  # Not local.
  # A damaged shard on the bucket is named and moved aside as on a disk.
  files.path(f"{bucket}/test-00001-of-00002.h5").write_bytes(b"not hdf5")
  (bad, reason), = F.verify_shards(bucket, ["test"])[0]
  assert str(bad) == f"{bucket}/damaged/test-00001-of-00002.h5" and "damaged" in reason
