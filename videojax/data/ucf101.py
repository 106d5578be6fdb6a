"""The UCF-101 directory layout and split files (also used by the demo data).

  <root>/classInd.txt          "1 ApplyEyeMakeup"                 (1-indexed)
  <root>/trainlist01.txt       "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
  <root>/testlist01.txt        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
  <root>/<Class>/v_<Class>_gNN_cMM.avi

Clips of one group (gNN) share actor and background, so any split that puts
clips of one group on both sides leaks: `split_by_group` keeps groups whole.
The official files have CRLF line endings, trailing blanks and one class whose
folder is spelled with a different case (HandstandPushups / HandStandPushups);
all are tolerated. Whether the video files exist is not checked here: feature
extraction reports missing or unreadable files one by one.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
from collections.abc import Callable, Sequence

import numpy as np

_SUBSETS = ("train", "test")
# v_<Class>_g08_c01 -> <Class>_g08; the clip number is optional.
_GROUP_RE = re.compile(r"^(?:v_)?(?P<group>.+_g\d+)(?:_c\d+)?$")


@dataclasses.dataclass(frozen=True)
class Example:
  """One clip of a split.

  Attributes:
    path: the video file, `<root>/<Class>/<name>.avi` (not checked to exist);
      where `frames` is set, only a description of where the frames are.
    label: class index, 0-indexed (classInd's number minus one).
    video_id: path relative to the root without extension, with the class
      folder spelled as in classInd, e.g. 'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01'.
    group: clips that share actor and scene (or come from one source video),
      e.g. 'ApplyEyeMakeup_g08'; "" where no group can be known, and then
      the clip counts as a group of its own (`split_by_group`).
    frames: None for a clip in a video file; for a clip stored as frames (the
      tfds_ucf101 layout of `datasets`), returns its n encoded images (JPEG,
      PNG: bytes[n]) in time order. Not compared.
  """
  path: pathlib.Path
  label: int
  video_id: str
  group: str
  frames: Callable[[], Sequence[bytes]] | None = dataclasses.field(
      default=None, compare=False, repr=False)


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


def read_class_names(root: str | os.PathLike[str]) -> list[str]:
  """Class names from `<root>/classInd.txt`, in index order.

  Args:
    root: the dataset folder.

  Returns:
    k names; names[label] is the class of 0-indexed label.

  Raises:
    ValueError, naming the file and line: the file is missing or empty, a line
      is not "<index> <name>", an index or a name repeats, or the indices are
      not exactly 1..k.
  """
  path = pathlib.Path(root) / "classInd.txt"
  by_index: dict[int, tuple[str, int]] = {}
  seen_names: dict[str, int] = {}
  for lineno, line in read_lines(path):
    parts = line.split()
    if len(parts) != 2 or not parts[0].isdigit():
      raise ValueError(f"{path}:{lineno}: expected '<index> <ClassName>', got {line!r}")
    index, name = int(parts[0]), parts[1]
    if index in by_index:
      raise ValueError(f"{path}:{lineno}: duplicate class index {index} "
                       f"(already line {by_index[index][1]})")
    if name.lower() in seen_names:
      raise ValueError(f"{path}:{lineno}: duplicate class name {name!r} "
                       f"(already line {seen_names[name.lower()]})")
    by_index[index] = (name, lineno)
    seen_names[name.lower()] = lineno
  if not by_index:
    raise ValueError(f"{path}: no classes")
  if sorted(by_index) != list(range(1, len(by_index) + 1)):
    raise ValueError(f"{path}: class indices must be 1..{len(by_index)}, "
                     f"got {sorted(by_index)}")
  return [by_index[i][0] for i in range(1, len(by_index) + 1)]


def group_of(video_id: str) -> str:
  """The group of a clip: its class and gNN, parsed from the file name.

  Args:
    video_id: e.g. 'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01'.

  Returns:
    e.g. 'ApplyEyeMakeup_g08'; "" (unknown) when the name has no gNN.
  """
  match = _GROUP_RE.match(video_id.rsplit("/", 1)[-1])
  return match.group("group") if match else ""


def _resolve(root: pathlib.Path, folder: str, canonical: str, filename: str) -> pathlib.Path:
  """The file as listed, else under the classInd spelling of its folder."""
  listed = root / folder / filename
  if folder != canonical and not listed.exists():
    fixed = root / canonical / filename
    if fixed.exists():
      return fixed
  return listed


def read_split(root: str | os.PathLike[str], subset: str, split: int = 1) -> list[Example]:
  """The clips of `<root>/{subset}list0{split}.txt`, in file order.

  Train lines are "<Class>/<file>.avi <label>" (label 1-indexed); test lines
  are "<Class>/<file>.avi". The class always comes from the folder, matched
  to classInd.txt without regard to case; a label, where given, must agree.

  Args:
    root: the dataset folder.
    subset: 'train' or 'test'.
    split: which of the official splits, 1-3 for UCF-101.

  Returns:
    the examples, labels 0-indexed.

  Raises:
    ValueError, naming the file and line: a missing classInd or split file, a
      malformed line, a class not in classInd, a label out of range or one that
      disagrees with the class folder, a clip listed twice, or no clips.
  """
  if subset not in _SUBSETS:
    raise ValueError(f"subset must be one of {_SUBSETS}, got {subset!r}")
  root = pathlib.Path(root)
  class_names = read_class_names(root)
  label_of = {name.lower(): label for label, name in enumerate(class_names)}
  path = root / f"{subset}list{split:02d}.txt"
  examples = []
  first_line: dict[str, int] = {}
  for lineno, line in read_lines(path):
    where = f"{path}:{lineno}"
    parts = line.split()
    if len(parts) not in (1, 2):
      raise ValueError(f"{where}: expected '<Class>/<file> [label]', got {line!r}")
    rel = parts[0].replace("\\", "/")
    folders = rel.split("/")
    if len(folders) != 2 or not all(folders):
      raise ValueError(f"{where}: expected a path '<Class>/<file>', got {rel!r}")
    folder, filename = folders
    if folder.lower() not in label_of:
      raise ValueError(f"{where}: class folder {folder!r} is not in "
                       f"{root / 'classInd.txt'}")
    label = label_of[folder.lower()]
    if len(parts) == 2:
      if not parts[1].isdigit():
        raise ValueError(f"{where}: label must be a positive integer, got {parts[1]!r}")
      listed = int(parts[1])
      if not 1 <= listed <= len(class_names):
        raise ValueError(f"{where}: label {listed} out of range 1..{len(class_names)}")
      if listed - 1 != label:
        raise ValueError(f"{where}: label {listed} ({class_names[listed - 1]}) disagrees "
                         f"with the class folder {folder!r} (label {label + 1})")
    canonical = class_names[label]
    video_id = f"{canonical}/{pathlib.PurePosixPath(filename).stem}"
    if video_id in first_line:
      raise ValueError(f"{where}: {rel} is listed twice (also line {first_line[video_id]})")
    first_line[video_id] = lineno
    examples.append(Example(path=_resolve(root, folder, canonical, filename), label=label,
                            video_id=video_id, group=group_of(video_id)))
  if not examples:
    raise ValueError(f"{path}: no clips listed")
  return examples


def split_by_group(examples: Sequence[Example], fraction: float,
                   seed: int) -> tuple[list[Example], list[Example]]:
  """Holds out about `fraction` of the groups of every class, groups kept whole.

  Each class holds out round(fraction * its groups), at least one and at most
  all but one when it has two or more groups, so every such class appears on
  both sides; a class with a single group stays in `rest`. If no class has two
  groups but there are two or more groups, one group is held out. A clip whose
  group is "" (unknown) is a group of its own, named by its video_id. The
  choice depends only on the examples' groups and the seed.

  Args:
    examples: clips of a split (e.g. from `read_split(..., 'train')`).
    fraction: share of groups to hold out, 0 <= fraction < 1.
    seed: a non-negative integer.

  Returns:
    (rest, held_out), each in the order of `examples`.

  Raises:
    ValueError: fraction outside [0, 1) or a negative seed.
  """
  if not 0 <= fraction < 1:
    raise ValueError(f"fraction must be in [0, 1), got {fraction}")
  if seed < 0:
    raise ValueError(f"seed must be >= 0, got {seed}")
  # A group belongs to the class of its first clip (in UCF names all agree).
  group_of_clip = [e.group or e.video_id for e in examples]
  class_of_group: dict[str, int] = {}
  for example, group in zip(examples, group_of_clip):
    class_of_group.setdefault(group, example.label)
  groups_of_class: dict[int, list[str]] = {}
  for group, label in class_of_group.items():
    groups_of_class.setdefault(label, []).append(group)

  held: set[str] = set()
  if fraction > 0:
    for label, groups in sorted(groups_of_class.items()):
      if len(groups) < 2:
        continue
      count = min(max(int(np.floor(fraction * len(groups) + 0.5)), 1), len(groups) - 1)
      # Sorted first, so the shuffle sees the same list whatever the input order.
      groups = sorted(groups)
      order = np.random.default_rng([seed, label]).permutation(len(groups))
      held.update(groups[i] for i in order[:count])
    if not held and len(class_of_group) >= 2:
      groups = sorted(class_of_group)
      held.add(groups[int(np.random.default_rng([seed]).integers(len(groups)))])
  rest = [e for e, g in zip(examples, group_of_clip) if g not in held]
  held_out = [e for e, g in zip(examples, group_of_clip) if g in held]
  return rest, held_out
