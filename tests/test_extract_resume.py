"""Resumed extraction after the clip list changed, and repair of a damaged shard, on real videos.

Storing the frames themselves (extract.frames=pixels, no backbone) keeps extraction fast on CPU.
"""
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from configs import default
from videojax import extract
from videojax.data import features as F
from videojax.data import synthetic

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _extract_config(root, features_dir):
  c = default.get_config()
  c.data.root, c.data.features_dir = str(root), str(features_dir)
  c.extract.frames = "pixels"
  c.extract.image_size, c.data.num_frames = 8, 4
  c.extract.shard_size, c.extract.batch_size = 2, 8
  c.extract.num_workers, c.extract.num_devices = 1, 1
  return c


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
  """9 training clips, one per class."""
  return synthetic.write_dataset(tmp_path_factory.mktemp("videos") / "ucf", groups=2,
                                 test_groups=1, clips_per_group=1, size=32, min_frames=4,
                                 max_frames=6)


@pytest.fixture
def setup(videos, tmp_path):
  root = tmp_path / "videos"
  shutil.copytree(videos, root)
  lines = (root / "trainlist01.txt").read_text().splitlines()
  config = _extract_config(root, tmp_path / "features")
  return root, lines, config


def _extract(config, lines=None):
  if lines is not None:
    (pathlib.Path(config.data.root) / "trainlist01.txt").write_text("\n".join(lines) + "\n")
  messages = []
  report = extract.extract_features(config, splits=("train",), echo=messages.append)
  return report, messages


def _state(directory: pathlib.Path) -> dict[str, tuple[str, int]]:
  """{shard name: (sha256, mtime_ns)}."""
  return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
          for p in directory.glob("*.h5")}


def _ids(lines):
  return [line.split()[0].rsplit(".", 1)[0] for line in lines]


def test_resume_after_the_list_changed_extracts_what_is_missing(setup):
  root, lines, config = setup
  held_out, first = lines[8], lines[:8]
  _extract(config, first)  # 4 shards of 2.
  features = pathlib.Path(config.data.features_dir)
  (features / F.shard_name("train", 3, 4)).unlink()  # Interrupted before the last shard.
  before = _state(features)
  # Remove clip 4, add the held-out clip, reorder the last two: 8 clips, 4 shards again.
  edited = first[:4] + [first[5], held_out] + [first[7], first[6]]
  report, messages = _extract(config, edited)
  assert F.load_split(features, "train").video_ids == _ids(edited)
  assert (report["extracted"], report["skipped"]) == (2, 2)
  after = _state(features)
  for j in (0, 1):  # Untouched shards: not rewritten.
    assert after[F.shard_name("train", j, 4)] == before[F.shard_name("train", j, 4)]
  assert "2 shard(s) kept, 1 to re-extract because their clips changed" in messages[0]


def test_resume_with_another_shard_count_reuses_whole_shards_and_removes_stale_ones(setup):
  root, lines, config = setup
  held_out, first = lines[8], lines[:8]
  _extract(config, first)
  features = pathlib.Path(config.data.features_dir)
  before = _state(features)
  edited = first[:4] + [first[4], first[6], first[5], held_out, first[7]]  # 9 clips, 5 shards.
  report, messages = _extract(config, edited)
  assert F.load_split(features, "train").video_ids == _ids(edited)
  assert (report["extracted"], report["skipped"]) == (3, 2)
  after = _state(features)
  assert sorted(after) == [F.shard_name("train", j, 5) for j in range(5)]
  for j in (0, 1):  # Renamed, not re-extracted: same bytes, same mtime.
    assert after[F.shard_name("train", j, 5)] == before[F.shard_name("train", j, 4)]
  assert any("removed 2 stale shard(s)" in m for m in messages), messages
  assert _extract(config)[0]["extracted"] == 0  # Resuming again finds everything whole.


def test_a_damaged_shard_is_named_verified_aside_and_re_extracted_alone(setup, tmp_path):
  from tests.test_shard_integrity import _flip_byte
  root, lines, config = setup
  _extract(config)  # 9 clips, 5 shards.
  features = pathlib.Path(config.data.features_dir)
  bad = features / F.shard_name("train", 2, 5)
  _flip_byte(bad, "features")
  before = _state(features)
  with pytest.raises(F.FeatureError, match=rf"{bad}: damaged.*--verify"):
    F.load_split(features, "train")
  config_file = tmp_path / "config.py"
  config_file.write_text("from tests.test_extract_resume import _extract_config\n"
                         f"def get_config():\n  return _extract_config({str(root)!r}, "
                         f"{str(features)!r})\n")
  r = subprocess.run([sys.executable, "scripts/extract_features.py", f"--config={config_file}",
                      "--splits=train", "--verify"], cwd=ROOT, capture_output=True, text=True,
                     env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
  assert r.returncode != 0, r.stderr
  assert f"damaged: {bad}: damaged" in r.stdout and "1 of 5 shard(s)" in r.stderr, r.stderr
  assert (features / "damaged" / bad.name).exists() and not bad.exists()
  report, _ = _extract(config)
  assert (report["extracted"], report["skipped"]) == (1, 4)
  after = _state(features)
  assert {k: v for k, v in after.items() if k != bad.name} == \
      {k: v for k, v in before.items() if k != bad.name}
  assert F.load_split(features, "train").video_ids == _ids(lines)
  assert F.verify_shards(features) == ([], 5, 0)


def test_the_packer_keeps_a_batch_in_flight_without_overwriting_it():
  """FramePacker dispatches a full batch, then collects the one before: an embed computed
  only when collected (as a jax.Array may be) must still see each batch's own frames."""

  class Lazy:  # The features of `frames` as they are when np.asarray asks, like a late device.
    def __init__(self, frames):
      self.frames = frames
    def __array__(self, dtype=None, copy=None):
      return self.frames.reshape(len(self.frames), -1)[:, :1].astype(np.float32)

  packer = extract.FramePacker(Lazy, batch_size=2, num_clips=3, num_frames=3, image_size=1,
                               feature_dim=1)
  for clip in range(3):  # Frame value 10 * clip + position: 9 frames over 5 batches of 2.
    frames = (10 * clip + np.arange(3, dtype=np.uint8)).reshape(3, 1, 1, 1).repeat(3, -1)
    packer.add(clip, frames, np.arange(3)[None])
  packer.flush()
  np.testing.assert_array_equal(packer.features[..., 0],
                                10 * np.arange(3)[:, None] + np.arange(3)[None])
