"""What every data source yields: clips with label, group and path; the class order.

A source (`videojax.data.sources.get(config.data)`) knows one way a dataset is
laid out on disk. It answers `class_names()` (names[label] is the class of a
label) and `clips(subset)` for the subsets 'train' and 'test', and gives the
settings that decide which clip lands in which subset (`spec`), which extraction
adds to its spec so that shards of another split never mix. Video files are not
checked to exist: extraction reports missing or unreadable files one by one.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from videojax.data.sources import groups

SUBSETS = ("train", "test")


@dataclasses.dataclass(frozen=True)
class Clip:
  """One clip of a subset.

  Attributes:
    path: the video file (not checked to exist); where `frames` is set, only a
      description of where the frames are.
    label: class index, 0-indexed into the source's `class_names()`.
    video_id: the clip's path below the dataset root without extension, e.g.
      'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01'; unique within a subset.
    group: clips that share actor and scene (or come from one source video),
      e.g. 'ApplyEyeMakeup_g08'; "" where no group can be known, and then the
      clip counts as a group of its own (`groups.split_by_group`).
    frames: None for a clip in a video file; for a clip stored as frames (the
      tfds_ucf101 source), returns its n encoded images (JPEG, PNG: bytes[n])
      in time order. Not compared.
  """
  path: pathlib.Path
  label: int
  video_id: str
  group: str
  frames: Callable[[], Sequence[bytes]] | None = dataclasses.field(
      default=None, compare=False, repr=False)


def class_order(labels: Iterable[str]) -> list[str]:
  """The class order of every source that does not list its classes itself.

  The rule: the distinct names, sorted by Python's `sorted` (by code point, so
  'B' < 'a' and '10' < '9'), of the clips that define the classes (a CSV's
  train rows, the class folders, HMDB's class files). Sources that list their
  classes (UCF-101's classInd.txt) keep that order. The order is written into
  every shard and into the run's meta, and evaluation and prediction use the
  stored order; it is never re-derived from the data.

  Returns:
    k names; names[label] is the class of label.
  """
  return sorted(set(labels))


def key(data_config, name: str) -> Any:
  """config.data.<name>, or a ValueError naming it when the config lacks it."""
  if name not in data_config:
    raise ValueError(f"config.data.{name} is missing; add it (see configs/default.py)")
  return data_config[name]


def check_subset(subset: str) -> str:
  """`subset` if it is one of SUBSETS, else ValueError."""
  if subset not in SUBSETS:
    raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
  return subset


def read_text(path: pathlib.Path) -> str:
  """The text of a UTF-8 file, without a byte-order mark; ValueError naming it if not UTF-8."""
  try:
    return path.read_bytes().decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise ValueError(f"{path}: not a UTF-8 text file ({e})") from e


def read_lines(path: pathlib.Path) -> list[tuple[int, str]]:
  """(1-based line number, stripped text) of the non-blank lines of a UTF-8 file.

  Raises:
    ValueError, naming the file: it is missing or not UTF-8 text.
  """
  if not path.is_file():
    raise ValueError(f"{path}: file not found")
  # splitlines() handles CRLF and CR.
  text = read_text(path)
  return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


class Source:
  """A dataset layout: its classes and the clips of each subset.

  Subclasses set `name` (the config.data.layout value), `spec_keys` (keys of
  config.data besides root and split that move clips between subsets) and
  `group_of` (a clip's group from its video_id alone, for shards written before
  groups were stored), and implement `class_names` and `clips`.
  """
  name: str = ""
  spec_keys: tuple[str, ...] = ()
  group_of = staticmethod(groups.source_group)

  def __init__(self, data_config):
    self.config = data_config

  def class_names(self) -> list[str]:
    """k names; names[label] is the class of a label. ValueError naming the file or key."""
    raise NotImplementedError

  def clips(self, subset: str) -> list[Clip]:
    """The clips of 'train' or 'test', labels indexing `class_names()`.

    Raises:
      ValueError, naming the config key or the file and line at fault: an
        unknown subset, missing or malformed lists, unknown labels, a clip
        listed twice, no clips.
    """
    raise NotImplementedError

  def spec(self) -> dict[str, Any]:
    """What extraction adds to its spec: {'layout': name} and the values of `spec_keys`."""
    return {"layout": self.name, **{k: key(self.config, k) for k in self.spec_keys}}

  def describe(self) -> dict[str, Any]:
    """Where the lists come from, with absolute paths: the 'labels' of an import spec."""
    root = pathlib.Path(os.fspath(key(self.config, "root"))).resolve()
    return {"layout": self.name, "root": str(root), "split": self.config.get("split"),
            **self.spec()}
