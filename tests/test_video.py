"""Tests of videojax.data.video: uniform sampling, decoding, cropping, errors."""

import pathlib

import cv2
import numpy as np
import pytest

from videojax.data import video
from videojax.data.video import VideoError, read_video, sample_indices

# MJPG at OpenCV's default quality moves a flat grey level by a few units.
_JPEG_TOL = 4


def _write_avi(path: pathlib.Path, frames_bgr: np.ndarray, fps: int = 25) -> pathlib.Path:
  """Writes u8[t, h, w, 3] BGR frames as an MJPG .avi."""
  height, width = frames_bgr.shape[1:3]
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
  assert writer.isOpened()
  for frame in frames_bgr:
    writer.write(np.ascontiguousarray(frame))
  writer.release()
  return path


def _grey_ramp(num: int, step: int, size: int = 32) -> np.ndarray:
  """u8[num, size, size, 3] whose frame i is flat grey step * i."""
  return np.stack([np.full((size, size, 3), step * i, np.uint8) for i in range(num)])


def _levels(frames: np.ndarray) -> np.ndarray:
  """f64[t] mean level of each frame."""
  return frames.reshape(len(frames), -1).mean(axis=1)


# --- sample_indices ---------------------------------------------------------


@pytest.mark.parametrize("n,t", [(16, 16), (17, 16), (100, 8), (333, 16), (73, 16), (48, 7)])
def test_sample_indices_uniform_over_whole_clip(n, t):
  idx = sample_indices(n, t)
  assert idx.dtype == np.int32 and idx.shape == (t,)
  assert np.all(np.diff(idx) > 0)
  assert 0 <= idx[0] and idx[-1] < n
  segment = n / t
  assert idx[0] < segment and idx[-1] >= n - segment  # First and last segments.
  # Frame j spans [j, j + 1): it holds the centre of segment i.
  centres = (np.arange(t) + 0.5) * segment
  assert np.all((idx <= centres) & (centres < idx + 1))
  np.testing.assert_array_equal(idx, np.floor((np.arange(t) + 0.5) * n / t).astype(int))


def test_sample_indices_covers_clip_not_its_start():
  idx = sample_indices(300, 16)
  assert idx[0] == 9 and idx[-1] == 290


@pytest.mark.parametrize("n", [0, 1, 5, 15])
def test_sample_indices_short_clip_gives_all(n):
  np.testing.assert_array_equal(sample_indices(n, 16), np.arange(n))


def test_sample_indices_rejects_bad_args():
  with pytest.raises(ValueError, match="num_frames"):
    sample_indices(10, 0)
  with pytest.raises(ValueError, match="num_available"):
    sample_indices(-1, 4)


# --- read_video on real files ----------------------------------------------


def test_read_video_returns_sampled_frames_in_order(tmp_path):
  path = _write_avi(tmp_path / "ramp.avi", _grey_ramp(25, 10))
  frames, length = read_video(path, num_frames=8, image_size=16)
  assert frames.shape == (8, 16, 16, 3) and frames.dtype == np.uint8
  assert length == 8
  expected = 10 * sample_indices(25, 8)
  np.testing.assert_allclose(_levels(frames), expected, atol=_JPEG_TOL)


def test_read_video_short_clip_is_padded_with_zeros(tmp_path):
  path = _write_avi(tmp_path / "short.avi", _grey_ramp(5, 40) + 20)
  frames, length = read_video(str(path), num_frames=8, image_size=16)
  assert length == 5
  np.testing.assert_allclose(_levels(frames[:5]), 20 + 40 * np.arange(5), atol=_JPEG_TOL)
  assert not frames[5:].any()


def test_read_video_upscales_small_frames(tmp_path):
  path = _write_avi(tmp_path / "small.avi", _grey_ramp(4, 50, size=16))
  frames, length = read_video(path, num_frames=4, image_size=40)
  assert frames.shape == (4, 40, 40, 3) and length == 4
  np.testing.assert_allclose(_levels(frames), 50 * np.arange(4), atol=_JPEG_TOL)


@pytest.mark.parametrize("landscape", [True, False])
def test_read_video_crops_the_centre_square(tmp_path, landscape):
  # 160 x 96: the crop keeps columns 32..127. Green bands outside it must go,
  # the white marker at the centre must stay at the centre.
  frame = np.zeros((96, 160, 3), np.uint8)
  frame[:, :24] = frame[:, 136:] = (0, 255, 0)
  frame[40:56, 72:88] = 255
  if not landscape:
    frame = np.ascontiguousarray(frame.transpose(1, 0, 2))
  path = _write_avi(tmp_path / "wide.avi", np.stack([frame] * 3))
  frames, length = read_video(path, num_frames=3, image_size=48)
  assert length == 3
  out = frames[1].astype(int)
  assert out[20:28, 20:28].min() > 200  # The marker, halved to 8 x 8 at the centre.
  assert out[:12, :12].max() < 40 and out[-12:, -12:].max() < 40
  assert (out[..., 1] - out[..., 0]).max() < 40  # No green left.


def test_extraction_reads_the_spec_crop_fraction(tmp_path):
  """extract.read_views passes the spec's crop_fraction: half the short side doubles the
  centre marker (16 px of 96 -> 16 px of 48 kept, resized to 32)."""
  from videojax import extract  # pylint: disable=g-import-not-at-top
  frame = np.zeros((96, 160, 3), np.uint8)
  frame[40:56, 72:88] = 255
  path = _write_avi(tmp_path / "wide.avi", np.stack([frame] * 2))
  spec = {"num_frames": 2, "image_size": 32}
  whole, _, _ = extract.read_views(path, spec)
  half, _, _ = extract.read_views(path, {**spec, "crop_fraction": 0.5})
  marker = lambda f: int((f[0, ..., 0] > 128).sum())
  assert marker(whole) == pytest.approx(5.3 ** 2, rel=0.3)  # 16 * 32 / 96 = 5.3 px a side
  assert marker(half) == pytest.approx(10.7 ** 2, rel=0.3)  # 16 * 32 / 48


def test_read_video_converts_bgr_to_rgb(tmp_path):
  red_bgr = np.zeros((3, 32, 32, 3), np.uint8)
  red_bgr[..., 2] = 255
  frames, _ = read_video(_write_avi(tmp_path / "red.avi", red_bgr), 3, 16)
  assert frames[..., 0].min() > 200
  assert frames[..., 1:].max() < 50


def test_read_video_samples_over_frames_that_exist_when_count_lies(tmp_path):
  # Cutting the tail off an AVI leaves the header's frame count intact.
  data = _write_avi(tmp_path / "full.avi", _grey_ramp(30, 8)).read_bytes()
  path = tmp_path / "cut.avi"
  path.write_bytes(data[:int(len(data) * 0.8)])
  capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
  reported, actual = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0
  while capture.grab():
    actual += 1
  capture.release()
  if not 8 <= actual < reported:
    pytest.skip(f"this FFmpeg reports {reported} and decodes {actual}: nothing to test")
  frames, length = read_video(path, 8, 16)
  assert length == 8
  np.testing.assert_allclose(_levels(frames), 8 * sample_indices(actual, 8), atol=_JPEG_TOL)


# --- read_video's decoding logic, on a scripted capture -----------------------


class _FakeCapture:
  """A capture of frames u8[4, 4, 3] filled with their index, reporting `reported`."""

  def __init__(self, num: int | None, reported: float, log: dict):
    self.num, self.reported, self.log, self.pos = num, reported, log, 0
    log["opens"] = log.get("opens", 0) + 1

  def isOpened(self):  # noqa: N802 (OpenCV's name)
    return True

  def get(self, prop):
    assert prop == cv2.CAP_PROP_FRAME_COUNT
    return self.reported

  def grab(self):
    if self.num is not None and self.pos >= self.num:
      return False
    self.pos += 1
    return True

  def retrieve(self):
    self.log["retrieves"] = self.log.get("retrieves", 0) + 1
    return True, np.full((4, 4, 3), self.pos - 1, np.uint8)

  def release(self):
    pass


@pytest.fixture
def fake_file(tmp_path):
  path = tmp_path / "fake.avi"
  path.write_bytes(b"stands in for a video")
  return path


def _use_fake(monkeypatch, num, reported):
  log = {}
  monkeypatch.setattr(video.cv2, "VideoCapture",
                      lambda *args: _FakeCapture(num, reported, log))
  return log


def test_read_video_converts_only_kept_frames_when_count_is_right(monkeypatch, fake_file):
  log = _use_fake(monkeypatch, num=40, reported=40.0)
  frames, length = read_video(fake_file, 8, 4)
  assert length == 8 and log == {"opens": 1, "retrieves": 8}
  np.testing.assert_array_equal(frames[:, 0, 0, 0], sample_indices(40, 8))


@pytest.mark.parametrize("reported", [100.0, 39.0, 20.0, 0.0, -1.0, float("nan")])
def test_read_video_is_uniform_over_real_frames_whatever_the_count(
    monkeypatch, fake_file, reported):
  log = _use_fake(monkeypatch, num=40, reported=reported)
  frames, length = read_video(fake_file, 8, 4)
  assert length == 8 and log["opens"] == 2
  np.testing.assert_array_equal(frames[:, 0, 0, 0], sample_indices(40, 8))


def test_read_video_stops_an_endless_stream(monkeypatch, fake_file):
  monkeypatch.setattr(video, "_MAX_FRAMES", 1000)
  _use_fake(monkeypatch, num=None, reported=0.0)
  with pytest.raises(VideoError, match="more than 1000 frames"):
    read_video(fake_file, 8, 4)


def test_read_video_gives_up_on_a_count_that_keeps_changing(monkeypatch, fake_file):
  counts = iter([30, 31, 32, 33])
  monkeypatch.setattr(video.cv2, "VideoCapture",
                      lambda *args: _FakeCapture(next(counts), 0.0, {}))
  with pytest.raises(VideoError, match="differs on every read"):
    read_video(fake_file, 8, 4)


# --- errors -------------------------------------------------------------------


def test_read_video_missing_file(tmp_path):
  path = tmp_path / "nope.avi"
  with pytest.raises(VideoError, match="no such file") as info:
    read_video(path, 8, 16)
  assert str(path) in str(info.value)


def test_read_video_directory(tmp_path):
  with pytest.raises(VideoError, match="directory"):
    read_video(tmp_path, 8, 16)


def test_read_video_text_file_named_avi(tmp_path):
  path = tmp_path / "notes.avi"
  path.write_text("this is not a video\n" * 20)
  with pytest.raises(VideoError) as info:
    read_video(path, 8, 16)
  assert str(path) in str(info.value)


def test_read_video_zero_frames(tmp_path):
  path = tmp_path / "empty.avi"
  writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (32, 32))
  writer.release()
  with pytest.raises(VideoError) as info:
    read_video(path, 8, 16)
  assert str(path) in str(info.value)


def test_read_video_bad_args(tmp_path):
  path = _write_avi(tmp_path / "ok.avi", _grey_ramp(3, 10))
  with pytest.raises(ValueError, match="num_frames"):
    read_video(path, 0, 16)
  with pytest.raises(ValueError, match="image_size"):
    read_video(path, 4, 0)


# --- real footage ---------------------------------------------------------------


def _decode_all(path: pathlib.Path, size: int) -> np.ndarray:
  """Reference: every frame, centre-cropped, resized and RGB, u8[n, size, size, 3]."""
  capture = cv2.VideoCapture(str(path))
  out = []
  while True:
    ok, frame = capture.read()
    if not ok:
      break
    h, w = frame.shape[:2]
    s = min(h, w)
    frame = frame[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
    frame = cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
    out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
  capture.release()
  return np.stack(out)


def test_read_video_real_clips(shared_data):
  paths = sorted(p for p in (shared_data / "real_clips").iterdir()
                 if p.suffix in (".avi", ".mp4"))
  assert len(paths) >= 10 and {p.suffix for p in paths} == {".avi", ".mp4"}
  for path in paths:
    frames, length = read_video(path, num_frames=16, image_size=48)
    assert frames.shape == (16, 48, 48, 3) and length == 16, path
    every = _decode_all(path, 48)
    assert 48 <= len(every) <= 333, path
    np.testing.assert_array_equal(frames, every[sample_indices(len(every), 16)],
                                  err_msg=str(path))


# --- temporal views -----------------------------------------------------------


@pytest.mark.parametrize("n,t", [(5, 8), (60, 16), (17, 16)])
def test_scale_one_is_plain_sampling(n, t):
  idx, valid = video.sample_indices_at_scale(n, t, 1.0)
  np.testing.assert_array_equal(idx, sample_indices(n, t))
  assert valid.all()


def test_slower_view_stays_inside_and_faster_view_runs_past_the_ends():
  slow, slow_ok = video.sample_indices_at_scale(100, 10, 0.5)
  assert slow_ok.all() and slow.min() >= 25 and slow.max() < 75
  assert (np.diff(slow) > 0).all()
  fast, fast_ok = video.sample_indices_at_scale(100, 10, 2.0)
  # Times 50 + 200 * ((i + .5) / 10 - .5) = 20 i - 40: -40, -20, 0, 20, ..., 140.
  np.testing.assert_array_equal(fast_ok, [False, False] + [True] * 5 + [False] * 3)
  np.testing.assert_array_equal(fast[fast_ok], [0, 20, 40, 60, 80])
  with pytest.raises(ValueError, match="scale"):
    video.sample_indices_at_scale(10, 4, 0.0)


def test_views_decode_each_frame_once_and_agree_with_read_video(tmp_path):
  path = _write_avi(tmp_path / "ramp.avi", _grey_ramp(40, 6))
  frames, frame_of, length = video.read_video_views(path, 8, 16, (1.0, 0.5, 1.5))
  assert length == 8 and frame_of.shape == (3, 8)
  used = np.unique(frame_of[frame_of >= 0])
  np.testing.assert_array_equal(used, np.arange(len(frames)))  # Nothing decoded twice or unused.
  plain, plain_length = read_video(path, 8, 16)
  assert plain_length == length
  np.testing.assert_array_equal(frames[frame_of[0]], plain)
  for v, scale in enumerate((1.0, 0.5, 1.5)):
    idx, ok = video.sample_indices_at_scale(40, 8, scale)
    np.testing.assert_array_equal(frame_of[v] >= 0, ok)
    # Frame i of the ramp is grey level 6 i.
    np.testing.assert_allclose(_levels(frames[frame_of[v][ok]]), 6 * idx[ok], atol=_JPEG_TOL)


def test_crops_keep_the_named_square_of_a_landscape_frame():
  from videojax.data.video import CROPS, _to_square_rgb
  frame = np.zeros((4, 12, 3), np.uint8)  # BGR thirds: blue, green, red from left to right
  frame[:, :4, 0], frame[:, 4:8, 1], frame[:, 8:, 2] = 200, 200, 200
  rgb = {crop: _to_square_rgb(frame, 4, crop) for crop in CROPS}
  np.testing.assert_array_equal(rgb["start"][..., 2], 200)  # blue (RGB channel 2) only
  np.testing.assert_array_equal(rgb["center"][..., 1], 200)
  np.testing.assert_array_equal(rgb["end"][..., 0], 200)
  assert rgb["start"][..., :2].max() == rgb["end"][..., 1:].max() == 0
  # full squeezes all three thirds into the square.
  assert all(rgb["full"][..., c].max() == 200 for c in range(3))
  with pytest.raises(ValueError, match="crop='top'; accepted: center, start, end, full"):
    video.read_video_views(__file__, 4, 4, (1.0,), crop="top")


def test_a_crop_fraction_keeps_the_central_part_of_the_short_side():
  """torchvision's resize to 256 and centre crop of 224: the central 0.875 of the short side."""
  from videojax.data.video import _to_square_rgb
  rng = np.random.default_rng(0)
  frame = rng.integers(0, 256, (64, 96, 3), np.uint8)  # BGR
  # 56 of the 64 rows (no resize at 56 px): rows 4..59, columns 20..75, as RGB.
  np.testing.assert_array_equal(_to_square_rgb(frame, 56, "center", 0.875),
                                frame[4:60, 20:76, ::-1])
  # start / end: the same square's side, at the long side's ends, centred on the short one.
  np.testing.assert_array_equal(_to_square_rgb(frame, 56, "start", 0.875),
                                frame[4:60, :56, ::-1])
  np.testing.assert_array_equal(_to_square_rgb(frame, 56, "end", 0.875), frame[4:60, 40:, ::-1])
  # full: that fraction of each side (56 x 84), squeezed.
  np.testing.assert_array_equal(_to_square_rgb(frame, 56, "full", 0.875),
                                _to_square_rgb(frame[4:60, 6:90], 56, "full"))
  with pytest.raises(ValueError, match="crop_fraction=0; accepted: 0 < f <= 1"):
    video.read_video_views(__file__, 4, 4, (1.0,), crop_fraction=0)
