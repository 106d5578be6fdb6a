"""Decoding video files into fixed-size clips of uniformly sampled frames.

`read_video` returns `u8[t, h, w, 3]` RGB frames with h = w = image_size and a
length: frames past the length are zero padding that callers must mask out.

The frame count that containers report (`CAP_PROP_FRAME_COUNT`) is only a hint:
AVI files from HMDB-51, for example, report one frame more than they hold, and
some streams report nothing. Frames are therefore read sequentially to the end
of the stream, and when the true count differs from the hint the file is read
again with indices sampled over the frames that really exist.
"""

from __future__ import annotations

import math
import os
import pathlib
from collections.abc import Sequence

import cv2
import numpy as np

# A stream that keeps yielding frames past this is not a clip (a device, a
# broken demuxer); stop rather than loop forever. 2 h at 30 fps.
_MAX_FRAMES = 216_000
# Reading again only helps if the decoder agrees with itself the second time.
_MAX_PASSES = 3


class VideoError(ValueError):
  """A video that cannot be used; the message names the file and the reason."""


def sample_indices(num_available: int, num_frames: int) -> np.ndarray:
  """Indices of `num_frames` frames spread uniformly over a whole clip.

  Frame i is the centre of the i-th of `num_frames` equal segments,
  `floor((i + 0.5) * n / num_frames)`, so the samples cover the whole clip
  rather than its start. Strictly increasing when n >= num_frames.

  Args:
    num_available: n, the number of frames in the clip (>= 0).
    num_frames: t, how many frames are wanted (>= 1).

  Returns:
    i32[min(n, t)]: every index 0..n-1 when n < t, else the t segment centres.

  Raises:
    ValueError: num_available < 0 or num_frames < 1.
  """
  if num_frames < 1:
    raise ValueError(f"num_frames must be >= 1, got {num_frames}")
  if num_available < 0:
    raise ValueError(f"num_available must be >= 0, got {num_available}")
  if num_available < num_frames:
    return np.arange(num_available, dtype=np.int32)
  i = np.arange(num_frames, dtype=np.int64)
  # Integer form of floor((i + 0.5) * n / t): exact for any n, no float error.
  return ((2 * i + 1) * num_available // (2 * num_frames)).astype(np.int32)


def sample_indices_at_scale(num_available: int, num_frames: int,
                            scale: float) -> tuple[np.ndarray, np.ndarray]:
  """`sample_indices` over a window `scale` times the clip, centred on it.

  Position i of L = min(n, t) looks at time n/2 + scale * n * ((i + 0.5) / L
  - 1/2): scale 1 is `sample_indices` exactly, scale < 1 samples the middle
  of the clip more densely (a slower view), scale > 1 spreads the samples
  past both ends (a faster view), and positions that fall outside the clip
  are invalid for that view. Every view has the same L positions, so views
  of one clip can be averaged position by position.

  Args:
    num_available: n >= 0 frames in the clip.
    num_frames: t >= 1.
    scale: > 0.

  Returns:
    (indices i32[L], valid bool[L]); indices are clipped into [0, n) and
    meaningful only where valid.

  Raises:
    ValueError: on n < 0, t < 1 or scale <= 0.
  """
  if not scale > 0:
    raise ValueError(f"temporal scale must be > 0, got {scale}")
  base = sample_indices(num_available, num_frames)
  if scale == 1.0:
    return base, np.ones(len(base), bool)
  n, length = num_available, len(base)
  # n/2 + scale n ((i + .5) / L - .5) over one denominator: exact for exact scales.
  time = (n * length + scale * n * (2 * np.arange(length) + 1 - length)) / max(2 * length, 1)
  valid = (time >= 0) & (time < n)
  return np.clip(np.floor(time), 0, max(n - 1, 0)).astype(np.int32), valid


# Which square of a frame is kept: the centre one, the one at the start (left or
# top) or end (right or bottom) of the long side, or the whole frame squeezed.
CROPS = ("center", "start", "end", "full")


def _to_square_rgb(frame: np.ndarray, image_size: int, crop: str = "center",
                   fraction: float = 1.0) -> np.ndarray:
  """Crops a decoded frame to a square (see CROPS) and resizes it.

  Args:
    frame: u8[h, w, 3] BGR (or u8[h, w] grey, u8[h, w, 4] BGRA) as OpenCV
      decodes it.
    image_size: side of the output.
    crop: one of CROPS.
    fraction: of the short side the square keeps, centred on it (the "crop
      fraction" of ImageNet evaluation: torchvision's resize to 256, crop 224 is
      0.875); "full" keeps this fraction of each side, centred.

  Returns:
    u8[image_size, image_size, 3] RGB.
  """
  h, w = frame.shape[:2]
  if crop == "full":
    rows, cols = max(1, round(h * fraction)), max(1, round(w * fraction))
    share = 0.5
  else:
    rows = cols = max(1, round(min(h, w) * fraction))
    share = {"center": 0.5, "start": 0.0, "end": 1.0}[crop]
  if (rows, cols) != (h, w):
    # Along the long side at `share`; along the short side (or both, for "full") centred.
    top = int((h - rows) * (share if h > w else 0.5))
    left = int((w - cols) * (share if w > h else 0.5))
    frame = frame[top:top + rows, left:left + cols]
  if frame.shape[:2] != (image_size, image_size):
    # INTER_AREA averages the pixels a shrink drops; it aliases less.
    interpolation = cv2.INTER_AREA if min(rows, cols) > image_size else cv2.INTER_LINEAR
    frame = cv2.resize(frame, (image_size, image_size), interpolation=interpolation)
  if frame.ndim == 2:
    return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
  if frame.shape[2] == 4:
    return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
  return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


def _open(path: pathlib.Path) -> cv2.VideoCapture:
  """Opens a file with FFmpeg, else any backend; raises VideoError if none can."""
  # FFmpeg first: CAP_ANY may hand a name containing '%' to the image-sequence
  # backend, which reads other files.
  capture = cv2.VideoCapture(os.fspath(path), cv2.CAP_FFMPEG)
  if not capture.isOpened():
    capture.release()
    capture = cv2.VideoCapture(os.fspath(path), cv2.CAP_ANY)
  if not capture.isOpened():
    capture.release()
    raise VideoError(f"{path}: OpenCV cannot open this file as a video "
                     "(not a video, an unsupported codec or a damaged file)")
  return capture


def _reported_count(capture: cv2.VideoCapture) -> int:
  """The container's frame count, 0 when it is missing or nonsense."""
  count = capture.get(cv2.CAP_PROP_FRAME_COUNT)
  if not math.isfinite(count) or count < 1 or count > _MAX_FRAMES:
    return 0
  return int(round(count))


def _decode_pass(path: pathlib.Path, capture: cv2.VideoCapture, wanted: np.ndarray,
                 image_size: int, crop: str = "center",
                 crop_fraction: float = 1.0) -> tuple[dict[int, np.ndarray], int]:
  """Reads a stream to its end, converting only the wanted frames.

  Args:
    path: the file, for error messages.
    capture: an open capture positioned at the first frame; released here.
    wanted: i32[k] indices of frames to keep.
    image_size: side of the kept frames.

  Returns:
    ({index: u8[image_size, image_size, 3]} for wanted indices that exist,
     the number of frames the stream really holds).
  """
  wanted_set = set(wanted.tolist())
  kept = {}
  count = 0
  try:
    # grab() decodes; retrieve() converts. Skipped frames are only grabbed.
    while capture.grab():
      if count in wanted_set:
        ok, frame = capture.retrieve()
        if not ok or frame is None:
          raise VideoError(f"{path}: frame {count} was read but could not be decoded")
        kept[count] = _to_square_rgb(frame, image_size, crop, crop_fraction)
      count += 1
      if count > _MAX_FRAMES:
        raise VideoError(f"{path}: more than {_MAX_FRAMES} frames; "
                         "the stream does not end like a video file")
  finally:
    capture.release()
  return kept, count


def read_video(path: str | os.PathLike[str], num_frames: int,
               image_size: int) -> tuple[np.ndarray, int]:
  """Decodes `num_frames` frames sampled uniformly over a whole video file.

  Frames are taken at `sample_indices(n, num_frames)` of the n frames the file
  really holds (see the module docstring on frame counts), centre-cropped to a
  square of the short side, resized to `image_size` and converted to RGB.

  Args:
    path: a video file OpenCV's FFmpeg backend can read (.avi, .mp4, ...).
    num_frames: t, the number of frames to return (>= 1).
    image_size: side of each returned frame in pixels (>= 1).

  Returns:
    (frames, length): frames u8[t, image_size, image_size, 3] RGB, and
    length = min(n, t). frames[:length] are the sampled frames in time order;
    frames[length:] are zeros that callers MUST ignore (mask by length).

  Raises:
    ValueError: num_frames < 1 or image_size < 1.
    VideoError: the file is missing, cannot be opened as a video, holds no
      decodable frame, or decodes differently on every read.
  """
  unique, frame_of, length = read_video_views(path, num_frames, image_size, (1.0,))
  frames = np.zeros((num_frames, image_size, image_size, 3), np.uint8)
  frames[:length] = unique[frame_of[0]]
  return frames, length


def read_video_views(path: str | os.PathLike[str], num_frames: int, image_size: int,
                     scales: tuple[float, ...], crop: str = "center",
                     crop_fraction: float = 1.0) -> tuple[np.ndarray, np.ndarray, int]:
  """Decodes the frames of several temporal views of a file, each frame once.

  View v samples `sample_indices_at_scale(n, num_frames, scales[v])`; every
  frame is cropped to the square `crop` (see CROPS) of `crop_fraction` of its
  short side (0 < f <= 1) and resized.

  Returns:
    (frames, frame_of, length): the distinct sampled frames u8[k, s, s, 3] in
    time order; frame_of i32[len(scales), length], the row of `frames` that
    view v shows at position i, or -1 where that position falls outside the
    clip; and length = min(n, num_frames).

  Raises:
    ValueError, VideoError: as `read_video`, and on a scale <= 0.
  """
  if num_frames < 1:
    raise ValueError(f"num_frames must be >= 1, got {num_frames}")
  if image_size < 1:
    raise ValueError(f"image_size must be >= 1, got {image_size}")
  if crop not in CROPS:
    raise ValueError(f"crop={crop!r}; accepted: {', '.join(CROPS)}")
  if not 0 < crop_fraction <= 1:
    raise ValueError(f"crop_fraction={crop_fraction!r}; accepted: 0 < f <= 1")
  path = pathlib.Path(path)
  if not path.is_file():
    reason = "is a directory, not a video file" if path.is_dir() else "no such file"
    raise VideoError(f"{path}: {reason}")

  capture = _open(path)
  count_hint = _reported_count(capture)
  for attempt in range(_MAX_PASSES):
    if attempt:
      capture = _open(path)
    # With no hint nothing is kept: the pass only counts the frames.
    views, wanted = _views(count_hint, num_frames, scales)
    kept, count = _decode_pass(path, capture, wanted, image_size, crop, crop_fraction)
    if count == 0:
      raise VideoError(f"{path}: no decodable frames (reported frame count "
                       f"{count_hint or 'unknown'})")
    if count == count_hint:
      break
    # The hint was wrong: sample again over the frames that exist.
    count_hint = count
  else:
    raise VideoError(f"{path}: the number of decodable frames differs on every "
                     f"read; the file is probably damaged (last read {count})")
  return _assemble(kept, wanted, views)


def _views(num_available: int, num_frames: int, scales: tuple[float, ...]
           ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
  """Per view (indices i32[L], valid bool[L]), and the distinct valid indices, sorted."""
  views = [sample_indices_at_scale(num_available, num_frames, v) for v in scales]
  return views, np.unique(np.concatenate([i[ok] for i, ok in views]))


def _assemble(kept: dict[int, np.ndarray], wanted: np.ndarray,
              views: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, int]:
  """(frames u8[k, s, s, 3], frame_of i32[views, L], L) from the decoded wanted frames."""
  frames = np.stack([kept[i] for i in wanted.tolist()])
  frame_of = np.stack([np.where(ok, np.searchsorted(wanted, i), -1) for i, ok in views])
  return frames, frame_of.astype(np.int32), frame_of.shape[1]


def read_encoded_views(encoded: Sequence[bytes], num_frames: int, image_size: int,
                       scales: tuple[float, ...], name: str, crop: str = "center",
                       crop_fraction: float = 1.0) -> tuple[np.ndarray, np.ndarray, int]:
  """`read_video_views` of a clip stored as one encoded image per frame.

  For frames that a dataset keeps as images (tensorflow-datasets stores a
  video as JPEG frames): the n = len(encoded) frames are sampled exactly as
  the frames of a file, and only the sampled ones are decoded, then centre
  cropped and resized like a file's.

  Args:
    encoded: bytes[n], the frames in time order, each a JPEG/PNG/... image.
    num_frames, image_size, scales, crop, crop_fraction: as `read_video_views`.
    name: the clip, for error messages.

  Returns:
    (frames u8[k, s, s, 3], frame_of i32[len(scales), length], length), as
    `read_video_views`.

  Raises:
    ValueError: num_frames < 1, image_size < 1 or a scale <= 0.
    VideoError: no frames, or a sampled frame that does not decode.
  """
  if num_frames < 1:
    raise ValueError(f"num_frames must be >= 1, got {num_frames}")
  if image_size < 1:
    raise ValueError(f"image_size must be >= 1, got {image_size}")
  if not len(encoded):
    raise VideoError(f"{name}: the clip has no frames")
  views, wanted = _views(len(encoded), num_frames, scales)
  kept = {}
  for i in wanted.tolist():
    # IMREAD_COLOR gives BGR like a decoded video frame, also for grey images.
    frame = cv2.imdecode(np.frombuffer(encoded[i], np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
      raise VideoError(f"{name}: frame {i} of {len(encoded)} is not a decodable image")
    kept[i] = _to_square_rgb(frame, image_size, crop, crop_fraction)
  return _assemble(kept, wanted, views)
