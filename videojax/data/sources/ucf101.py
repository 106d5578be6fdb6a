"""UCF-101: classInd.txt and the official split lists (also the demo data's layout).

  <root>/classInd.txt          "1 ApplyEyeMakeup"                 (1-indexed)
  <root>/trainlist01.txt       "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
  <root>/testlist01.txt        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
  <root>/<Class>/v_<Class>_gNN_cMM.avi

Clips of one group (gNN) share actor and background (`groups.ucf_group`). The
official files have CRLF line endings, trailing blanks and one class whose
folder is spelled with a different case (HandstandPushups / HandStandPushups);
all are tolerated.
"""
from __future__ import annotations

import os
import pathlib
from typing import Any

from videojax.data.sources import groups
from videojax.data.sources.base import Clip, Source, check_subset, key, read_lines


class Ucf101(Source):
  """config.data.layout='ucf101': root, split (1-3)."""
  name = "ucf101"
  group_of = staticmethod(groups.ucf_group)

  def class_names(self) -> list[str]:
    return read_class_names(key(self.config, "root"))

  def clips(self, subset: str) -> list[Clip]:
    return read_split(key(self.config, "root"), check_subset(subset), key(self.config, "split"))

  def spec(self) -> dict[str, Any]:
    """{}: features extracted before layouts existed keep their hash."""
    return {}

  def describe(self) -> dict[str, Any]:
    return {"ucf_root": str(pathlib.Path(key(self.config, "root")).resolve()),
            "split": key(self.config, "split")}


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


def _resolve(root: pathlib.Path, folder: str, canonical: str, filename: str) -> pathlib.Path:
  """The file as listed, else under the classInd spelling of its folder."""
  listed = root / folder / filename
  if folder != canonical and not listed.exists():
    fixed = root / canonical / filename
    if fixed.exists():
      return fixed
  return listed


def read_split(root: str | os.PathLike[str], subset: str, split: int = 1) -> list[Clip]:
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
  check_subset(subset)
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
    examples.append(Clip(path=_resolve(root, folder, canonical, filename), label=label,
                            video_id=video_id, group=groups.ucf_group(video_id)))
  if not examples:
    raise ValueError(f"{path}: no clips listed")
  return examples
