"""Import of features made elsewhere: per-video arrays -> the HDF5 shards training reads.

A source directory holds one array f[t, d] per video, named after the video id
(its path relative to the dataset root, without extension), nested or flat:

  <src>/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.npy    or    <src>/v_ApplyEyeMakeup_g08_c01.npy

as .npy, .npz, .mat (v5 through scipy; v7.3 is HDF5 and is read with h5py) or
.h5/.hdf5. A container with several arrays needs `key`, unless exactly one of
them is a 2-D numeric array. Labels and splits come from a `SplitSource`: a
UCF-101-style root (classInd.txt, trainlistNN.txt, testlistNN.txt) or CSV files
with a video column and a class column, like the Keras video-classification
example's train.csv / test.csv (`video_name,tag`), and optionally a group column
(clips of one source video, which validation keeps whole). Without one, the
group comes from the name (`datasets.source_group`: UCF gNN, HMDB source,
'<source>_clip<n>'); the shards store it.

Each array becomes f16[num_frames, d] plus a length, as frames are sampled from
videos: a longer sequence is sampled uniformly over its whole length
(`video.sample_indices`), a shorter one keeps every frame and is zero-padded past
its length, which the mask hides. spec.json, shard names, resumption (complete
shards are skipped) and failed_videos.csv work as in `videojax.extract`; the
spec's backbone is "imported". Arrays that cannot be used (missing, unreadable,
not [t, d], another d, NaN/inf, beyond float16) are skipped and recorded with
the reason.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import os
import pathlib
import re
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from videojax.data import datasets, ucf101, video
from videojax.data import features as features_lib
from videojax.extract import prefetch_map

ARRAY_SUFFIXES = (".npy", ".npz", ".mat", ".h5", ".hdf5")
BACKBONE = "imported"
_MATLAB_NUMERIC = frozenset({"double", "single", "int8", "int16", "int32", "int64", "uint8",
                             "uint16", "uint32", "uint64"})
# Column names tried, in order, when none is given.
VIDEO_COLUMNS = ("video_name", "video_id", "video", "path", "filename", "file", "name")
LABEL_COLUMNS = ("tag", "label", "class", "class_name", "category")
GROUP_COLUMNS = ("group", "source_video")
_SPLIT_NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")  # shard names use '-' as separator
_EXTENSION_RE = re.compile(r"^\.[A-Za-z][A-Za-z0-9]{0,4}$")  # '.avi' yes, '.001' no


class ArrayError(ValueError):
  """A per-video array that cannot be used; the message names the file and the reason."""


# ---------------------------------------------------------------------------- split sources


@dataclasses.dataclass(frozen=True)
class SplitSource:
  """Which videos make each split, with their labels.

  Attributes:
    class_names: k names; class_names[label] is the class of a 0-indexed label.
    splits: split name -> [(video_id, label)] in file order.
    description: where the lists came from (absolute paths); part of the spec.
    groups: video_id -> its group where the lists give one; the others get
      `group_of`'s.
  """
  class_names: list[str]
  splits: dict[str, list[tuple[str, int]]]
  description: dict[str, Any]
  groups: dict[str, str] = dataclasses.field(default_factory=dict)

  def group_of(self, video_id: str, label: int) -> str:
    """The clip's group: the listed one, else from its name ("" when unknown)."""
    return self.groups.get(video_id) or datasets.source_group(video_id,
                                                              self.class_names[label])


def ucf_split_source(root: str | os.PathLike, split: int = 1,
                     subsets: Sequence[str] = ("train", "test")) -> SplitSource:
  """The split lists of a UCF-101-style root (see `videojax.data.ucf101`).

  Video ids are '<Class>/<name>' with the class spelled as in classInd.txt.

  Raises:
    ValueError: as `ucf101.read_split`, naming the file and line.
  """
  root = pathlib.Path(root)
  examples = {s: ucf101.read_split(root, s, split) for s in subsets}
  splits = {s: [(e.video_id, e.label) for e in ex] for s, ex in examples.items()}
  return SplitSource(class_names=ucf101.read_class_names(root), splits=splits,
                     description={"ucf_root": str(root.resolve()), "split": split},
                     groups={e.video_id: e.group for ex in examples.values() for e in ex})


def _column(fields: Sequence[str], given: str | None, candidates: Sequence[str], what: str,
            flag: str, path: pathlib.Path, optional: bool = False) -> str | None:
  by_lower = {f.strip().lower(): f for f in fields if f is not None}
  for name in [given] if given else candidates:
    if name.lower() in by_lower:
      return by_lower[name.lower()]
  if optional and not given:
    return None
  looked = repr(given) if given else ", ".join(candidates)
  raise ValueError(f"{path}: no {what} column (looked for {looked}; the header has "
                   f"{', '.join(map(repr, fields))}); name it with {flag}")


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


def _sorted_classes(names: set[str]) -> list[str]:
  """Sorted names; numerically when all are integers, so '10' follows '9'."""
  if all(n.isdigit() for n in names):
    return sorted(names, key=int)
  return sorted(names)


def csv_split_source(files: str | os.PathLike | Mapping[str, str | os.PathLike], *,
                     split_column: str | None = None, video_column: str | None = None,
                     label_column: str | None = None,
                     group_column: str | None = None) -> SplitSource:
  """Splits, labels and groups from CSV files with a header.

  Args:
    files: {split: csv} with one file per split (e.g. {'train': 'train.csv',
      'test': 'test.csv'}), or one file whose `split_column` names each row's split.
    split_column: the column naming the split (one file only).
    video_column: the video file or id ('ApplyEyeMakeup/v_x.avi', 'v_x.avi' or
      'v_x'); default the first of VIDEO_COLUMNS in the header.
    label_column: the class name; default the first of LABEL_COLUMNS.
    group_column: the clip's group (its source video); default the first of
      GROUP_COLUMNS, if any. An empty cell leaves the group to the name.

  Returns:
    The source; classes are the sorted names over all splits.

  Raises:
    ValueError, naming the file and line: a missing file or column (the group
      column only when named), an empty
      video, class or split name, a video listed twice (in one split or two),
      a split with no video.
  """
  if isinstance(files, Mapping):
    if split_column:
      raise ValueError("split_column applies to a single CSV, not one file per split")
    jobs = [(pathlib.Path(p), s) for s, p in files.items()]
  else:
    if not split_column:
      raise ValueError(f"{files}: one CSV for all splits needs split_column")
    jobs = [(pathlib.Path(files), None)]
  rows: dict[str, list[tuple[str, str]]] = {}
  groups: dict[str, str] = {}
  group_columns: set[str] = set()
  seen: dict[str, str] = {}
  for path, fixed_split in jobs:
    if not path.is_file():
      raise ValueError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8-sig") as f:
      reader = csv.DictReader(f)
      fields = reader.fieldnames or []
      vcol = _column(fields, video_column, VIDEO_COLUMNS, "video", "--video_column", path)
      lcol = _column(fields, label_column, LABEL_COLUMNS, "class", "--label_column", path)
      scol = (_column(fields, split_column, (), "split", "--split_column", path)
              if fixed_split is None else None)
      gcol = _column(fields, group_column, GROUP_COLUMNS, "group", "--group_column", path,
                     optional=True)
      for row in reader:
        where = f"{path}:{reader.line_num}"
        vid, label = video_id_of(row.get(vcol) or ""), (row.get(lcol) or "").strip()
        split = fixed_split or (row.get(scol) or "").strip()
        if not vid or not label:
          raise ValueError(f"{where}: empty {vcol!r} or {lcol!r}")
        if not _SPLIT_NAME_RE.match(split):
          raise ValueError(f"{where}: split name must be letters, digits or '_', got {split!r}")
        if vid in seen:
          raise ValueError(f"{where}: video {vid!r} is listed twice (also {seen[vid]})")
        seen[vid] = where
        rows.setdefault(split, []).append((vid, label))
        if gcol and (row.get(gcol) or "").strip():
          groups[vid] = row[gcol].strip()
          group_columns.add(gcol)
  for path, split in jobs:
    if not rows or (split and split not in rows):
      raise ValueError(f"{path}: no videos listed")
  class_names = _sorted_classes({label for r in rows.values() for _, label in r})
  index = {name: i for i, name in enumerate(class_names)}
  splits = {s: [(vid, index[label]) for vid, label in r] for s, r in rows.items()}
  description: dict[str, Any] = {f"{s}_csv" if s else "csv": str(p.resolve()) for p, s in jobs}
  if split_column:
    description["split_column"] = split_column
  if group_columns:  # In the spec: shards made without the groups are refused, not kept.
    description["group_column"] = ",".join(sorted(group_columns))
  return SplitSource(class_names=class_names, splits=splits, description=description,
                     groups=groups)


def make_split_source(*, ucf_root: str | None = None, split: int = 1,
                      train_csv: str | None = None, test_csv: str | None = None,
                      csv_path: str | None = None, split_column: str | None = None,
                      video_column: str | None = None, label_column: str | None = None,
                      group_column: str | None = None) -> SplitSource:
  """The one split source the arguments name (the flags of scripts/import_features.py).

  Raises:
    ValueError: none or more than one of ucf_root, train_csv/test_csv, csv_path,
      or the errors of the chosen reader.
  """
  given = [n for n, v in (("ucf_root", ucf_root), ("train_csv/test_csv", train_csv or test_csv),
                          ("csv", csv_path)) if v]
  if len(given) != 1:
    raise ValueError("give exactly one split source: --ucf_root, --train_csv with --test_csv, "
                     f"or --csv with --split_column (got {', '.join(given) or 'none'})")
  if ucf_root and group_column:
    raise ValueError("--group_column applies to CSV lists; UCF-101 names carry their group")
  if ucf_root:
    return ucf_split_source(ucf_root, split)
  kw = dict(video_column=video_column, label_column=label_column, group_column=group_column)
  if csv_path:
    return csv_split_source(csv_path, split_column=split_column or "split", **kw)
  if not (train_csv and test_csv):
    raise ValueError("--train_csv and --test_csv go together (training needs both splits)")
  return csv_split_source({"train": train_csv, "test": test_csv}, **kw)


# ---------------------------------------------------------------------------- array files


@dataclasses.dataclass(frozen=True)
class _Member:
  shape: tuple[int, ...]
  numeric: bool


def _npz_members(path: pathlib.Path) -> dict[str, _Member]:
  """The arrays of an .npz from their headers, without decompressing the data."""
  members = {}
  with zipfile.ZipFile(path) as z:
    for name in z.namelist():
      if not name.endswith(".npy"):
        continue
      with z.open(name) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
          shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
          shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:  # No public header reader for other versions: load this one.
          with np.load(path, allow_pickle=False) as npz:
            arr = npz[name[:-4]]
          shape, dtype = arr.shape, arr.dtype
      members[name[:-4]] = _Member(tuple(shape), dtype.kind in "fiu")
  return members


def _h5_members(path: pathlib.Path, matlab: bool) -> dict[str, _Member]:
  """Datasets of an HDF5 file; MATLAB v7.3 stores a t x d matrix as [d, t]."""
  members = {}

  def visit(name, obj):
    if not isinstance(obj, h5py.Dataset) or name.startswith("#"):  # '#refs#', '#subsystem#'
      return
    cls = obj.attrs.get("MATLAB_class")
    if isinstance(cls, bytes):
      cls = cls.decode()
    numeric = cls in _MATLAB_NUMERIC if cls else obj.dtype.kind in "fiu"
    members[name] = _Member(obj.shape[::-1] if matlab else obj.shape, numeric)

  with h5py.File(path, "r") as f:
    f.visititems(visit)
  return members


def _scipy_io():
  try:
    import scipy.io  # Only MATLAB v5 files need it; jax installs it anyway.
  except ImportError as e:
    raise ArrayError(f"scipy is needed to read MATLAB v5 .mat files ({e})") from e
  return scipy.io


def _kind(path: pathlib.Path) -> str:
  suffix = path.suffix.lower()
  if suffix == ".mat":
    return "mat73" if h5py.is_hdf5(path) else "mat5"
  return {".npy": "npy", ".npz": "npz", ".h5": "h5", ".hdf5": "h5"}[suffix]


def _members(path: pathlib.Path, kind: str) -> dict[str, _Member]:
  if kind == "npy":
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    return {"": _Member(arr.shape, arr.dtype.kind in "fiu")}
  if kind == "npz":
    return _npz_members(path)
  if kind == "mat5":
    return {name: _Member(tuple(shape), cls in _MATLAB_NUMERIC)
            for name, shape, cls in _scipy_io().whosmat(path)}
  return _h5_members(path, matlab=kind == "mat73")


def _choose(path: pathlib.Path, members: dict[str, _Member], key: str | None) -> str:
  """The member to read: `key`, the only one, or the only 2-D numeric one."""
  listing = ", ".join(f"{n!r} {list(m.shape)}" for n, m in members.items()) or "nothing"
  if key is not None and "" not in members:  # An .npy is a single array: key n/a.
    if key not in members:
      raise ArrayError(f"{path}: no array named {key!r} (holds {listing})")
    return key
  if len(members) == 1:
    return next(iter(members))
  candidates = [n for n, m in members.items() if m.numeric and len(m.shape) == 2]
  if len(candidates) == 1:
    return candidates[0]
  if not candidates:
    raise ArrayError(f"{path}: no 2-D numeric array (holds {listing})")
  raise ArrayError(f"{path}: {len(candidates)} 2-D numeric arrays ({listing}); "
                   "name one with --key")


def array_shape(path: str | os.PathLike, key: str | None = None) -> tuple[int, ...]:
  """The shape of the array `read_array` would read, from headers where the format allows.

  Raises:
    ArrayError: no or several candidate arrays, or a missing scipy for MATLAB v5.
    Anything the format's reader raises on a damaged file.
  """
  path = pathlib.Path(path)
  kind = _kind(path)
  members = _members(path, kind)
  return members[_choose(path, members, key)].shape


def read_array(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
  """Reads one video's features.

  Args:
    path: an .npy, .npz, .mat (v5 or v7.3) or .h5/.hdf5 file.
    key: the array to read from a container with several; without it, the only
      array, or else the only 2-D numeric one. Ignored for .npy.

  Returns:
    f32[t, d], t >= 1, all finite.

  Raises:
    ArrayError: no or several candidate arrays, not numeric, not 2-D, no
      frames, NaN or inf (naming the first bad frame), values beyond float32.
    Anything the format's reader raises on a damaged file.
  """
  path = pathlib.Path(path)
  kind = _kind(path)
  members = _members(path, kind)
  name = _choose(path, members, key)
  if kind == "npy":
    arr = np.load(path, allow_pickle=False)
  elif kind == "npz":
    with np.load(path, allow_pickle=False) as npz:
      arr = npz[name]
  elif kind == "mat5":
    arr = _scipy_io().loadmat(path, variable_names=[name])[name]
  else:
    with h5py.File(path, "r") as f:
      arr = f[name][()]
    if kind == "mat73":
      arr = np.asarray(arr).T
  arr = np.asarray(arr)
  where = f"{path}{f' [{name!r}]' if name else ''}"
  if arr.dtype.kind not in "fiu":
    raise ArrayError(f"{where}: not a real numeric array (dtype {arr.dtype})")
  if arr.ndim != 2:
    raise ArrayError(f"{where}: expected features [t, d], got shape {list(arr.shape)}")
  if arr.shape[0] == 0 or arr.shape[1] == 0:
    raise ArrayError(f"{where}: empty array, shape {list(arr.shape)}")
  with np.errstate(over="ignore"):
    arr = arr.astype(np.float32)
  finite = np.isfinite(arr).all(axis=1)
  if not finite.all():
    raise ArrayError(f"{where}: NaN or inf (or beyond float32) at frame "
                     f"{np.flatnonzero(~finite)[0]} of {len(arr)}")
  return arr


def to_clip(arr: np.ndarray, num_frames: int) -> tuple[np.ndarray, int]:
  """Sampled or padded to a fixed number of frames, as frames are sampled from videos.

  Args:
    arr: f32[n, d] one video's features.
    num_frames: t.

  Returns:
    (f32[t, d], length): rows `video.sample_indices(n, t)` of `arr`, which
    spread uniformly over the whole sequence when n >= t and are every row
    when n < t; rows past `length = min(n, t)` are zeros that carry no meaning.

  Raises:
    ArrayError: a sampled value beyond the float16 range (|x| > 65504), which
      the shards could not store.
  """
  idx = video.sample_indices(len(arr), num_frames)
  clip = np.zeros((num_frames, arr.shape[1]), np.float32)
  clip[:len(idx)] = arr[idx]
  with np.errstate(over="ignore"):
    if not np.isfinite(clip.astype(np.float16)).all():
      raise ArrayError("values beyond the float16 range of the shards (|x| > 65504); "
                       "rescale the features")
  return clip, len(idx)


class ArrayIndex:
  """The array files under a directory, found by video id.

  A video id 'Class/v_x' matches '<src>/Class/v_x.<ext>', the same path in
  other letter case (UCF-101 spells one class folder two ways), or a file
  named 'v_x.<ext>' anywhere under <src> (flat layouts, or ids without their
  class folder), in that order; several files at the first level that matches
  make the id ambiguous.
  """

  def __init__(self, src_dir: pathlib.Path, exclude: pathlib.Path | None = None):
    self.src_dir = src_dir
    self.exact: dict[str, list[pathlib.Path]] = collections.defaultdict(list)
    self.lower: dict[str, list[pathlib.Path]] = collections.defaultdict(list)
    self.base: dict[str, list[pathlib.Path]] = collections.defaultdict(list)
    exclude = exclude.resolve() if exclude is not None else None
    for folder, dirs, files in os.walk(src_dir):
      here = pathlib.Path(folder)
      # The output may live under the source: its shards are not inputs.
      dirs[:] = sorted(d for d in dirs if not d.startswith(".")
                       and (exclude is None or (here / d).resolve() != exclude))
      for name in sorted(files):
        path = here / name
        if name.startswith(".") or path.suffix.lower() not in ARRAY_SUFFIXES:
          continue
        vid = path.relative_to(src_dir).with_suffix("").as_posix()
        self.exact[vid].append(path)
        self.lower[vid.lower()].append(path)
        self.base[vid.rsplit("/", 1)[-1]].append(path)

  def __len__(self) -> int:
    return sum(len(p) for p in self.exact.values())

  def find(self, video_id: str) -> pathlib.Path:
    """The array file of `video_id`; ArrayError if none or several."""
    for table, k in ((self.exact, video_id), (self.lower, video_id.lower()),
                     (self.base, video_id.rsplit("/", 1)[-1])):
      paths = table.get(k, [])
      if len(paths) == 1:
        return paths[0]
      if paths:
        raise ArrayError(f"several arrays could be {video_id!r}: "
                         f"{', '.join(str(p.relative_to(self.src_dir)) for p in paths)}")
    raise ArrayError(f"no array file under {self.src_dir} named {video_id!r} or its file "
                     f"name, with a suffix among {', '.join(ARRAY_SUFFIXES)}")


# ---------------------------------------------------------------------------- import


def import_spec(src_dir: pathlib.Path, source: SplitSource, *, num_frames: int,
                feature_dim: int, key: str | None) -> dict[str, Any]:
  """The settings that determine imported features; their hash marks every shard."""
  return {"format_version": features_lib.FORMAT_VERSION, "backbone": BACKBONE,
          "source": str(src_dir.resolve()), "key": key, "num_frames": num_frames,
          "feature_dim": feature_dim, "labels": source.description}


def infer_feature_dim(paths: Sequence[pathlib.Path], key: str | None, echo=print) -> int:
  """The d that most of the readable arrays have (their headers only).

  Raises:
    FeatureError: no readable [t, d] array, or a tie between two values of d.
  """
  counts: collections.Counter[int] = collections.Counter()
  first_error = None
  for path in paths:
    try:
      shape = array_shape(path, key)
    except Exception as e:  # noqa: BLE001  The import pass records each reason.
      first_error = first_error or f"{path}: {e}"
      continue
    if len(shape) == 2 and shape[1] > 0:
      counts[shape[1]] += 1
  if not counts:
    raise features_lib.FeatureError(
        f"none of the {len(paths)} array files found holds a readable [t, d] array"
        f"{f'; first problem: {first_error}' if first_error else ''}")
  (d, n), *rest = counts.most_common()
  if rest:
    summary = ", ".join(f"d={v} ({c} videos)" for v, c in counts.most_common())
    if rest[0][1] == n:
      raise features_lib.FeatureError(f"the arrays disagree on their feature dimension: "
                                      f"{summary}; choose one with --feature_dim")
    echo(f"The arrays disagree on their feature dimension: {summary}; importing d={d}, "
         "the others are recorded as failed (choose with --feature_dim)")
  return d


def _load_clip(item: tuple[str, int, pathlib.Path | str], key: str | None, num_frames: int,
               feature_dim: int) -> tuple[np.ndarray, int] | str:
  """(clip f32[t, d], length), or the reason the video cannot be used."""
  _, _, found = item
  if isinstance(found, str):
    return found
  try:
    arr = read_array(found, key)
  except ArrayError as e:  # Its message names the file.
    return str(e)
  except Exception as e:  # noqa: BLE001  Readers of three libraries fail in many ways.
    return f"{found}: unreadable ({type(e).__name__}: {e})"
  if arr.shape[1] != feature_dim:
    return f"{found}: feature dimension {arr.shape[1]}, the others have {feature_dim}"
  try:
    return to_clip(arr, num_frames)
  except ArrayError as e:
    return f"{found}: {e}"


def import_shard(items: Sequence[tuple[str, int, pathlib.Path | str]], path: pathlib.Path, *,
                 spec: dict[str, Any], class_names: Sequence[str], key: str | None,
                 num_workers: int, progress,
                 groups: Mapping[str, str] | None = None) -> list[list[str]]:
  """Reads one shard's arrays and writes the shard; returns its failures.

  Args:
    items: (video_id, label, array file or the reason there is none).
    path: the shard file.
    groups: video_id -> group ("" unknown), stored in the shard; None stores none.
  """
  t, d = spec["num_frames"], spec["feature_dim"]
  feats = np.zeros((len(items), t, d), np.float32)
  lengths = np.zeros(len(items), np.int32)
  ok, failed = [], []
  loaded = prefetch_map(lambda item: _load_clip(item, key, t, d), items, num_workers,
                        depth=4 * max(1, num_workers))
  for i, (item, future) in enumerate(zip(items, loaded)):
    result = future.result()
    if isinstance(result, str):
      failed.append([item[0], result])
    else:
      feats[i], lengths[i] = result
      ok.append(i)
    progress.update(1)
  features_lib.write_shard(
      path, features=feats[ok], lengths=lengths[ok],
      labels=np.array([items[i][1] for i in ok], np.int32),
      video_ids=[items[i][0] for i in ok], class_names=class_names, spec=spec, failed=failed,
      groups=None if groups is None else [groups[items[i][0]] for i in ok])
  return failed


def import_features(src_dir: str | os.PathLike, features_dir: str | os.PathLike, *,
                    split_source: SplitSource, num_frames: int, shard_size: int = 256,
                    key: str | None = None, feature_dim: int | None = None,
                    num_workers: int = 4, echo=print) -> dict[str, Any]:
  """Writes the arrays of `src_dir` as feature shards of every split of `split_source`.

  Args:
    src_dir: per-video arrays [t, d] named after the video ids (see module doc).
    features_dir: where the shards, spec.json and failed_videos.csv go.
    split_source: the videos and labels of each split.
    num_frames: t of the shards; longer arrays are sampled uniformly, shorter
      ones padded (their length masks the padding).
    shard_size: videos per shard (the unit of resumption).
    key: the array to read from containers with several (.npz, .mat, .h5).
    feature_dim: d; default the d most arrays have. Arrays of another d fail.
    num_workers: reading threads.
    echo: where messages go.

  Returns:
    {'imported': shards written, 'skipped': shards already complete,
     'failed': [[split, video_id, reason], ...] over all shards on disk,
     'feature_dim': d, 'num_videos': {split: listed videos},
     'unlisted': array files under src_dir that no split lists}.

  Raises:
    ValueError: a missing src_dir, or num_frames, shard_size or feature_dim < 1.
    FeatureError: a features_dir or shard made with other settings or classes,
      or no readable array to infer d from.
  """
  for name, value in (("num_frames", num_frames), ("shard_size", shard_size),
                      ("feature_dim", 1 if feature_dim is None else feature_dim)):
    if value < 1:
      raise ValueError(f"{name} must be >= 1, got {value}")
  src_dir, features_dir = pathlib.Path(src_dir), pathlib.Path(features_dir)
  if not src_dir.is_dir():
    raise ValueError(f"{src_dir}: not a directory of feature arrays")
  index = ArrayIndex(src_dir, exclude=features_dir)
  resolved: dict[str, list[tuple[str, int, pathlib.Path | str]]] = {}
  groups: dict[str, str] = {}
  for split, videos in split_source.splits.items():
    items = []
    for vid, label in videos:
      groups[vid] = split_source.group_of(vid, label)
      try:
        items.append((vid, label, index.find(vid)))
      except ArrayError as e:
        items.append((vid, label, str(e)))
    resolved[split] = items
  found = [p for items in resolved.values() for _, _, p in items if not isinstance(p, str)]
  if feature_dim is None:
    feature_dim = infer_feature_dim(found, key, echo=echo)

  features_dir.mkdir(parents=True, exist_ok=True)
  spec = import_spec(src_dir, split_source, num_frames=num_frames, feature_dim=feature_dim,
                     key=key)
  features_lib.check_spec_file(features_dir, spec, split_source.class_names)

  todo, skipped = [], 0
  for split, items in resolved.items():
    plan, done = features_lib.plan_shards(features_dir, split, items, shard_size, spec,
                                          echo=echo)
    todo, skipped = todo + plan, skipped + done

  unlisted = len(index) - len({str(p) for p in found})
  echo(f"Importing {sum(len(i) for _, i in todo)} videos in {len(todo)} shards ({skipped} "
       f"shards already complete), t={num_frames}, d={feature_dim}, from {src_dir} into "
       f"{features_dir}" + (f"; {unlisted} array file(s) are in no split" if unlisted else ""))
  with tqdm(total=sum(len(i) for _, i in todo), desc="import", unit="video",
            disable=None) as progress:
    for path, items in todo:
      import_shard(items, path, spec=spec, class_names=split_source.class_names, key=key,
                   num_workers=num_workers, progress=progress, groups=groups)

  features_lib.clear_stale_shards(
      features_dir, {split: features_lib.shard_count(len(items), shard_size)
                     for split, items in resolved.items()}, echo)
  failed = features_lib.write_failure_report(features_dir)
  if failed:
    echo(f"{len(failed)} video(s) could not be used and were skipped; see "
         f"{features_dir / features_lib.FAILED_FILE}")
  return {"imported": len(todo), "skipped": skipped, "failed": failed,
          "feature_dim": feature_dim,
          "num_videos": {s: len(v) for s, v in split_source.splits.items()},
          "unlisted": unlisted}
