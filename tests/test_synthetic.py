"""Tests of videojax.data.synthetic: layout, splits, reversal pairs, determinism."""

import json
import pathlib

import cv2
import numpy as np
import pytest

from videojax.data import synthetic
from videojax.data.synthetic import (APPEARANCE_CLASSES, CLASS_NAMES, ORDER_PAIRS,
                                     render_clip, write_dataset)
from videojax.data.sources.ucf101 import read_class_names, read_split
from videojax.data.video import read_video

# Small enough to write in about a second.
_SMALL = dict(clips_per_group=2, groups=3, test_groups=1, min_frames=6, max_frames=20, size=32)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> pathlib.Path:
  return write_dataset(tmp_path_factory.mktemp("synthetic") / "demo", **_SMALL)


def _decode_all(root: pathlib.Path) -> dict[str, np.ndarray]:
  """{relative path: u8[n, size, size, 3]} of every clip in a dataset."""
  out = {}
  for path in sorted(root.glob("*/*.avi")):
    frames, length = read_video(path, _SMALL["max_frames"], _SMALL["size"])
    out[str(path.relative_to(root))] = frames[:length]
  return out


def test_class_names():
  assert len(ORDER_PAIRS) >= 3 and len(APPEARANCE_CLASSES) == 3
  assert CLASS_NAMES == tuple(n for p in ORDER_PAIRS for n in p) + APPEARANCE_CLASSES
  assert len(set(CLASS_NAMES)) == len(CLASS_NAMES)
  pairs = {frozenset(p) for p in ORDER_PAIRS}
  for pair in [("MoveLeft", "MoveRight"), ("Grow", "Shrink"), ("MoveUp", "MoveDown")]:
    assert frozenset(pair) in pairs


def test_layout_and_splits(small):
  assert read_class_names(small) == list(CLASS_NAMES)
  train, test = read_split(small, "train"), read_split(small, "test")
  assert len(train) == len(CLASS_NAMES) * 2 * 2 and len(test) == len(CLASS_NAMES) * 2
  for e in train + test:
    assert e.path.is_file(), e.path
    name = CLASS_NAMES[e.label]
    assert e.path.parent.name == name
    assert e.path.name.startswith(f"v_{name}_g") and e.path.suffix == ".avi"
  assert {e.group.rsplit("_", 1)[1] for e in train} == {"g01", "g02"}
  assert {e.group.rsplit("_", 1)[1] for e in test} == {"g03"}
  assert (small / "testlist01.txt").read_text().splitlines()[0] == \
      f"{CLASS_NAMES[0]}/v_{CLASS_NAMES[0]}_g03_c01.avi"
  assert not list(small.parent.glob("*.tmp-*"))


def test_clips_decode_with_varied_lengths(small):
  clips = _decode_all(small)
  assert len(clips) == len(CLASS_NAMES) * 3 * 2
  lengths = [len(c) for c in clips.values()]
  assert min(lengths) >= _SMALL["min_frames"] and max(lengths) <= _SMALL["max_frames"]
  assert len(set(lengths)) >= 6
  # Every clip moves or flickers: it is a video, not a still.
  for rel, frames in clips.items():
    assert np.abs(np.diff(frames.astype(float), axis=0)).mean() > 1.0, rel


@pytest.mark.parametrize("forward,backward", ORDER_PAIRS)
def test_backward_class_is_forward_reversed(forward, backward):
  for seed in range(3):
    ahead = render_clip(forward, np.random.default_rng(seed), 17, 40)
    back = render_clip(backward, np.random.default_rng(seed), 17, 40)
    assert ahead.shape == (17, 40, 40, 3) and ahead.dtype == np.uint8
    np.testing.assert_array_equal(back, ahead[::-1])
    assert not np.array_equal(ahead, back)  # Not a palindrome: order matters.


def _object_track(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Centroid x, y and area f64[t] of pixels far from the clip's median frame."""
  background = np.median(frames.astype(float), axis=0)
  far = np.abs(frames - background).sum(-1) > 150
  ys, xs = np.mgrid[:frames.shape[1], :frames.shape[2]]
  area = far.sum((1, 2))
  weights = np.maximum(area, 1)
  return (far * xs).sum((1, 2)) / weights, (far * ys).sum((1, 2)) / weights, area


@pytest.mark.parametrize("name,axis,sign", [
    ("MoveRight", 0, 1), ("MoveLeft", 0, -1), ("MoveDown", 1, 1), ("MoveUp", 1, -1),
    ("Grow", 2, 1), ("Shrink", 2, -1)])
def test_order_classes_move_the_right_way(name, axis, sign):
  for seed in range(5):
    frames = render_clip(name, np.random.default_rng(seed), 24, 64)
    track = _object_track(frames)[axis]
    assert sign * (track[-3:].mean() - track[:3].mean()) > 10, (name, seed, track)


def _single_frame_stats(frame: np.ndarray) -> tuple[float, float]:
  """(gradient anisotropy, edge density) of one u8[h, w, 3] frame."""
  smooth = cv2.GaussianBlur(frame.astype(np.float32), (5, 5), 1.0)
  dx = np.abs(np.diff(smooth, axis=1)).sum(-1)[:-1]
  dy = np.abs(np.diff(smooth, axis=0)).sum(-1)[:, :-1]
  anisotropy = abs(dx.sum() - dy.sum()) / (dx.sum() + dy.sum())
  return anisotropy, float((np.maximum(dx, dy) > 40).mean())


def _classify_frame(frame: np.ndarray) -> str:
  anisotropy, edges = _single_frame_stats(frame)
  if anisotropy > 0.3:
    return "Stripes"
  return "Checkerboard" if edges > 0.24 else "ScatteredDots"


def test_appearance_classes_separable_from_one_frame():
  rng = np.random.default_rng(0)
  for name in APPEARANCE_CLASSES:
    for _ in range(25):
      frames = render_clip(name, rng, 12, 96)
      assert _classify_frame(frames[rng.integers(12)]) == name


def test_appearance_classes_separable_after_encoding(small):
  for e in read_split(small, "test"):
    name = CLASS_NAMES[e.label]
    if name in APPEARANCE_CLASSES:
      frames, _ = read_video(e.path, 1, 96)  # Upscaled to the statistic's scale.
      assert _classify_frame(frames[0]) == name, e.path


def test_render_clip_rejects_bad_args():
  rng = np.random.default_rng(0)
  with pytest.raises(ValueError, match="unknown class 'Jump'"):
    render_clip("Jump", rng, 8, 32)
  with pytest.raises(ValueError, match="num_frames"):
    render_clip("Grow", rng, 0, 32)


def test_deterministic_by_seed(small, tmp_path):
  again = write_dataset(tmp_path / "again", **_SMALL)
  first, second = _decode_all(small), _decode_all(again)
  assert first.keys() == second.keys()
  for rel in first:
    np.testing.assert_array_equal(first[rel], second[rel], err_msg=rel)
  other = write_dataset(tmp_path / "other", **{**_SMALL, "seed": 1})
  rel = next(iter(first))
  assert not np.array_equal(first[rel][:1], _decode_all(other)[rel][:1])


def test_rerun_is_a_noop(small):
  before = {p: p.stat().st_mtime_ns for p in small.rglob("*")}
  assert write_dataset(small, **_SMALL) == small
  assert {p: p.stat().st_mtime_ns for p in small.rglob("*")} == before
  assert json.loads((small / ".complete").read_text())["seed"] == 0


def test_different_args_raise(small):
  with pytest.raises(ValueError, match=r"written with .*'seed': 0.*requested .*'seed': 5"):
    write_dataset(small, **{**_SMALL, "seed": 5})


def test_foreign_folder_raises(tmp_path):
  (tmp_path / "demo").mkdir()
  (tmp_path / "demo" / "notes.txt").write_text("mine")
  with pytest.raises(ValueError, match="not a complete demo dataset"):
    write_dataset(tmp_path / "demo", **_SMALL)


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
  calls = []

  def failing_write(path, frames, fps):
    calls.append(path)
    if len(calls) == 5:
      raise OSError("disk full")
    path.write_bytes(b"")

  monkeypatch.setattr(synthetic, "_write_avi", failing_write)
  with pytest.raises(OSError, match="disk full"):
    write_dataset(tmp_path / "demo", **_SMALL)
  assert list(tmp_path.iterdir()) == []


def test_invalid_args(tmp_path):
  with pytest.raises(ValueError, match="test_groups"):
    write_dataset(tmp_path / "a", groups=3, test_groups=3)
  with pytest.raises(ValueError, match="min_frames"):
    write_dataset(tmp_path / "b", min_frames=10, max_frames=5)
