"""The embedded demo dataset: small synthetic actions written as real video files.

Two kinds of class:
- ORDER_PAIRS: the second class of a pair is the first played backwards (the
  same renderer, frames in reverse order), so within a pair the multiset of
  frames carries no information; only a model of temporal order can tell them
  apart. Every other random draw (noise, wobble, drift) is i.i.d. per frame or
  symmetric under time reversal, so nothing else leaks the direction.
- APPEARANCE_CLASSES: textures that any single frame identifies, moving or
  flickering so that they are videos rather than stills.

Clips come in groups, like UCF-101's: a class's clips in one group share
background, object colour, size and shape, so splits must keep groups whole.
The files follow the UCF-101 layout (see `videojax.data.sources.ucf101`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil

import cv2
import numpy as np

ORDER_PAIRS: tuple[tuple[str, str], ...] = (
    ("MoveRight", "MoveLeft"),
    ("Grow", "Shrink"),
    ("MoveDown", "MoveUp"),
)
APPEARANCE_CLASSES: tuple[str, ...] = ("Stripes", "Checkerboard", "ScatteredDots")
CLASS_NAMES: tuple[str, ...] = tuple(n for pair in ORDER_PAIRS for n in pair) + APPEARANCE_CLASSES

_MARKER = ".complete"
# Bump when the rendering changes, so old datasets are not silently reused.
_FORMAT_VERSION = 1
_BACKWARD = {backward: forward for forward, backward in ORDER_PAIRS}


@dataclasses.dataclass(frozen=True)
class _Style:
  """What clips of one class and group share (UCF groups share actor and scene)."""
  background: np.ndarray   # f32[3] mean colour
  texture: np.ndarray      # f32[4, 4, 3] low-frequency pattern, upsampled per size
  colour: np.ndarray       # f32[3] object colour, far from the background in every channel
  scale: float             # object size as a fraction of the frame side
  shape: int               # 0 disc, 1 square, 2 diamond


def _draw_style(rng: np.random.Generator) -> _Style:
  background = rng.uniform(30, 225, 3)
  # Half the range away in every channel (mod 256) keeps the object visible.
  colour = (background + 128 + rng.uniform(-40, 40, 3)) % 256
  texture = rng.uniform(-1, 1, (4, 4, 3)) * rng.uniform(8, 20)
  return _Style(background=background.astype(np.float32), texture=texture.astype(np.float32),
                colour=colour.astype(np.float32), scale=float(rng.uniform(0.07, 0.13)),
                shape=int(rng.integers(3)))


def _coverage(shape: int, cx: np.ndarray, cy: np.ndarray, r: np.ndarray,
              size: int) -> np.ndarray:
  """Anti-aliased coverage f32[t, size, size] of one shape per frame.

  Args:
    shape: 0 disc, 1 square, 2 diamond.
    cx, cy, r: f32[t] centre and radius in pixels.
    size: frame side.
  """
  grid = np.arange(size, dtype=np.float32) + 0.5
  dx = np.abs(grid[None, None, :] - cx[:, None, None].astype(np.float32))
  dy = np.abs(grid[None, :, None] - cy[:, None, None].astype(np.float32))
  if shape == 0:
    dist = np.sqrt(dx * dx + dy * dy)
  elif shape == 1:
    dist = np.maximum(dx, dy)
  else:
    dist = (dx + dy) * 0.75
  return np.clip(r[:, None, None].astype(np.float32) - dist + 0.5, 0, 1)


def _cross(rng: np.random.Generator, style: _Style, t: int, size: int,
           horizontal: bool) -> np.ndarray:
  """Coverage of an object crossing the frame left->right (or top->bottom)."""
  r = np.full(t, style.scale * size * rng.uniform(0.9, 1.1))
  start = rng.uniform(-0.5 * r[0], 0.3 * size)
  end = rng.uniform(0.7 * size, size + 0.5 * r[0])
  along = np.linspace(start, end, t)
  # A sine wobble with uniform phase is the same family backwards.
  phase = np.linspace(0, 2 * np.pi * rng.uniform(0.5, 1.5), t) + rng.uniform(0, 2 * np.pi)
  across = size * rng.uniform(0.25, 0.75) + size * rng.uniform(0, 0.04) * np.sin(phase)
  cx, cy = (along, across) if horizontal else (across, along)
  return _coverage(style.shape, cx, cy, r, size)


def _grow(rng: np.random.Generator, style: _Style, t: int, size: int) -> np.ndarray:
  """Coverage of an object growing geometrically, drifting in a random direction."""
  angle = rng.uniform(0, 2 * np.pi)
  drift = np.linspace(0, 1, t) * size * rng.uniform(0, 0.1)
  cx = size * (0.5 + rng.uniform(-0.12, 0.12)) + drift * np.cos(angle)
  cy = size * (0.5 + rng.uniform(-0.12, 0.12)) + drift * np.sin(angle)
  r0 = style.scale * size * rng.uniform(0.3, 0.5)
  r1 = min(style.scale * size * rng.uniform(2.2, 3.2), 0.42 * size)
  r = r0 * (r1 / r0) ** np.linspace(0, 1, t)
  return _coverage(style.shape, cx, cy, r, size)


def _stripes(rng: np.random.Generator, style: _Style, t: int, size: int) -> np.ndarray:
  """Coverage of soft stripes near an axis (+-20 deg), sliding across the frame."""
  normal = rng.choice([0.0, np.pi / 2]) + np.deg2rad(rng.uniform(-20, 20))
  period = size * rng.uniform(0.15, 0.3)
  speed = rng.choice([-1, 1]) * size * rng.uniform(0.005, 0.03)
  grid = np.arange(size, dtype=np.float32) + 0.5
  u = grid[None, :] * np.cos(normal) + grid[:, None] * np.sin(normal)
  offset = rng.uniform(0, period) + speed * np.arange(t)
  wave = np.sin(2 * np.pi * (u[None] - offset[:, None, None]) / period)
  return np.clip(wave * 3, -1, 1) * 0.5 + 0.5


def _checkerboard(rng: np.random.Generator, style: _Style, t: int, size: int) -> np.ndarray:
  """Coverage of an axis-aligned checkerboard drifting slowly, contrast flickering."""
  cell = size * rng.uniform(0.08, 0.15)
  angle = rng.uniform(0, 2 * np.pi)
  steps = np.arange(t) * size * rng.uniform(0, 0.01)
  ox = rng.uniform(0, 2 * cell) + steps * np.cos(angle)
  oy = rng.uniform(0, 2 * cell) + steps * np.sin(angle)
  grid = np.arange(size, dtype=np.float32) + 0.5
  sx = np.sin(np.pi * (grid[None, None, :] - ox[:, None, None]) / cell)
  sy = np.sin(np.pi * (grid[None, :, None] - oy[:, None, None]) / cell)
  contrast = rng.uniform(0.75, 0.9) + 0.1 * rng.uniform(-1, 1, t)
  return (np.clip(sx * sy * 4, -1, 1) * 0.5 + 0.5) * contrast[:, None, None]


def _scattered_dots(rng: np.random.Generator, style: _Style, t: int, size: int) -> np.ndarray:
  """Coverage of a dozen or more small dots jittering, each twinkling off at random."""
  count = int(rng.integers(12, 30))
  radius = size * rng.uniform(0.02, 0.035)
  start = rng.uniform(0, size, (count, 2))
  jitter = np.cumsum(rng.normal(0, 0.01 * size, (t, count, 2)), axis=0)
  visible = rng.random((t, count)) > 0.1
  positions = start[None] + jitter
  coverage = np.zeros((t, size, size), np.float32)
  for k in range(count):
    dot = _coverage(style.shape, positions[:, k, 0], positions[:, k, 1],
                    np.full(t, radius), size)
    coverage = np.maximum(coverage, dot * visible[:, k, None, None])
  return coverage


# Forward classes only; each returns the object's coverage f32[t, size, size].
_RENDERERS = {
    "MoveRight": lambda rng, style, t, size: _cross(rng, style, t, size, horizontal=True),
    "MoveDown": lambda rng, style, t, size: _cross(rng, style, t, size, horizontal=False),
    "Grow": _grow,
    "Stripes": _stripes,
    "Checkerboard": _checkerboard,
    "ScatteredDots": _scattered_dots,
}


def _render(class_name: str, style: _Style, rng: np.random.Generator, num_frames: int,
            size: int) -> np.ndarray:
  """A clip u8[t, size, size, 3] RGB of a class in a given group style."""
  if class_name not in CLASS_NAMES:
    raise ValueError(f"unknown class {class_name!r}; expected one of {CLASS_NAMES}")
  if num_frames < 1:
    raise ValueError(f"num_frames must be >= 1, got {num_frames}")
  if size < 16:
    raise ValueError(f"size must be >= 16, got {size}")
  # Draws happen in the same order for both members of a pair: the backward
  # one is then exactly the forward one reversed.
  forward = _BACKWARD.get(class_name, class_name)
  background = style.background + cv2.resize(style.texture, (size, size),
                                             interpolation=cv2.INTER_CUBIC)
  background = (background + rng.normal(0, 6, 3)).astype(np.float32)
  colour = (style.colour + rng.normal(0, 6, 3)).astype(np.float32)
  cover = _RENDERERS[forward](rng, style, num_frames, size).astype(np.float32)[..., None]
  # background + cover * (colour - background), in place: this is the hot loop.
  frames = cover * (colour - background)
  frames += background
  noise = rng.standard_normal(frames.shape, dtype=np.float32)
  noise *= np.float32(rng.uniform(2, 6))
  frames += noise
  frames = np.clip(frames, 0, 255, out=frames).round(out=frames).astype(np.uint8)
  if forward != class_name:
    frames = np.ascontiguousarray(frames[::-1])
  return frames


def render_clip(class_name: str, rng: np.random.Generator, num_frames: int,
                size: int) -> np.ndarray:
  """Renders one clip of a demo class, group style drawn from `rng` too.

  For every pair (forward, backward) in ORDER_PAIRS and equal generators,
  `render_clip(backward, ...)` is exactly `render_clip(forward, ...)[::-1]`.

  Args:
    class_name: one of CLASS_NAMES.
    rng: the source of every random draw; equal states give equal clips.
    num_frames: t >= 1.
    size: frame side in pixels, >= 16.

  Returns:
    u8[t, size, size, 3] RGB frames.

  Raises:
    ValueError: an unknown class, num_frames < 1 or size < 16.
  """
  return _render(class_name, _draw_style(rng), rng, num_frames, size)


def _write_avi(path: pathlib.Path, frames: np.ndarray, fps: int) -> None:
  """Writes u8[t, h, w, 3] RGB frames as an MJPG .avi."""
  height, width = frames.shape[1:3]
  writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*"MJPG"), fps,
                           (width, height))
  if not writer.isOpened():
    raise OSError(f"{path}: OpenCV cannot open an MJPG video writer (is FFmpeg missing?)")
  try:
    for frame in frames:
      writer.write(np.ascontiguousarray(frame[..., ::-1]))  # OpenCV writes BGR.
  finally:
    writer.release()


def _write_all(folder: pathlib.Path, args: dict) -> None:
  """Writes every clip and the three UCF-101 list files into `folder`."""
  folder.mkdir(parents=True)
  train, test = [], []
  for label, name in enumerate(CLASS_NAMES):
    (folder / name).mkdir()
    for group in range(1, args["groups"] + 1):
      # Keyed by (class, group, clip), so any clip is reproducible on its own.
      style = _draw_style(np.random.default_rng(
          np.random.SeedSequence(args["seed"], spawn_key=(label, group))))
      for clip in range(1, args["clips_per_group"] + 1):
        rng = np.random.default_rng(
            np.random.SeedSequence(args["seed"], spawn_key=(label, group, clip)))
        length = int(rng.integers(args["min_frames"], args["max_frames"] + 1))
        frames = _render(name, style, rng, length, args["size"])
        rel = f"{name}/v_{name}_g{group:02d}_c{clip:02d}.avi"
        _write_avi(folder / rel, frames, args["fps"])
        if group <= args["groups"] - args["test_groups"]:
          train.append(f"{rel} {label + 1}\n")
        else:
          test.append(f"{rel}\n")
  (folder / "classInd.txt").write_text(
      "".join(f"{i} {n}\n" for i, n in enumerate(CLASS_NAMES, 1)))
  (folder / "trainlist01.txt").write_text("".join(train))
  (folder / "testlist01.txt").write_text("".join(test))


def _read_marker(root: pathlib.Path) -> dict | None:
  """The generation arguments of a complete dataset at root, else None."""
  marker = root / _MARKER
  if not marker.is_file():
    return None
  try:
    return json.loads(marker.read_text())
  except (ValueError, OSError) as e:
    raise ValueError(f"{marker}: unreadable marker of the demo dataset ({e}); "
                     "delete the folder to regenerate it") from e


def write_dataset(root: str | os.PathLike[str], *, clips_per_group: int = 2, groups: int = 10,
                  test_groups: int = 3, min_frames: int = 12, max_frames: int = 60,
                  size: int = 96, fps: int = 25, seed: int = 0) -> pathlib.Path:
  """Writes the demo dataset in the UCF-101 layout, once.

  `<root>/<Class>/v_<Class>_gNN_cMM.avi` (MJPG), `classInd.txt`,
  `trainlist01.txt` (groups 1..groups-test_groups, labelled) and
  `testlist01.txt` (the last test_groups groups). Clip lengths are uniform in
  [min_frames, max_frames]. Everything is written beside root and moved into
  place in one rename, with a marker of the arguments, so an interrupted run
  leaves nothing half-written and a second call with equal arguments returns
  at once. Equal arguments give identical decoded frames.

  Args:
    root: the dataset folder to create.
    clips_per_group: clips of each class in each group (>= 1).
    groups: groups per class (>= 2).
    test_groups: how many of the last groups form the test split (1..groups-1).
    min_frames, max_frames: clip length bounds, 2 <= min_frames <= max_frames.
    size: frame side in pixels (>= 16).
    fps: frame rate written into the files (>= 1).
    seed: a non-negative integer.

  Returns:
    root as a Path.

  Raises:
    ValueError: an invalid argument; root holds a dataset written with other
      arguments, or something that is not a complete dataset.
    OSError: the video writer cannot be opened.
  """
  if clips_per_group < 1 or groups < 2 or not 1 <= test_groups < groups:
    raise ValueError(f"need clips_per_group >= 1, groups >= 2 and 1 <= test_groups < groups; "
                     f"got {clips_per_group}, {groups}, {test_groups}")
  if not 2 <= min_frames <= max_frames:
    raise ValueError(f"need 2 <= min_frames <= max_frames, got {min_frames}, {max_frames}")
  if size < 16 or fps < 1 or seed < 0:
    raise ValueError(f"need size >= 16, fps >= 1, seed >= 0; got {size}, {fps}, {seed}")
  root = pathlib.Path(root)
  args = dict(version=_FORMAT_VERSION, class_names=list(CLASS_NAMES),
              clips_per_group=clips_per_group, groups=groups, test_groups=test_groups,
              min_frames=min_frames, max_frames=max_frames, size=size, fps=fps, seed=seed)

  def check_existing() -> bool:
    existing = _read_marker(root)
    if existing is None:
      return False
    if existing != args:
      raise ValueError(f"{root}: holds a demo dataset written with {existing}, "
                       f"not the requested {args}; delete it or pick another folder")
    return True

  if check_existing():
    return root
  if root.exists() and (not root.is_dir() or any(root.iterdir())):
    raise ValueError(f"{root}: exists but is not a complete demo dataset "
                     f"(no {_MARKER}); delete it or pick another folder")
  root.parent.mkdir(parents=True, exist_ok=True)
  tmp = root.parent / f"{root.name}.tmp-{os.getpid()}"
  shutil.rmtree(tmp, ignore_errors=True)  # Left by a crashed run of this pid.
  try:
    _write_all(tmp, args)
    # The marker goes last: its presence means every file is complete.
    (tmp / _MARKER).write_text(json.dumps(args, indent=1) + "\n")
    try:
      os.replace(tmp, root)
    except OSError:
      # Another process may have finished first; its dataset is as good.
      if check_existing():
        shutil.rmtree(tmp, ignore_errors=True)
        return root
      raise
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return root
