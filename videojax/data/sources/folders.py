"""A folder per class: <root>/{train,test}/<Class>/<video>, or <root>/<Class>/<video>.

Without train/ and test/, the pool is split by group (`groups.split_by_group`)
with config.data.test_fraction and config.data.split_seed. Classes are the
train class folders in `base.class_order`; clips come in name order. A clip's
group is the source video its name was cut from (`groups.source_group`).
"""
from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Any

from videojax.data.sources import groups
from videojax.data.sources.base import SUBSETS, Clip, Source, check_subset, class_order, key

# Lower-case suffixes taken for videos; other files are ignored.
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg",
                    ".wmv", ".flv", ".3gp", ".ogv")


def _scan_classes(base: pathlib.Path) -> dict[str, list[pathlib.Path]]:
  """{class folder name: its video files, sorted} in class order."""
  folders = {p.name: p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")}
  if not folders:
    raise ValueError(f"{base}: no class folders; config.data.layout='folders' expects "
                     "<Class>/<video> under it")
  out = {}
  for name in class_order(folders):
    folder = folders[name]
    videos = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                    and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not videos:
      raise ValueError(f"{folder}: class folder holds no video (no file ending in "
                       f"{', '.join(VIDEO_EXTENSIONS)}); remove it or add its clips")
    out[name] = videos
  return out


def _clips(root: pathlib.Path, classes: dict[str, list[pathlib.Path]],
           label_of: Mapping[str, int]) -> list[Clip]:
  clips: list[Clip] = []
  first: dict[str, pathlib.Path] = {}
  for cls, videos in classes.items():
    for path in videos:
      video_id = path.relative_to(root).with_suffix("").as_posix()
      if video_id in first:
        raise ValueError(f"{path} and {first[video_id]}: two videos with one name; "
                         f"video_id {video_id!r} must be unique")
      first[video_id] = path
      clips.append(Clip(path=path, label=label_of[cls], video_id=video_id,
                        group=groups.source_group(video_id, cls)))
  return clips


class Folders(Source):
  """config.data.layout='folders': root; test_fraction, split_seed for a pool."""
  name = "folders"
  spec_keys = ("test_fraction", "split_seed")

  def _base(self, subset: str) -> pathlib.Path:
    """<root>/<subset> when root has train/ and test/; root itself when it has neither."""
    root = pathlib.Path(key(self.config, "root"))
    if not root.is_dir():
      raise ValueError(f"{root}: no such folder (config.data.root)")
    present = [s for s in SUBSETS if (root / s).is_dir()]
    if len(present) == 1:
      missing = next(s for s in SUBSETS if s not in present)
      raise ValueError(f"{root}: has {present[0]}/ but no {missing}/; give both (each with a "
                       "folder per class) or neither (one folder per class, split by "
                       "config.data.test_fraction)")
    return root / subset if present else root

  def class_names(self) -> list[str]:
    return list(_scan_classes(self._base("train")))

  def clips(self, subset: str) -> list[Clip]:
    check_subset(subset)
    c = self.config
    root = pathlib.Path(key(c, "root"))
    base = self._base(subset)
    train_classes = _scan_classes(self._base("train"))
    label_of = {cls: i for i, cls in enumerate(train_classes)}
    if base != root:  # train/ and test/
      classes = train_classes if subset == "train" else _scan_classes(base)
      for cls in classes:
        if cls not in label_of:
          raise ValueError(f"{base / cls}: class {cls!r} has no folder in {root / 'train'}")
      return _clips(root, classes, label_of)
    fraction, seed = key(c, "test_fraction"), key(c, "split_seed")
    if not 0 < fraction < 1:
      raise ValueError(f"config.data.test_fraction={fraction} must lie in (0, 1) to split "
                       f"{root} (no train/ and test/ folders)")
    if not isinstance(seed, int) or seed < 0:
      raise ValueError(f"config.data.split_seed={seed!r} must be an integer >= 0")
    train, test = groups.split_by_group(_clips(root, train_classes, label_of), fraction, seed)
    return train if subset == "train" else test

  def spec(self) -> dict[str, Any]:
    """A pool (no train/ and test/) adds 'groups': 'source': its test split is drawn by
    `groups.source_group` groups since these exist, so a features_dir split clip by clip
    before is refused rather than completed with shards of another split."""
    spec = super().spec()
    root = pathlib.Path(key(self.config, "root"))
    if not any((root / s).is_dir() for s in SUBSETS):
      spec["groups"] = "source"
    return spec
