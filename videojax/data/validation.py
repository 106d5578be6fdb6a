"""The validation hold-out of the training split: whole groups, or a list the user gives.

Clips of one group (UCF gNN, one HMDB source video, one source video cut into
clips) are near-duplicates; a validation split that puts some on each side
reads far higher than test, and picks the best step blindly. So groups are kept
whole. Each clip's group was decided at ingest (`sources`) and stored in the
shards; shards written before that get it recomputed from the names. Clips
whose group cannot be known ("") are held out clip by clip, with one warning;
`config.data.val_list` names the validation clips instead.
"""
from __future__ import annotations

import os
import pathlib
import re
from collections.abc import Callable, Sequence

from videojax.data import sources
from videojax.data.sources import groups as groups_lib
from videojax.data.sources.base import read_lines
from videojax.data.features import FeatureSet

# A val_list line: the id, then optional blanks and a '#' comment.
_COMMENT = re.compile(r"\s*#.*$")


def clip_groups(fs: FeatureSet) -> list[str]:
  """Each clip's group ("" unknown): stored in the shards, else from its name.

  The names are read by the layout the features were extracted from (the
  spec's 'layout', ucf101 when absent); see `sources.group_of`.
  """
  if fs.groups is not None:
    return list(fs.groups)
  layout = {"layout": fs.spec.get("layout", "ucf101")}
  return [sources.group_of(layout, v) for v in fs.video_ids]


def no_group_warning(unknown: int, total: int) -> str:
  """The one line printed when `unknown` of `total` training clips have no group."""
  return (f"WARNING: {unknown} of {total} training clips have no group (no UCF gNN, HMDB "
          "source, '<source>_<n>' name or group column tells which source video they come "
          "from), so validation holds them out clip by clip and near-duplicates of one video "
          "can land on both sides, inflating validation accuracy. Fix: give each clip a "
          "group (a 'group' column in the CSV, or names like <source>_clip<n>) and extract "
          "again into a new features_dir, or list the validation clips in a file, one "
          "video_id a line, and pass --config.data.val_list=FILE")


def split_groups_warning(path: str, groups: Sequence[str]) -> str:
  """The one line printed when a val_list leaves clips of its groups in training."""
  shown = ", ".join(repr(g) for g in groups[:3]) + (", ..." if len(groups) > 3 else "")
  return (f"WARNING: {path} (config.data.val_list) holds out some clips of {len(groups)} "
          f"group(s) and trains on the others ({shown}); near-duplicates on both sides "
          "inflate validation accuracy: list whole groups")


def read_val_list(path: str | os.PathLike, video_ids: Sequence[str]) -> list[str]:
  """The video_ids a val_list file names, in file order.

  One video_id a line; blank lines and '#' comments are skipped.

  Args:
    path: the file (config.data.val_list).
    video_ids: the clips of the training split.

  Returns:
    the listed ids, each once.

  Raises:
    ValueError, naming the file (and line): missing or not UTF-8, an id that
      is not a training clip, an id listed twice, no id, or every clip listed.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise ValueError(f"{path}: file not found (config.data.val_list); give a text file of "
                     "training video_ids, one a line, or '' to hold out groups")
  known = set(video_ids)
  first: dict[str, int] = {}
  for lineno, line in read_lines(path):
    vid = _COMMENT.sub("", line).strip()
    if not vid:
      continue
    if vid not in known:
      example = next(iter(video_ids), "")
      raise ValueError(f"{path}:{lineno}: {vid!r} is not a clip of the training features "
                       f"(config.data.val_list); ids are paths without extension, like "
                       f"{example!r}; a clip that failed extraction is in failed_videos.csv")
    if vid in first:
      raise ValueError(f"{path}:{lineno}: {vid!r} is listed twice (also line {first[vid]})")
    first[vid] = lineno
  if not first:
    raise ValueError(f"{path}: lists no video_id (config.data.val_list)")
  if len(first) == len(known):
    raise ValueError(f"{path}: lists all {len(known)} training clips; leave some to train "
                     "on (config.data.val_list)")
  return list(first)


def split_validation(fs: FeatureSet, fraction: float, seed: int, val_list: str = "",
                     echo: Callable[[str], None] = print) -> tuple[FeatureSet, FeatureSet]:
  """(rest, held out) of the training split, from ids, labels and groups only.

  With `val_list`, exactly the clips it lists are held out (`echo` gets one
  warning line if that cuts known groups in two). Else about `fraction` of
  each class's groups (`groups.split_by_group`); when some clips have no
  group, `echo` gets one warning line (`no_group_warning`).

  Args:
    fs: the training split (features may be empty: `features.read_index`).
    fraction: config.data.val_fraction.
    seed: which groups; the same seed gives the same split on every process.
    val_list: config.data.val_list, "" or a file of video_ids.
    echo: where the warning goes.

  Raises:
    ValueError: as `read_val_list`, or as `split_by_group` (fraction, seed).
  """
  if val_list:
    held_ids = set(read_val_list(val_list, fs.video_ids))
    held = [i for i, v in enumerate(fs.video_ids) if v in held_ids]
    rest = [i for i, v in enumerate(fs.video_ids) if v not in held_ids]
    groups = clip_groups(fs)
    cut = {groups[i] for i in held} & {groups[i] for i in rest} - {""}
    if cut:
      echo(split_groups_warning(val_list, sorted(cut)))
    return fs.take(rest), fs.take(held)
  groups = clip_groups(fs)
  unknown = sum(not g for g in groups)
  if unknown and fraction > 0:
    echo(no_group_warning(unknown, len(groups)))
  examples = [sources.Clip(path=pathlib.Path(v), label=int(l), video_id=v, group=g)
              for v, l, g in zip(fs.video_ids, fs.labels, groups)]
  index = {e.video_id: i for i, e in enumerate(examples)}
  rest, held = groups_lib.split_by_group(examples, fraction, seed)
  return (fs.take([index[e.video_id] for e in rest]),
          fs.take([index[e.video_id] for e in held]))
