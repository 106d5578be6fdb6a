"""HMDB-51: a folder per class and the official split files.

  <root>/<class>/<video>.avi
  <split_dir>/<class>_test_split<N>.txt    "<video>.avi <0|1|2>" (1 train, 2 test, 0 unused)

Classes are the class files' names in `base.class_order`; clips come in line
order; a clip's group is its class and source video (`groups.hmdb_group`).
"""
from __future__ import annotations

import pathlib

from videojax.data.sources import groups
from videojax.data.sources.base import Clip, Source, check_subset, class_order, key, read_lines

SPLIT_DIR = "testTrainMulti_7030_splits"
_SUBSET = {"1": "train", "2": "test"}  # "0": not used in this split


class Hmdb51(Source):
  """config.data.layout='hmdb51': root, split (1-3), split_dir ("": <root>/SPLIT_DIR)."""
  name = "hmdb51"
  group_of = staticmethod(groups.hmdb_group)

  def _files(self) -> tuple[pathlib.Path, dict[str, pathlib.Path]]:
    """(split folder, {class: its split-N file}) in class order."""
    c = self.config
    root, given, split = pathlib.Path(key(c, "root")), key(c, "split_dir"), key(c, "split")
    folder = root / given if given else root / SPLIT_DIR
    if not folder.is_dir():
      raise ValueError(f"{folder}: no such folder of HMDB-51 split files (config.data.split_dir="
                       f"{given!r}; empty means <root>/{SPLIT_DIR})")
    suffix = f"_test_split{split}.txt"
    files = {p.name[:-len(suffix)]: p for p in folder.iterdir()
             if p.name.endswith(suffix) and len(p.name) > len(suffix) and p.is_file()}
    if not files:
      raise ValueError(f"{folder}: no '<class>{suffix}' files (config.data.split={split}; "
                       "HMDB-51 has splits 1-3)")
    return folder, {cls: files[cls] for cls in class_order(files)}

  def class_names(self) -> list[str]:
    return list(self._files()[1])

  def clips(self, subset: str) -> list[Clip]:
    """Clips marked 1 (train) or 2 (test) in the class files, lines in order."""
    check_subset(subset)
    root = pathlib.Path(key(self.config, "root"))
    folder, files = self._files()
    clips = []
    for label, (cls, path) in enumerate(files.items()):
      first_line: dict[str, int] = {}
      for lineno, line in read_lines(path):
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
          raise ValueError(f"{path}:{lineno}: expected '<video>.avi <0|1|2>' (1 train, 2 test, "
                           f"0 unused), got {line!r}")
        name = parts[0]
        if "/" in name or "\\" in name:
          raise ValueError(f"{path}:{lineno}: expected a file name in <root>/{cls}/, got {name!r}")
        if name in first_line:
          raise ValueError(f"{path}:{lineno}: {name} is listed twice (also line "
                           f"{first_line[name]})")
        first_line[name] = lineno
        if _SUBSET.get(parts[1]) == subset:
          video_id = f"{cls}/{pathlib.PurePosixPath(name).stem}"
          clips.append(Clip(path=root / cls / name, label=label, video_id=video_id,
                            group=groups.hmdb_group(video_id)))
    if not clips:
      raise ValueError(f"{folder}: no clip is marked {'1' if subset == 'train' else '2'} "
                       f"({subset}) in the *_test_split{key(self.config, 'split')}.txt files")
    return clips
