"""Damaged shards are named on read, found by --verify and rewritten; a full disk fails cleanly."""
import errno
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from tests.test_multihost import _write_features
from videojax.data import features as F

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _digests(directory: pathlib.Path) -> dict[str, str]:
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in directory.glob("*.h5")}


def _flip_byte(path: pathlib.Path, dataset: str, chunk: int = 0, xor: int = 0xFF) -> None:
  """Flips bits inside the stored data of `dataset` (a chunk, or the contiguous area)."""
  with h5py.File(path, "r") as f:
    ds = f[dataset]
    if ds.chunks:
      info = ds.id.get_chunk_info(chunk)
      offset, size = info.byte_offset, info.size
    else:
      offset, size = ds.id.get_offset(), ds.id.get_storage_size()
  assert offset is not None and size > 0
  data = bytearray(path.read_bytes())
  data[offset + size // 2 if dataset == "features" else offset] ^= xor
  path.write_bytes(bytes(data))


@pytest.fixture
def shards(tmp_path):
  d = tmp_path / "features"
  d.mkdir()
  _write_features(d, "train", 3, 6, seed=0)
  return d


# labels: flipping the lowest bit of the first label keeps it a valid class, so before
# checksums the damage was read silently as another label.
@pytest.mark.parametrize("dataset, xor", [("features", 0xFF), ("labels", 0x01)])
def test_a_damaged_shard_is_named_on_every_read(shards, dataset, xor):
  bad = shards / F.shard_name("train", 1, 3)
  _flip_byte(bad, dataset, xor=xor)
  with pytest.raises(F.FeatureError, match=rf"{bad}: damaged.*--verify"):
    F.load_split(shards, "train")
  if dataset == "labels":  # The index reads labels but no features.
    with pytest.raises(F.FeatureError, match=rf"{bad}: damaged"):
      F.read_index(shards, "train")


def test_verify_moves_only_the_damaged_shard_aside(shards):
  bad = shards / F.shard_name("train", 2, 3)
  _flip_byte(bad, "features")
  before = _digests(shards)
  damaged, checked, unchecked = F.verify_shards(shards)
  assert [(p, checked, unchecked) for p, _ in damaged] == [(shards / "damaged" / bad.name, 3, 0)]
  assert bad.name in damaged[0][1] and not bad.exists()
  assert _digests(shards) == {k: v for k, v in before.items() if k != bad.name}
  assert F.verify_shards(shards) == ([], 2, 0)


def _write_shard_without_checksums(path: pathlib.Path) -> None:
  """A shard as written before checksums existed (no fletcher32, no ids digest)."""
  with h5py.File(path, "w") as f:
    f.create_dataset("features", data=np.ones((2, 3, 4), np.float16), maxshape=(None, 3, 4),
                     chunks=(1, 3, 4), compression="gzip", shuffle=True)
    f.create_dataset("lengths", data=np.array([3, 1], np.int32))
    f.create_dataset("labels", data=np.array([0, 1], np.int32))
    f.create_dataset("video_ids", data=["a/x", "b/y"], dtype=h5py.string_dtype())
    f.attrs["format_version"] = F.FORMAT_VERSION
    f.attrs["spec"] = json.dumps({"num_frames": 3})
    f.attrs["spec_hash"] = F.spec_hash({"num_frames": 3})
    f.attrs["class_names"] = json.dumps(["a", "b"])
    f.attrs["failed"] = "[]"


def test_shards_without_checksums_are_still_read_and_verified(tmp_path):
  _write_shard_without_checksums(tmp_path / F.shard_name("train", 0, 1))
  assert F.load_split(tmp_path, "train").video_ids == ["a/x", "b/y"]
  assert F.verify_shards(tmp_path) == ([], 1, 1)


def _run(*args, **env):
  return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                        env={**os.environ, "PYTHONPATH": str(ROOT), **env}, timeout=300)


def test_a_full_disk_fails_naming_the_path_and_space_and_leaves_nothing(tmp_path, monkeypatch):
  path = tmp_path / F.shard_name("train", 0, 1)
  arrays = dict(features=np.ones((4, 3, 2)), lengths=np.full(4, 3), labels=np.zeros(4, int),
                video_ids=list("abcd"), class_names=["a"], spec={"t": 3})
  monkeypatch.setattr(shutil, "disk_usage", lambda p: type("U", (), {"free": 100})())
  message = rf"{path}: not enough disk space.*needs .* MB, 0.0 MB free"
  with pytest.raises(OSError, match=message) as e:
    F.write_shard(path, **arrays)
  assert e.value.errno == errno.ENOSPC and not list(tmp_path.iterdir())


def test_a_failed_write_removes_its_temporary_file_and_keeps_the_old_shard(tmp_path, monkeypatch):
  path = tmp_path / F.shard_name("train", 0, 1)
  arrays = dict(features=np.ones((4, 3, 2)), lengths=np.full(4, 3), labels=np.zeros(4, int),
                video_ids=list("abcd"), class_names=["a"], spec={"t": 3})
  F.write_shard(path, **arrays)
  before = path.read_bytes()

  def fail(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")

  for target, name in [(h5py.Group, "create_dataset"), (F.os, "fsync")]:
    with monkeypatch.context() as m:
      m.setattr(target, name, fail)
      with pytest.raises(OSError):
        F.write_shard(path, **{**arrays, "features": np.zeros((4, 3, 2))})
    assert [p.name for p in tmp_path.iterdir()] == [path.name] and path.read_bytes() == before


_FULL_DISK = textwrap.dedent("""
    import pathlib, resource, signal, sys
    import numpy as np
    from videojax.data import features as F
    # A file size limit makes writes fail as a full disk does, without root or a mount.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
    x = np.random.default_rng(0).normal(size=(32, 8, 512))
    try:
      F.write_shard(pathlib.Path(sys.argv[1]), features=x, lengths=np.full(32, 8),
                    labels=np.zeros(32, int), video_ids=[str(i) for i in range(32)],
                    class_names=["a"], spec={})
    except OSError as e:
      print(e)
      sys.exit(3)
""")


def test_a_write_failing_inside_hdf5_exits_cleanly_not_with_a_segfault(tmp_path):
  path = tmp_path / F.shard_name("train", 0, 1)
  r = _run("-c", _FULL_DISK, str(path))
  assert r.returncode == 3, (r.returncode, r.stderr)  # Was 139: HDF5 crashed closing the file.
  assert f"{path}: cannot write the shard" in r.stdout and "needs" in r.stdout
  assert not list(tmp_path.iterdir())


def test_resume_replans_an_unreadable_shard_instead_of_failing(shards):
  index, _ = F.read_index(shards, "train")
  items = [(v, int(l), None) for v, l in zip(index.video_ids, index.labels)]  # As import plans.
  bad = shards / F.shard_name("train", 1, 3)
  bad.write_bytes(bad.read_bytes()[:1000])  # Truncated, e.g. by a copy that ran out of space.
  messages = []
  todo, kept = F.plan_shards(shards, "train", items, 6, {"backbone": "test", "num_frames": 6},
                             echo=messages.append)
  assert [(p, [i[0] for i in chunk]) for p, chunk in todo] == [(bad, index.video_ids[6:12])]
  assert kept == 2 and messages == [
      f"train: shards in {shards} checked against the clip list: 2 shard(s) kept, "
      "1 unreadable to re-extract"]
