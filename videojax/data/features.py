"""Per-frame features on disk: compressed HDF5 shards written once, read many times.

A feature directory holds, for each split, shards named
`<split>-<iiiii>-of-<nnnnn>.h5`, each with

  features   f16[n, t, d]  frames past `lengths[i]` are zeros and carry no meaning
  lengths    i32[n]        number of real frames of each clip (the mask)
  labels     i32[n]        0-indexed class
  video_ids  str[n]        path relative to the dataset root, without extension
  groups     str[n]        optional: each clip's group ("" unknown), which
                           validation keeps whole (`videojax.data.validation`)

and attributes `spec` (JSON of the extraction settings), `spec_hash`,
`class_names` (JSON), `failed` (JSON list of [video_id, reason]) and the shard
position. A shard is written under a temporary name and renamed when complete,
so a file with the final name is always whole.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import pathlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np

from videojax.files import write_json_atomic, write_text_atomic

FORMAT_VERSION = 1
SPEC_FILE = "spec.json"
FAILED_FILE = "failed_videos.csv"
_SHARD_RE = re.compile(r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.h5$")


class FeatureError(ValueError):
  """Feature files that are missing, incomplete, corrupt or from another config."""


def spec_hash(spec: Mapping[str, object]) -> str:
  """A short stable hash of an extraction spec (JSON with sorted keys)."""
  blob = json.dumps(dict(spec), sort_keys=True, default=str).encode()
  return hashlib.sha256(blob).hexdigest()[:16]


def shard_name(split: str, index: int, count: int) -> str:
  return f"{split}-{index:05d}-of-{count:05d}.h5"


@dataclasses.dataclass
class FeatureSet:
  """The examples of one split, in memory.

  Attributes:
    features: f16[n, t, d]; rows past `lengths` are zeros and carry no meaning.
    lengths: i32[n] real frames per clip.
    labels: i32[n] 0-indexed classes.
    video_ids: n ids, paths relative to the dataset root without extension.
    class_names: k names, index = label.
    spec: the extraction settings the features were made with.
    failed: [video_id, reason] of clips that could not be extracted.
    groups: n groups ("" unknown) where the shards store them (`read_index`),
      else None.
  """
  features: np.ndarray
  lengths: np.ndarray
  labels: np.ndarray
  video_ids: list[str]
  class_names: list[str]
  spec: dict
  failed: list[list[str]]
  groups: list[str] | None = None

  def __len__(self) -> int:
    return len(self.labels)

  @property
  def num_frames(self) -> int:
    return self.features.shape[1]

  @property
  def feature_dim(self) -> int:
    return self.features.shape[2]

  def take(self, indices: Sequence[int] | np.ndarray) -> FeatureSet:
    """The examples at `indices`, in that order."""
    indices = np.asarray(indices, dtype=np.int64)
    return dataclasses.replace(
        self, features=self.features[indices], lengths=self.lengths[indices],
        labels=self.labels[indices],
        video_ids=[self.video_ids[i] for i in indices],
        groups=None if self.groups is None else [self.groups[i] for i in indices])


def subsample_frames(fs: FeatureSet, num_frames: int) -> FeatureSet:
  """The same clips with `num_frames` positions taken uniformly from each clip's real ones.

  Position i of a clip with L real positions keeps its `sample_indices(L, t)[i]`-th
  one, the rule extraction uses over a clip's frames, so features extracted once at
  the longest T serve every shorter T of an ablation. Clips with L <= t keep all
  their positions. The spec records `num_frames` = t and `subsampled_from`.

  Args:
    fs: features f16[n, T, d] with lengths i32[n].
    num_frames: t, 1 <= t <= T.

  Returns:
    a FeatureSet with features [n, t, d] and lengths min(L, t).

  Raises:
    ValueError: t outside [1, T].
  """
  from videojax.data.video import sample_indices  # Only here: keeps cv2 out of readers' path.
  if not 1 <= num_frames <= fs.num_frames:
    raise ValueError(f"data.num_frames={num_frames} must lie in [1, {fs.num_frames}] (the "
                     f"features hold {fs.num_frames} frames; 0 uses them all)")
  if num_frames == fs.num_frames:
    return fs
  out = np.zeros((len(fs), num_frames, fs.feature_dim), fs.features.dtype)
  lengths = np.minimum(fs.lengths, num_frames).astype(np.int32)
  for length in np.unique(fs.lengths):
    rows = np.flatnonzero(fs.lengths == length)
    idx = sample_indices(int(length), num_frames)
    out[rows, :len(idx)] = fs.features[rows][:, idx]
  spec = dict(fs.spec, num_frames=num_frames,
              subsampled_from=fs.spec.get("subsampled_from", fs.num_frames))
  return dataclasses.replace(fs, features=out, lengths=lengths, spec=spec)


def validate_arrays(features: np.ndarray, lengths: np.ndarray, labels: np.ndarray,
                    num_classes: int, where: str) -> None:
  """Checks shapes, lengths, labels and finiteness; raises FeatureError naming `where`."""
  if features.ndim != 3:
    raise FeatureError(f"{where}: features must be [n, t, d], got shape {features.shape}")
  n, t, _ = features.shape
  if lengths.shape != (n,) or labels.shape != (n,):
    raise FeatureError(
        f"{where}: features {features.shape} need lengths and labels of shape ({n},), "
        f"got {lengths.shape} and {labels.shape}")
  bad = np.flatnonzero((lengths < 0) | (lengths > t))
  if bad.size:
    raise FeatureError(f"{where}: lengths must lie in [0, {t}]; example {bad[0]} has "
                       f"{lengths[bad[0]]}")
  bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
  if bad.size:
    raise FeatureError(f"{where}: labels must lie in [0, {num_classes}); example {bad[0]} "
                       f"has {labels[bad[0]]}")
  finite = np.isfinite(features).all(axis=tuple(range(1, features.ndim)))
  if not finite.all():
    raise FeatureError(f"{where}: example {np.flatnonzero(~finite)[0]} has NaN or inf "
                       "features")


def write_shard(path: str | os.PathLike, *, features: np.ndarray, lengths: np.ndarray,
                labels: np.ndarray, video_ids: Sequence[str], class_names: Sequence[str],
                spec: Mapping[str, object], failed: Sequence[Sequence[str]] = (),
                compression_level: int = 4,
                groups: Sequence[str] | None = None) -> pathlib.Path:
  """Writes one shard atomically (temporary file, then rename).

  Args:
    path: final file name, `<dir>/<split>-<i>-of-<n>.h5`.
    features: [n, t, d], stored as float16.
    lengths: [n] real frames per clip.
    labels: [n] 0-indexed classes.
    video_ids: n ids.
    class_names: all k class names.
    spec: extraction settings; its hash marks the shard.
    failed: [video_id, reason] of the shard's clips that could not be extracted.
    compression_level: gzip level.
    groups: n groups ("" unknown), stored as `groups`; None stores none.

  Raises:
    FeatureError: inconsistent shapes, bad lengths or labels, or non-finite values
      (also after the cast to float16, which overflows past 65504).
  """
  path = pathlib.Path(path)
  with np.errstate(over="ignore"):  # overflow becomes inf, which validate_arrays reports
    features = np.asarray(features).astype(np.float16)
  lengths = np.asarray(lengths, dtype=np.int32)
  labels = np.asarray(labels, dtype=np.int32)
  validate_arrays(features, lengths, labels, len(class_names), str(path))
  if len(video_ids) != len(labels):
    raise FeatureError(f"{path}: {len(video_ids)} video ids for {len(labels)} examples")
  if groups is not None and len(groups) != len(labels):
    raise FeatureError(f"{path}: {len(groups)} groups for {len(labels)} examples")
  _, t, d = features.shape
  tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
  with h5py.File(tmp, "w") as f:
    f.create_dataset("features", data=features, maxshape=(None, t, d),
                     chunks=(1, t, d), compression="gzip",
                     compression_opts=compression_level, shuffle=True)
    f.create_dataset("lengths", data=lengths)
    f.create_dataset("labels", data=labels)
    f.create_dataset("video_ids", data=list(video_ids), dtype=h5py.string_dtype())
    if groups is not None:
      f.create_dataset("groups", data=list(groups), dtype=h5py.string_dtype())
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["spec"] = json.dumps(dict(spec), sort_keys=True, default=str)
    f.attrs["spec_hash"] = spec_hash(spec)
    f.attrs["class_names"] = json.dumps(list(class_names))
    f.attrs["failed"] = json.dumps([list(x) for x in failed])
  os.replace(tmp, path)
  return path


def shard_paths(features_dir: str | os.PathLike, split: str) -> list[pathlib.Path]:
  """The complete shards of `split`, sorted; FeatureError if any is missing.

  Raises:
    FeatureError: no shard of `split`, shards that disagree on their count, or
      missing indices (an extraction that has not finished).
  """
  features_dir = pathlib.Path(features_dir)
  found: dict[int, pathlib.Path] = {}
  counts = set()
  for p in sorted(features_dir.glob(f"{split}-*-of-*.h5")):
    m = _SHARD_RE.match(p.name)
    if m and m["split"] == split:
      found[int(m["index"])] = p
      counts.add(int(m["count"]))
  if not found:
    raise FeatureError(f"{features_dir}: no feature shards for split '{split}' "
                       f"(expected files named {shard_name(split, 0, 1)!r} ...); "
                       "run scripts/extract_features.py first")
  if len(counts) != 1:
    raise FeatureError(f"{features_dir}: shards of '{split}' disagree on their count "
                       f"{sorted(counts)}; remove the stale ones")
  (count,) = counts
  missing = sorted(set(range(count)) - set(found))
  if missing:
    raise FeatureError(f"{features_dir}: extraction of '{split}' is incomplete, shards "
                       f"{missing[:10]} of {count} are missing; run extraction again "
                       "(finished shards are kept)")
  return [found[i] for i in range(count)]


def read_shard_attrs(path: str | os.PathLike) -> dict:
  """The attributes of a shard: spec, spec_hash, class_names, failed.

  Raises:
    FeatureError: unreadable file or another format version.
  """
  try:
    with h5py.File(path, "r") as f:
      attrs = dict(f.attrs)
  except OSError as e:
    raise FeatureError(f"{path}: not a readable HDF5 feature shard ({e})") from e
  if attrs.get("format_version") != FORMAT_VERSION:
    raise FeatureError(f"{path}: feature format {attrs.get('format_version')}, "
                       f"this code reads {FORMAT_VERSION}")
  return {"spec": json.loads(attrs["spec"]), "spec_hash": str(attrs["spec_hash"]),
          "class_names": json.loads(attrs["class_names"]),
          "failed": json.loads(attrs["failed"])}


def describe_mismatch(expected: Mapping[str, object], found: Mapping[str, object]) -> str:
  """'key: expected X, found Y' for every differing key of two specs."""
  keys = sorted(set(expected) | set(found))
  diffs = [f"{k}: expected {expected.get(k)!r}, found {found.get(k)!r}" for k in keys
           if expected.get(k) != found.get(k)]
  return "; ".join(diffs) or "(same settings, different hash)"


def load_split(features_dir: str | os.PathLike, split: str,
               expect_spec: Mapping[str, object] | None = None,
               shard_indices: Sequence[int] | None = None) -> FeatureSet:
  """Reads the shards of `split` into memory.

  Args:
    features_dir: directory of shards.
    split: e.g. 'train' or 'test'.
    expect_spec: if given, every shard must have been made with exactly this spec.
    shard_indices: read only these shards (each host of a multi-host run reads
      its own); default all.

  Returns:
    The examples of the shards, in shard order.

  Raises:
    FeatureError: missing or incomplete shards, shards made with different specs
      or class lists, shapes that disagree, non-finite values.
  """
  paths = shard_paths(features_dir, split)
  if shard_indices is not None:
    paths = [paths[i] for i in shard_indices]
  first = read_shard_attrs(paths[0])
  if expect_spec is not None and first["spec_hash"] != spec_hash(expect_spec):
    raise FeatureError(f"{paths[0]}: made with other extraction settings: "
                       f"{describe_mismatch(expect_spec, first['spec'])}")
  parts, failed = [], []
  for p in paths:
    attrs = read_shard_attrs(p)
    if attrs["spec_hash"] != first["spec_hash"]:
      raise FeatureError(f"{p}: made with other settings than {paths[0]}: "
                         f"{describe_mismatch(first['spec'], attrs['spec'])}")
    if attrs["class_names"] != first["class_names"]:
      raise FeatureError(f"{p}: class list differs from {paths[0]}")
    with h5py.File(p, "r") as f:
      part = (f["features"][...], f["lengths"][...], f["labels"][...],
              [s.decode() if isinstance(s, bytes) else s for s in f["video_ids"][...]])
    validate_arrays(part[0], part[1], part[2], len(first["class_names"]), str(p))
    parts.append(part)
    failed.extend(attrs["failed"])
  shapes = {part[0].shape[1:] for part in parts if len(part[1])}
  if len(shapes) > 1:
    raise FeatureError(f"{features_dir}: shards of '{split}' have different [t, d]: "
                       f"{sorted(shapes)}")
  return FeatureSet(
      features=np.concatenate([p[0] for p in parts]),
      lengths=np.concatenate([p[1] for p in parts]),
      labels=np.concatenate([p[2] for p in parts]),
      video_ids=[v for p in parts for v in p[3]],
      class_names=first["class_names"], spec=first["spec"], failed=failed)


def concat(parts: Sequence[FeatureSet]) -> FeatureSet:
  """The examples of `parts` (same spec and classes), in order."""
  return dataclasses.replace(
      parts[0], features=np.concatenate([p.features for p in parts]),
      lengths=np.concatenate([p.lengths for p in parts]),
      labels=np.concatenate([p.labels for p in parts]),
      video_ids=[v for p in parts for v in p.video_ids],
      failed=[f for p in parts for f in p.failed],
      groups=(None if any(p.groups is None for p in parts)
              else [g for p in parts for g in p.groups]))


def read_index(features_dir: str | os.PathLike, split: str) -> tuple[FeatureSet, np.ndarray]:
  """Every example of `split` without its features, and the shard it lies in.

  Cheap (no feature is read), so every host of a multi-host run can see the
  whole split while loading only its own shards.

  Returns:
    (a FeatureSet whose features are f16[n, 0, 0], shard index i32[n]). Its
    groups are the shards' `groups`, or None unless every shard has them.

  Raises:
    FeatureError: as `shard_paths` and `read_shard_attrs`.
  """
  ids, lengths, labels, shard, groups = [], [], [], [], []
  paths = shard_paths(features_dir, split)
  attrs = [read_shard_attrs(p) for p in paths]  # Also the format check of every shard.
  for j, p in enumerate(paths):
    with h5py.File(p, "r") as f:
      ids += [s.decode() if isinstance(s, bytes) else s for s in f["video_ids"][...]]
      lengths.append(f["lengths"][...])
      labels.append(f["labels"][...])
      if groups is not None and "groups" in f:
        groups += [s.decode() if isinstance(s, bytes) else s for s in f["groups"][...]]
      else:  # Shards written before groups were stored: validation recomputes them.
        groups = None
    shard += [j] * len(labels[-1])
  index = FeatureSet(features=np.zeros((len(ids), 0, 0), np.float16),
                     lengths=np.concatenate(lengths).astype(np.int32),
                     labels=np.concatenate(labels).astype(np.int32), video_ids=ids,
                     class_names=attrs[0]["class_names"], spec=attrs[0]["spec"], failed=[],
                     groups=groups)
  return index, np.asarray(shard, np.int32)


def check_spec_file(features_dir: pathlib.Path, spec: dict[str, Any],
                    class_names: Sequence[str]) -> None:
  """Refuses a features_dir made with other settings; writes spec.json on first use."""
  path = features_dir / SPEC_FILE
  record = {"spec": spec, "spec_hash": spec_hash(spec), "class_names": list(class_names)}
  if path.exists():
    old = json.loads(path.read_text())
    if old.get("spec_hash") != record["spec_hash"] or old.get("class_names") != record["class_names"]:
      diff = describe_mismatch(spec, old.get("spec", {}))
      if old.get("class_names") != record["class_names"]:
        diff += "; class lists differ"
      raise FeatureError(f"{features_dir} holds features of other settings ({diff}); use "
                         "another features directory or delete it")
  else:
    write_json_atomic(path, record)


def plan_shards(features_dir: pathlib.Path, split: str, items: Sequence, shard_size: int,
                spec: Mapping[str, object], worker: int = 0,
                num_workers: int = 1) -> tuple[list[tuple[pathlib.Path, Sequence]], int]:
  """Which shards of `split` this worker still has to write.

  `items` (clips) are cut into shards of `shard_size`; worker w of n takes the
  shards j with j % n == w. A shard already on disk is skipped if it was made
  with `spec`, and refused otherwise.

  Returns:
    ([(shard path, its items), ...] to write, number of shards skipped).

  Raises:
    FeatureError: a shard on disk made with other settings.
  """
  todo, skipped = [], 0
  count = max(1, -(-len(items) // shard_size))
  expected = spec_hash(spec)
  for j in range(worker, count, num_workers):
    path = features_dir / shard_name(split, j, count)
    if path.exists():
      attrs = read_shard_attrs(path)
      if attrs["spec_hash"] != expected:
        raise FeatureError(f"{path}: made with other settings: "
                           f"{describe_mismatch(spec, attrs['spec'])}")
      skipped += 1
      continue
    todo.append((path, items[j * shard_size:(j + 1) * shard_size]))
  return todo, skipped


def write_failure_report(features_dir: pathlib.Path) -> list[list[str]]:
  """Collects the failures of every shard on disk into failed_videos.csv.

  Returns:
    [[split, video_id, reason], ...].
  """
  failed = []
  for path in sorted(features_dir.glob("*-of-*.h5")):
    split = _SHARD_RE.match(path.name)["split"]
    failed += [[split, *f] for f in read_shard_attrs(path)["failed"]]
  buf = io.StringIO()
  csv.writer(buf).writerows([["split", "video_id", "reason"], *failed])
  write_text_atomic(features_dir / FAILED_FILE, buf.getvalue())
  return failed
