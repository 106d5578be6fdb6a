"""CSV lists of clips: the one CSV reader, and the csv source that reads with it.

  <root>/<csv_train>, <root>/<csv_test>: rows of (video path, label), optionally a
  group column (the source video a clip was cut from) and a split column (then one
  file may list both subsets; each subset takes its rows).

A header is the first non-blank row when it names the video and the label column
(config.data.csv_columns; an empty name: the first of VIDEO_COLUMNS / LABEL_COLUMNS,
case ignored); a file without a header holds exactly two cells per row. Classes are
the train rows' labels in `base.class_order`. A clip's group is its group cell, else
`groups.source_group` of its path. Imported arrays (`videojax.data.import_features`)
read their CSV lists through this source too.
"""
from __future__ import annotations

import csv
import dataclasses
import pathlib
import re
from collections.abc import Sequence
from typing import Any

from videojax.data.sources import groups
from videojax.data.sources.base import (SUBSETS, Clip, Source, check_subset, class_order, key,
                                        read_text)

# Column names tried, in order, where none is given.
VIDEO_COLUMNS = ("video_name", "video_id", "video", "path", "filename", "file", "name")
LABEL_COLUMNS = ("tag", "label", "class", "class_name", "category")
GROUP_COLUMNS = ("group", "source_video")
# How a user names each column, in a config and on the import command line.
_HINTS = {"video": "config.data.csv_columns (import: --video_column)",
          "label": "config.data.csv_columns (import: --label_column)",
          "group": "config.data.csv_group_column (import: --group_column)",
          "split": "config.data.csv_split_column (import: --split_column)"}
_EXTENSION_RE = re.compile(r"^\.[A-Za-z][A-Za-z0-9]{0,4}$")  # '.avi' yes, '.001' no


def video_id_of(name: str) -> str:
  """'ApplyEyeMakeup\\v_x_g01_c01.avi' -> 'ApplyEyeMakeup/v_x_g01_c01'.

  A final suffix is dropped when it looks like a file extension (a letter, then
  at most four letters or digits), so 'clip.001' keeps its '.001'.
  """
  name = name.strip().replace("\\", "/")
  while name.startswith("./"):
    name = name[2:]
  path = pathlib.PurePosixPath(name)
  if _EXTENSION_RE.match(path.suffix):
    path = path.with_suffix("")
  return str(path)


@dataclasses.dataclass(frozen=True)
class Row:
  """One listed clip: its line, path as listed ('/' separators), id, label, group, split."""
  line: int
  video: str
  video_id: str
  label: str
  group: str   # "" where the file has no group column or the cell is empty
  subset: str  # "" where the file has no split column


@dataclasses.dataclass(frozen=True)
class Table:
  """The rows of one CSV file, and the header name of the group column that gave groups."""
  path: pathlib.Path
  rows: list[Row]
  group_column: str | None


def _find(cells: Sequence[str], given: str | None, candidates: Sequence[str]) -> int | None:
  lower = [c.lower() for c in cells]
  for name in [given] if given else candidates:
    if name.lower() in lower:
      return lower.index(name.lower())
  return None


def _lacks(path, lineno, cells, what: str, given: str | None, candidates) -> ValueError:
  looked = repr(given) if given else ", ".join(map(repr, candidates))
  return ValueError(f"{path}:{lineno}: {cells!r} looks like a header but lacks the {what} "
                    f"column (looked for {looked}); name it with {_HINTS[what]}")


def read_csv(path: pathlib.Path, *, video_column: str | None = None,
             label_column: str | None = None, group_column: str | None = None,
             split_column: str | None = None) -> Table:
  """The clips a CSV lists, in file order.

  Args:
    path: the file (UTF-8, a byte-order mark and CRLF tolerated, blank rows skipped).
    video_column, label_column: header names; None: the first of VIDEO_COLUMNS /
      LABEL_COLUMNS in the header. Without such a header, rows are '<video>,<label>'.
    group_column: header name of each clip's group; None: the first of
      GROUP_COLUMNS if the header has one. Named, it must be there.
    split_column: header name of each row's subset ('train' or 'test'); None: none.

  Raises:
    ValueError, naming the file and line: a missing file, a header without a named
      column, a row with too few cells, an empty video or label, a split other than
      train or test, a video listed twice, no rows.
  """
  if not path.is_file():
    raise ValueError(f"{path}: file not found")
  reader = csv.reader(read_text(path).splitlines())
  rows: list[Row] = []
  where = None  # cells of video, label, group, split
  group_name, headerless, used_groups = None, False, False
  first_line: dict[str, int] = {}
  for cells in reader:
    lineno = reader.line_num
    cells = [cell.strip() for cell in cells]
    if not any(cells):
      continue
    if where is None:
      vi, li = _find(cells, video_column, VIDEO_COLUMNS), _find(cells, label_column,
                                                               LABEL_COLUMNS)
      if vi is not None and li is not None:
        gi = _find(cells, group_column, GROUP_COLUMNS)
        si = _find(cells, split_column, ()) if split_column else None
        if group_column and gi is None:
          raise _lacks(path, lineno, cells, "group", group_column, GROUP_COLUMNS)
        if split_column and si is None:
          raise _lacks(path, lineno, cells, "split", split_column, ())
        where, group_name = (vi, li, gi, si), None if gi is None else cells[gi]
        continue
      looks_like_header = len(cells) == 2 and not pathlib.PurePath(cells[0]).suffix
      if looks_like_header or group_column or split_column:
        if vi is None:
          raise _lacks(path, lineno, cells, "video", video_column, VIDEO_COLUMNS)
        raise _lacks(path, lineno, cells, "label", label_column, LABEL_COLUMNS)
      where, headerless = (0, 1, None, None), True  # No header: '<video>,<label>' rows.
    vi, li, gi, si = where
    if headerless and len(cells) != 2:
      raise ValueError(f"{path}:{lineno}: expected '<video path>,<label>' (the first line "
                       f"is no header naming the columns), got {cells!r}")
    need = max(i for i in where if i is not None)
    if len(cells) <= need:
      raise ValueError(f"{path}:{lineno}: expected {need + 1} columns, got {cells!r}")
    video, label = cells[vi].replace("\\", "/"), cells[li]
    if not video or not label:
      raise ValueError(f"{path}:{lineno}: empty video path or label in {cells!r}")
    subset = cells[si] if si is not None else ""
    if si is not None and subset not in SUBSETS:
      raise ValueError(f"{path}:{lineno}: split {subset!r}; expected one of {', '.join(SUBSETS)}")
    video_id = video_id_of(video)
    if video_id in first_line:
      raise ValueError(f"{path}:{lineno}: {video} is listed twice (also line "
                       f"{first_line[video_id]})")
    first_line[video_id] = lineno
    group = cells[gi] if gi is not None and gi < len(cells) else ""
    used_groups = used_groups or bool(group)
    rows.append(Row(lineno, video, video_id, label, group, subset))
  if not rows:
    raise ValueError(f"{path}: no clips listed")
  return Table(path, rows, group_name if used_groups else None)


class CsvLists(Source):
  """config.data.layout='csv': root, csv_train, csv_test (relative to root), csv_columns;
  csv_group_column and csv_split_column where the config sets them."""
  name = "csv"

  def _read(self, subset: str) -> tuple[Table, list[Row]]:
    """The table of config.data.csv_<subset>, and its rows of `subset`."""
    c = self.config
    columns = tuple(key(c, "csv_columns"))
    if len(columns) != 2:
      raise ValueError(f"config.data.csv_columns={columns!r}: give the header names of the "
                       "path and the label columns, e.g. ('video_name', 'tag'); '' for the "
                       "first known name")
    name = key(c, f"csv_{subset}")
    path = pathlib.Path(key(c, "root")) / name
    if not path.is_file():
      raise ValueError(f"{path}: file not found (config.data.csv_{subset}={name!r}, relative "
                       "to config.data.root)")
    split_column = c.get("csv_split_column") or None
    table = read_csv(path, video_column=columns[0] or None, label_column=columns[1] or None,
                     group_column=c.get("csv_group_column") or None, split_column=split_column)
    rows = [r for r in table.rows if not split_column or r.subset == subset]
    if not rows:
      raise ValueError(f"{path}: no {subset} clips listed (column {split_column!r})")
    return table, rows

  def class_names(self) -> list[str]:
    return class_order(r.label for r in self._read("train")[1])

  def clips(self, subset: str) -> list[Clip]:
    """Rows in file order. A path not found under root is looked up under <root>/<subset>/,
    where the Keras CNN-RNN example keeps the clips its CSVs name."""
    check_subset(subset)
    root = pathlib.Path(key(self.config, "root"))
    train, train_rows = self._read("train")
    label_of = {name: i for i, name in enumerate(class_order(r.label for r in train_rows))}
    table, rows = (train, train_rows) if subset == "train" else self._read(subset)
    clips = []
    for r in rows:
      if r.label not in label_of:
        raise ValueError(f"{table.path}:{r.line}: label {r.label!r} does not occur in "
                         f"{train.path} (the classes are the sorted labels of the train CSV)")
      file = root / r.video
      if not file.exists() and (root / subset / r.video).exists():
        file = root / subset / r.video
      clips.append(Clip(path=file, label=label_of[r.label], video_id=r.video_id,
                        group=r.group or groups.source_group(r.video_id, r.label)))
    return clips

  def spec(self) -> dict[str, Any]:
    """{'layout': 'csv'}, and the split column where one file lists both subsets."""
    split_column = self.config.get("csv_split_column")
    return {"layout": self.name, **({"csv_split_column": split_column} if split_column else {})}

  def describe(self) -> dict[str, Any]:
    """The files (absolute), the split column, and the group columns that gave groups."""
    c = self.config
    tables = {s: self._read(s)[0] for s in SUBSETS}
    files = {s: str(t.path.resolve()) for s, t in tables.items()}
    split_column = c.get("csv_split_column")
    if split_column and files["train"] == files["test"]:
      out: dict[str, Any] = {"csv": files["train"]}
    else:
      out = {f"{s}_csv": f for s, f in files.items()}
    if split_column:
      out["split_column"] = split_column
    used = {t.group_column for t in tables.values() if t.group_column}
    if used:  # In the spec: shards made without the groups are refused, not kept.
      out["group_column"] = ",".join(sorted(used))
    return out
