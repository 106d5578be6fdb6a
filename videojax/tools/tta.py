"""Test-time augmentation: temporal views of per-frame features, picked by name.

Each view rearranges the real positions of every clip (the first `lengths[i]`
of features f[n, t, d]) and returns new features of the same [n, t, d] with new
lengths: real positions stay a prefix, everything past them is zero and masked.
The shape never changes, so a jitted model compiles once for every view.

  original  the clip as it is.
  reversed  the real positions backwards (padding stays at the end). Wrong for
            classes told apart by direction (open/close, push/pull), hence not
            a default.
  faster    every second real position (0, 2, 4, ...): twice the speed, ceil(L/2) long.
  slower    the middle half of the real positions (max(1, L // 2) of them), each
            repeated twice: half the speed; 2 * max(1, L // 2) long, at most t.
  offsets   three views that start 1/8, 1/4 and 3/8 of the way in (position
            floor(j * L / 8), j = 1, 2, 3, at most L - 1) and run to the end.

A clip with no real positions stays empty in every view.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

DEFAULT: tuple[str, ...] = ("original",)
OFFSET_EIGHTHS: tuple[int, ...] = (1, 2, 3)

Index = np.ndarray  # i64[n, t]: the source position of each output position, -1 for padding.


def _from_positions(positions: Callable[[int], np.ndarray], lengths: np.ndarray,
                    t: int) -> tuple[Index, np.ndarray]:
  """The index of a view whose real positions are `positions(L)` for a clip of L (cut at t)."""
  index = np.full((len(lengths), t), -1, np.int64)
  new_lengths = np.zeros(len(lengths), np.int32)
  for length in np.unique(lengths):
    rows = np.flatnonzero(lengths == length)
    src = positions(int(length))[:t] if length > 0 else np.zeros(0, np.int64)
    index[rows, :len(src)] = src
    new_lengths[rows] = len(src)
  return index, new_lengths


def _slower(length: int) -> np.ndarray:
  half = max(1, length // 2)
  start = (length - half) // 2
  return np.repeat(np.arange(start, start + half), 2)


def _offset(eighths: int) -> Callable[[int], np.ndarray]:
  return lambda length: np.arange(min(eighths * length // 8, length - 1), length)


_VIEWS: dict[str, tuple[Callable[[int], np.ndarray], ...]] = {
    "original": (np.arange,),
    "reversed": (lambda length: np.arange(length)[::-1],),
    "faster": (lambda length: np.arange(0, length, 2),),
    "slower": (_slower,),
    "offsets": tuple(_offset(j) for j in OFFSET_EIGHTHS),
}
MODES: tuple[str, ...] = tuple(_VIEWS)


def parse_modes(modes: str | Iterable[str], flag: str = "--tta") -> tuple[str, ...]:
  """Validated mode names from a comma list or a sequence, in order, without repeats.

  Raises:
    ValueError: an unknown or empty selection; the message names `flag` and the modes.
  """
  names = modes.split(",") if isinstance(modes, str) else list(modes)
  names = [n.strip() for n in names if n.strip()]
  unknown = [n for n in names if n not in _VIEWS]
  if unknown or not names:
    raise ValueError(f"{flag}={','.join(names) or repr('')}: "
                     + (f"unknown mode(s) {', '.join(unknown)}; " if unknown else "no mode; ")
                     + f"accepted: {', '.join(MODES)} (comma-separated)")
  return tuple(dict.fromkeys(names))


def num_views(modes: Iterable[str]) -> int:
  """How many views the modes give (offsets gives several)."""
  return sum(len(_VIEWS[m]) for m in parse_modes(modes))


def view_indices(lengths: np.ndarray, num_frames: int,
                 mode: str) -> list[tuple[Index, np.ndarray]]:
  """The views of one mode as gathers: [(index i64[n, t], lengths i32[n]), ...].

  index[i, p] is the source position of output position p of clip i, or -1
  where the view is padding (p >= its new length).

  Raises:
    ValueError: an unknown mode, or lengths outside [0, num_frames].
  """
  (mode,) = parse_modes([mode], flag="mode")
  lengths = np.asarray(lengths)
  if lengths.ndim != 1 or (lengths < 0).any() or (lengths > num_frames).any():
    raise ValueError(f"lengths must be i32[n] in [0, {num_frames}]")
  return [_from_positions(f, lengths, num_frames) for f in _VIEWS[mode]]


def gather(features: np.ndarray, index: Index) -> np.ndarray:
  """f[n, t, d] with row p of clip i taken from position index[i, p]; zeros where index < 0."""
  rows = np.arange(len(features))[:, None]
  out = features[rows, np.maximum(index, 0)]
  out[index < 0] = 0
  return out


def views(features: np.ndarray, lengths: np.ndarray,
          modes: Iterable[str] = DEFAULT) -> list[tuple[np.ndarray, np.ndarray]]:
  """Every view of the selected modes: [(features f[n, t, d], lengths i32[n]), ...].

  Args:
    features: f[n, t, d]; positions past `lengths` are ignored.
    lengths: i32[n] real positions per clip.
    modes: names from MODES; a comma string is accepted too.

  Raises:
    ValueError: unknown modes, or lengths outside [0, t].
  """
  features = np.asarray(features)
  if features.ndim != 3 or len(features) != len(np.asarray(lengths)):
    raise ValueError(f"features must be [n, t, d] with lengths [n]; got {features.shape} and "
                     f"{np.shape(lengths)}")
  return [(gather(features, index), new_lengths)
          for mode in parse_modes(modes)
          for index, new_lengths in view_indices(lengths, features.shape[1], mode)]
