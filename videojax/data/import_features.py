"""Import of features made elsewhere: per-video arrays -> the HDF5 shards training reads.

A source directory holds one array f[t, d] per video, named after the video id
(its path relative to the dataset root, without extension), nested or flat:

  <src>/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.npy    or    <src>/v_ApplyEyeMakeup_g08_c01.npy

as .npy, .npz, .mat (v5 through scipy; v7.3 is HDF5 and is read with h5py) or
.h5/.hdf5. A container with several arrays needs `key`, unless exactly one of
them is a 2-D numeric array. Labels, groups and splits come from a data source
(`videojax.data.sources`), the same that extraction reads: e.g. a UCF-101-style
root (classInd.txt, trainlistNN.txt, testlistNN.txt) or CSV lists (`csv_lists`)
like the Keras video-classification example's train.csv / test.csv
(`video_name,tag`), optionally with a group column (clips of one source video,
which validation keeps whole). The shards store each clip's group.

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
import dataclasses
import os
import pathlib
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import ml_collections
import numpy as np

from videojax import files as files_lib
from videojax.data import features as features_lib
from videojax.data import sources, video
from videojax.data.parallel import prefetch_map
from videojax.progress import Progress

ARRAY_SUFFIXES = (".npy", ".npz", ".mat", ".h5", ".hdf5")
BACKBONE = "imported"
_MATLAB_NUMERIC = frozenset({"double", "single", "int8", "int16", "int32", "int64", "uint8",
                             "uint16", "uint32", "uint64"})


class ArrayError(ValueError):
  """A per-video array that cannot be used; the message names the file and the reason."""


# ---------------------------------------------------------------------------- lists


def data_config(*, ucf_root: str | None = None, split: int = 1, train_csv: str | None = None,
                test_csv: str | None = None, csv_path: str | None = None,
                split_column: str | None = None, video_column: str | None = None,
                label_column: str | None = None,
                group_column: str | None = None) -> ml_collections.ConfigDict:
  """The config.data that the list flags of scripts/import_features.py name.

  --ucf_root: layout ucf101 at that root. --train_csv/--test_csv: layout csv with
  those files. --csv: layout csv with one file for both subsets, its rows split
  by --split_column (default 'split'). Columns not named are detected
  (`csv_lists.read_csv`). CSV paths are taken as given (root '').

  Raises:
    ValueError: none or more than one list source, or flags that do not go together.
  """
  given = [n for n, v in (("ucf_root", ucf_root), ("train_csv/test_csv", train_csv or test_csv),
                          ("csv", csv_path)) if v]
  if len(given) != 1:
    raise ValueError("give exactly one split source: --ucf_root, --train_csv with --test_csv, "
                     f"or --csv with --split_column (got {', '.join(given) or 'none'})")
  if ucf_root:
    if group_column:
      raise ValueError("--group_column applies to CSV lists; UCF-101 names carry their group")
    return ml_collections.ConfigDict({"layout": "ucf101", "root": ucf_root, "split": split})
  if not csv_path and not (train_csv and test_csv):
    raise ValueError("--train_csv and --test_csv go together (training needs both splits)")
  return ml_collections.ConfigDict({
      "layout": "csv", "root": "", "csv_train": csv_path or train_csv,
      "csv_test": csv_path or test_csv, "csv_columns": (video_column or "", label_column or ""),
      "csv_group_column": group_column or "",
      "csv_split_column": (split_column or "split") if csv_path else ""})


def make_source(**flags) -> sources.Source:
  """The source of `data_config(**flags)`."""
  return sources.get(data_config(**flags))


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


def import_spec(src_dir: pathlib.Path, source: sources.Source, *, num_frames: int,
                feature_dim: int, key: str | None) -> dict[str, Any]:
  """The settings that determine imported features; their hash marks every shard."""
  return {"format_version": features_lib.FORMAT_VERSION, "backbone": BACKBONE,
          "source": str(src_dir.resolve()), "key": key, "num_frames": num_frames,
          "feature_dim": feature_dim, "labels": source.describe()}


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
                    source: sources.Source, num_frames: int, shard_size: int = 256,
                    key: str | None = None, feature_dim: int | None = None,
                    num_workers: int = 4, echo=print) -> dict[str, Any]:
  """Writes the arrays of `src_dir` as feature shards of the train and test clips of `source`.

  Args:
    src_dir: per-video arrays [t, d] named after the video ids (see module doc).
    features_dir: where the shards, spec.json and failed_videos.csv go.
    source: the clips (video_id, label, group) of each split, e.g. `make_source(...)` or
      `sources.get(config.data)`.
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
    ValueError: a missing src_dir, num_frames, shard_size or feature_dim < 1, or the
      source's errors (naming the file and line).
    FeatureError: a features_dir or shard made with other settings or classes,
      or no readable array to infer d from.
  """
  for name, value in (("num_frames", num_frames), ("shard_size", shard_size),
                      ("feature_dim", 1 if feature_dim is None else feature_dim)):
    if value < 1:
      raise ValueError(f"{name} must be >= 1, got {value}")
  src_dir, features_dir = pathlib.Path(src_dir), files_lib.path(features_dir)  # May be a URL.
  if not src_dir.is_dir():
    raise ValueError(f"{src_dir}: not a directory of feature arrays")
  class_names = source.class_names()
  clips = {split: source.clips(split) for split in sources.SUBSETS}
  index = ArrayIndex(src_dir, exclude=None if files_lib.is_url(features_dir)
                     else features_dir)
  resolved: dict[str, list[tuple[str, int, pathlib.Path | str]]] = {}
  groups = {clip.video_id: clip.group for listed in clips.values() for clip in listed}
  for split, listed in clips.items():
    items = []
    for clip in listed:
      try:
        items.append((clip.video_id, clip.label, index.find(clip.video_id)))
      except ArrayError as e:
        items.append((clip.video_id, clip.label, str(e)))
    resolved[split] = items
  found = [p for items in resolved.values() for _, _, p in items if not isinstance(p, str)]
  if feature_dim is None:
    feature_dim = infer_feature_dim(found, key, echo=echo)

  features_dir.mkdir(parents=True, exist_ok=True)
  spec = import_spec(src_dir, source, num_frames=num_frames, feature_dim=feature_dim, key=key)
  features_lib.check_spec_file(features_dir, spec, class_names)

  todo, skipped = [], 0
  for split, items in resolved.items():
    plan, done = features_lib.plan_shards(features_dir, split, items, shard_size, spec,
                                          echo=echo)
    todo, skipped = todo + plan, skipped + done

  unlisted = len(index) - len({str(p) for p in found})
  echo(f"Importing {sum(len(i) for _, i in todo)} videos in {len(todo)} shards ({skipped} "
       f"shards already complete), t={num_frames}, d={feature_dim}, from {src_dir} into "
       f"{features_dir}" + (f"; {unlisted} array file(s) are in no split" if unlisted else ""))
  with Progress(total=sum(len(i) for _, i in todo), desc="import", unit="video") as progress:
    for path, items in todo:
      import_shard(items, path, spec=spec, class_names=class_names, key=key,
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
          "num_videos": {s: len(v) for s, v in clips.items()},
          "unlisted": unlisted}
