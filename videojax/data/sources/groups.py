"""Groups: which clips share a source video, so that a split keeps them on one side.

Clips of one group (UCF gNN, one HMDB source video, one source video cut into
clips) share actors and scene; a split that puts some on each side leaks.
`split_by_group` keeps groups whole. Each source decides a clip's group when it
lists it (a CSV's group column, else these rules on the name); extraction stores
it in the shards.
"""
from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

# v_<Class>_g08_c01 -> <Class>_g08; the clip number is optional.
_GROUP_RE = re.compile(r"^(?:v_)?(?P<group>.+_g\d+)(?:_c\d+)?$")
_TRAILING_INDEX = re.compile(r"_\d+$")


def ucf_group(video_id: str) -> str:
  """The group of a clip: its class and gNN, parsed from the file name.

  Args:
    video_id: e.g. 'ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01'.

  Returns:
    e.g. 'ApplyEyeMakeup_g08'; "" (unknown) when the name has no gNN.
  """
  match = _GROUP_RE.match(video_id.rsplit("/", 1)[-1])
  return match.group("group") if match else ""


def hmdb_group(video_id: str) -> str:
  """The group of an HMDB-51 clip: its class and the video it was cut from.

  HMDB names read `<source>_<action>_<body>_<camera>_<people>_<view>_<quality>_<n>`,
  e.g. 'brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0'. Clips of one source
  video and action share actors and scene, also when their tags differ (the
  camera moves in one, not in the next), so the group is class + source: the
  name up to the last '_<action>_'. A name without the action falls back to
  the name without its trailing '_<n>' clip index.

  Args:
    video_id: '<class>/<name>'.

  Returns:
    e.g. 'brush_hair/April_09'.
  """
  cls, _, name = video_id.rpartition("/")
  cut = name.rfind(f"_{cls}_") if cls else -1
  source = name[:cut] if cut > 0 else _TRAILING_INDEX.sub("", name)
  if source == name:  # Neither action nor clip index: nothing tells the source.
    return ""
  return f"{cls}/{source}" if cls else source


# A clip or segment number at the end of a name cut from a longer video:
# '_c01', '_clip3', '-002', '_part2', '_seg4', '_12'.
_CLIP_SUFFIX = re.compile(
    r"[_-](?:c|clip|part|seg|segment|chunk|shot|scene|take)?\d+$", re.IGNORECASE)


def source_group(video_id: str, class_name: str | None = None) -> str:
  """The group of a clip named after the video it was cut from (folders, csv, imports).

  In order: UCF-101 `<Class>_gNN`; HMDB-51 '<source>_<class>_<tags>_<n>' (the
  name up to the last '_<class>_'); else the name without one trailing clip
  or segment number (`_c01`, `_clip3`, `-002`, `_part2`, `_12`, ...), so
  'a/srcA_clip1' and 'a/srcA_clip2' share the group 'a/srcA'. Groups keep
  the clip's folders.

  Args:
    video_id: e.g. 'cats/srcA_clip1' (folders below the root, then the name).
    class_name: the clip's class, for HMDB names; default its last folder.

  Returns:
    the group, or "" when the name shows none of these patterns (a clip may
    then be a whole video or a cut of one: nothing tells).
  """
  group = ucf_group(video_id)
  if group:
    return group
  folder, _, name = video_id.rpartition("/")
  cls = class_name or folder.rpartition("/")[2]
  cut = name.rfind(f"_{cls}_") if cls else -1
  source = name[:cut] if cut > 0 else _CLIP_SUFFIX.sub("", name)
  if not source or source == name:
    return ""
  return f"{folder}/{source}" if folder else source


def split_by_group(examples: Sequence, fraction: float, seed: int) -> tuple[list, list]:
  """Holds out about `fraction` of the groups of every class, groups kept whole.

  Each class holds out round(fraction * its groups), at least one and at most
  all but one when it has two or more groups, so every such class appears on
  both sides; a class with a single group stays in `rest`. If no class has two
  groups but there are two or more groups, one group is held out. A clip whose
  group is "" (unknown) is a group of its own, named by its video_id. The
  choice depends only on the examples' groups and the seed.

  Args:
    examples: clips of a split (`base.Clip`s, or anything with video_id, label, group).
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
