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
`class_names` (JSON), `failed` (JSON list of [video_id, reason]) and
`video_ids_sha256`. A shard is written under a temporary name and renamed when
complete, so a file with the final name is always whole.

Damage after writing (bit rot, a bad disk, a truncated copy) is detected on
read: the numeric datasets carry HDF5's fletcher32 checksum per chunk, and the
video ids (variable-length strings take no HDF5 filter) the digest
`video_ids_sha256`. Shards written before checksums existed lack both and are
still read. Every read error names the file and the repair
(`scripts/extract_features.py --verify`, see `verify_shards`).
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import h5py
import numpy as np

from videojax import errors, files
from videojax.files import write_json_atomic, write_text_atomic

FORMAT_VERSION = 1
SPEC_FILE = "spec.json"
FAILED_FILE = "failed_videos.csv"
# The backbone's variables, written by extraction; training keeps a copy in the workdir.
BACKBONE_FILE = "backbone.msgpack"
DAMAGED_DIR = "damaged"  # Where `verify_shards` moves shards that do not read back whole.
_SHARD_RE = re.compile(r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.h5$")


class FeatureError(ValueError):
  """Feature files that are missing, incomplete, corrupt or from another config."""


REPAIR_HINT = ("run scripts/extract_features.py --verify with the same config to move damaged "
               "shards aside, then run it again without --verify to re-extract them")


@contextlib.contextmanager
def open_shard(path: str | os.PathLike) -> Iterator[h5py.File]:
  """h5py.File(path, 'r'), with every read error turned into FeatureError naming `path`.

  h5py reports a damaged file, a failed checksum or a truncated chunk as an
  OSError that names no file; the caller reading many shards could not tell
  which one is bad.

  Raises:
    FeatureError: the file cannot be opened or a dataset in it cannot be read
      (missing, failed checksum, undecodable); the message says how to repair.
  """
  try:
    if files.is_url(path):  # h5py reads a file object: gs://, s3://, ... through epath.
      with files.path(path).open("rb") as fobj, h5py.File(fobj, "r") as f:
        yield f
    else:
      with h5py.File(path, "r") as f:
        yield f
  except (OSError, KeyError, UnicodeDecodeError) as e:
    raise FeatureError(f"{path}: damaged feature shard ({errors.message(e)}); {REPAIR_HINT}") from e


def ids_digest(video_ids: Sequence[str]) -> str:
  """sha256 of the ids joined by newlines: the checksum of the `video_ids` dataset."""
  return hashlib.sha256("\n".join(video_ids).encode()).hexdigest()


def read_video_ids(f: h5py.File, path: str | os.PathLike) -> list[str]:
  """The `video_ids` of an open shard, checked against its digest where it has one.

  Raises:
    FeatureError: the ids do not match the stored digest (damaged file).
  """
  ids = [s.decode() if isinstance(s, bytes) else s for s in f["video_ids"][...]]
  digest = f.attrs.get("video_ids_sha256")
  if digest is not None and ids_digest(ids) != str(digest):
    raise FeatureError(f"{path}: damaged feature shard (video_ids fail their checksum); "
                       f"{REPAIR_HINT}")
  return ids


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
        self, features=self.features.take(indices, axis=0), lengths=self.lengths[indices],
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
  if not 1 <= num_frames <= fs.num_frames:
    raise ValueError(f"data.num_frames={num_frames} must lie in [1, {fs.num_frames}]: the "
                     f"features hold {fs.num_frames} frames")
  if num_frames == fs.num_frames:
    return fs
  lengths = np.minimum(fs.lengths, num_frames).astype(np.int32)
  if hasattr(fs.features, "subsampled"):  # stream.ShardArray: subsampled as it is read.
    out = fs.features.subsampled(num_frames)
  else:
    out = subsample_array(fs.features, fs.lengths, num_frames)
  spec = dict(fs.spec, num_frames=num_frames,
              subsampled_from=fs.spec.get("subsampled_from", fs.num_frames))
  return dataclasses.replace(fs, features=out, lengths=lengths, spec=spec)


def subsample_array(features: np.ndarray, lengths: np.ndarray, num_frames: int) -> np.ndarray:
  """f16[n, t, d] from f16[n, T, d]: `subsample_frames` on arrays (lengths: i32[n], stored)."""
  from videojax.data.video import sample_indices  # Only here: keeps cv2 out of readers' path.
  out = np.zeros((len(features), num_frames, features.shape[2]), features.dtype)
  for length in np.unique(lengths):
    rows = np.flatnonzero(lengths == length)
    idx = sample_indices(int(length), num_frames)
    out[rows, :len(idx)] = features[rows][:, idx]
  return out


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
                groups: Sequence[str] | None = None,
                compression: str = "none") -> pathlib.Path:
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
    compression: one of COMPRESSIONS: none (the default), gzip or lzf (both with
      byte shuffle). Any of them reads back the same (chunks of one clip). Float16
      features hardly compress (gzip: 0.85 of the size) while gzip reads 2.3x slower
      per core than none (benchmarks/bench_stream.py codecs), and streamed training
      reads every epoch: disk is cheaper than the cores. Shards of either kind read.
    groups: n groups ("" unknown), stored as `groups`; None stores none.

  Raises:
    FeatureError: inconsistent shapes, bad lengths or labels, or non-finite values
      (also after the cast to float16, which overflows past 65504).
  """
  path = files.path(path)
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
  # The file is built in memory and written with plain file I/O: HDF5 1.14 writing to a
  # full disk fails inside its close and then segfaults (exit 139) freeing the dataset
  # handles, leaving the temporary file behind. Python's write fails cleanly instead.
  buf = io.BytesIO()
  with h5py.File(buf, "w") as f:
    # fletcher32 on every numeric dataset: a damaged chunk fails its read (see open_shard).
    # Chunks of one clip: a streamed batch reads its rows and nothing else.
    f.create_dataset("features", data=features, maxshape=(None, t, d), chunks=(1, t, d),
                     fletcher32=True, **_compression_options(compression, compression_level))
    f.create_dataset("lengths", data=lengths, fletcher32=True)
    f.create_dataset("labels", data=labels, fletcher32=True)
    f.create_dataset("video_ids", data=list(video_ids), dtype=h5py.string_dtype())
    if groups is not None:
      f.create_dataset("groups", data=list(groups), dtype=h5py.string_dtype())
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["spec"] = json.dumps(dict(spec), sort_keys=True, default=str)
    f.attrs["spec_hash"] = spec_hash(spec)
    f.attrs["class_names"] = json.dumps(list(class_names))
    f.attrs["failed"] = json.dumps([list(x) for x in failed])
    f.attrs["video_ids_sha256"] = ids_digest(list(video_ids))
  write_bytes_atomic(path, buf.getbuffer())
  return path


COMPRESSIONS = ("gzip", "lzf", "none")


def _compression_options(compression: str, level: int) -> dict:
  if compression == "gzip":
    return {"compression": "gzip", "compression_opts": level, "shuffle": True}
  if compression == "lzf":
    return {"compression": "lzf", "shuffle": True}
  if compression == "none":
    return {}
  raise ValueError(f"compression={compression!r}; accepted: {', '.join(COMPRESSIONS)}")


def _mb(n: int) -> str:
  return f"{n / 2**20:.1f} MB"


def write_bytes_atomic(path: pathlib.Path, data: bytes | memoryview) -> None:
  """Writes `data` to a temporary file beside `path`, syncs it, renames it into place.

  A URL (gs://...) is written directly: the object store makes it visible whole, on close.

  Raises:
    OSError: too little free space (checked first, with shutil.disk_usage) or a
      failed write; the message names `path` and the space needed, and the
      temporary file is removed, so no half file is left.
  """
  if files.is_url(path):
    path.write_bytes(bytes(data))
    return
  tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
  free = shutil.disk_usage(path.parent).free
  fix = "free some space or set data.features_dir to another disk, then run again"
  if free < len(data):
    raise OSError(errno.ENOSPC, f"{path}: not enough disk space to write the shard: it needs "
                  f"{_mb(len(data))}, {_mb(free)} free on {path.parent}; {fix}")
  try:
    with open(tmp, "wb") as out:
      out.write(data)
      out.flush()
      os.fsync(out.fileno())  # ENOSPC can surface only here (delayed allocation, NFS).
    os.replace(tmp, path)
  except BaseException as e:
    tmp.unlink(missing_ok=True)
    if not isinstance(e, OSError):
      raise
    why = e.strerror or errors.message(e)
    if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
      raise OSError(e.errno, f"{path}: cannot write the shard ({why}); check that "
                    f"{path.parent} is writable") from e
    raise OSError(e.errno, f"{path}: cannot write the shard ({why}); it needs "
                  f"{_mb(len(data))}, {_mb(shutil.disk_usage(path.parent).free)} free on "
                  f"{path.parent}; {fix}") from e


def shard_paths(features_dir: str | os.PathLike, split: str) -> list[pathlib.Path]:
  """The complete shards of `split`, sorted; FeatureError if any is missing.

  Raises:
    FeatureError: no shard of `split`, shards that disagree on their count, or
      missing indices (an extraction that has not finished).
  """
  features_dir = files.path(features_dir)
  on_disk = _shards_on_disk(features_dir, split)
  found = {index: p for (index, _), p in on_disk.items()}
  counts = {count for _, count in on_disk}
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
    FeatureError: unreadable file (see `open_shard`) or another format version.
  """
  with open_shard(path) as f:
    attrs = dict(f.attrs)
  if attrs.get("format_version") != FORMAT_VERSION:
    raise FeatureError(f"{path}: feature format {attrs.get('format_version')}, "
                       f"this code reads {FORMAT_VERSION}")
  try:
    return {"spec": json.loads(attrs["spec"]), "spec_hash": str(attrs["spec_hash"]),
            "class_names": json.loads(attrs["class_names"]),
            "failed": json.loads(attrs["failed"])}
  except (KeyError, ValueError) as e:  # Attributes are not checksummed: damage shows here.
    raise FeatureError(f"{path}: damaged feature shard (attribute {errors.message(e)}); "
                       f"{REPAIR_HINT}") from e


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
      or class lists, shapes that disagree, non-finite values, a damaged shard
      (named, with the repair: `REPAIR_HINT`).
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
    with open_shard(p) as f:
      part = (f["features"][...], f["lengths"][...], f["labels"][...], read_video_ids(f, p))
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


def check_shards(paths: Sequence[pathlib.Path], expect_spec: Mapping[str, object],
                 class_names: Sequence[str]) -> tuple[int, int]:
  """The stored [t, d] of shards whose features are left on disk, after load_split's checks.

  Raises:
    FeatureError: as `load_split` (another spec or class list, shapes that disagree,
      a damaged file), without reading the features.
  """
  shapes = set()
  for p in paths:
    attrs = read_shard_attrs(p)
    if attrs["spec_hash"] != spec_hash(expect_spec):
      raise FeatureError(f"{p}: made with other extraction settings: "
                         f"{describe_mismatch(expect_spec, attrs['spec'])}")
    if attrs["class_names"] != list(class_names):
      raise FeatureError(f"{p}: class list differs from {paths[0]}")
    with open_shard(p) as f:
      shape = f["features"].shape
    if shape[0]:
      shapes.add(tuple(shape[1:]))
  if len(shapes) > 1:
    raise FeatureError(f"{paths[0].parent}: shards have different [t, d]: {sorted(shapes)}")
  return shapes.pop() if shapes else (0, 0)


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
    with open_shard(p) as f:
      ids += read_video_ids(f, p)
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


def shard_count(num_items: int, shard_size: int) -> int:
  """How many shards `num_items` clips fill (at least 1: an empty split has one empty shard)."""
  return max(1, -(-num_items // shard_size))


def _id_and_label(item) -> tuple[str, int]:
  """(video_id, label) of a planned clip: a sources.Clip or a (video_id, label, ...) tuple."""
  if hasattr(item, "video_id"):
    return item.video_id, int(item.label)
  return item[0], int(item[1])


def _shards_on_disk(features_dir: pathlib.Path, split: str) -> dict[tuple[int, int], pathlib.Path]:
  """{(index, count): path} of every finished shard file of `split`, of any count."""
  found = {}
  for p in files.matching(features_dir, f"{split}-*-of-*.h5"):
    m = _SHARD_RE.match(p.name)
    if m and m["split"] == split:
      found[int(m["index"]), int(m["count"])] = p
  return found


def _shard_clips(path: pathlib.Path) -> tuple[str, list[tuple[str, int]], set[str]]:
  """(spec_hash, [(video_id, label)] stored, failed ids) of a shard; cheap (no features).

  Raises:
    FeatureError: unreadable or damaged file.
  """
  attrs = read_shard_attrs(path)
  with open_shard(path) as f:
    stored = list(zip(read_video_ids(f, path), (int(v) for v in f["labels"][...])))
  return attrs["spec_hash"], stored, {v for v, _ in attrs["failed"]}


def _holds_exactly(clips: tuple[list[tuple[str, int]], set[str]],
                   planned: list[tuple[str, int]]) -> bool:
  """Whether a shard's (stored, failed) are exactly the planned clips, in order.

  In order because a resumed extraction must equal a fresh one; a failed clip
  counts as held (it is retried only by deleting its shard).
  """
  stored, failed = clips
  return ([c for c in planned if c[0] not in failed] == stored
          and failed == {v for v, _ in planned} - {v for v, _ in stored})


def plan_shards(features_dir: pathlib.Path, split: str, items: Sequence, shard_size: int,
                spec: Mapping[str, object], worker: int = 0, num_workers: int = 1,
                echo: Callable[[str], None] | None = None,
                ) -> tuple[list[tuple[pathlib.Path, Sequence]], int]:
  """Which shards of `split` this worker still has to write.

  `items` (clips: sources.Clip or (video_id, label, ...)) are cut into shards
  of `shard_size`; worker w of n takes the shards j with j % n == w.

  The rule, so that a clip list edited between an interrupted run and its
  resume still ends with exactly the listed clips: a shard on disk is kept only
  if its video ids (and labels) plus its failed ids are exactly the clips
  planned for it, in order. Otherwise it is planned again and its new version
  replaces it atomically when whole. A shard of another shard count of the
  split (the list grew or shrank) holding exactly the clips planned for a
  missing shard is renamed into place, not re-extracted; the remaining shards
  of other counts are stale and `remove_stale_shards` removes them once the new
  ones are whole. An unreadable shard is planned again.

  Args:
    echo: where the one-line account of shards replanned goes (if any).

  Returns:
    ([(shard path, its items), ...] to write, number of shards kept or renamed).

  Raises:
    FeatureError: a shard on disk made with other settings.
  """
  todo, kept, renamed, changed, damaged = [], 0, 0, 0, 0
  count = shard_count(len(items), shard_size)
  expected = spec_hash(spec)
  on_disk = _shards_on_disk(features_dir, split)
  others = sorted(p for (_, c), p in on_disk.items() if c != count)
  other_clips: dict[pathlib.Path, tuple] | None = None  # Read only if a shard is missing.
  for j in range(worker, count, num_workers):
    path = features_dir / shard_name(split, j, count)
    chunk = items[j * shard_size:(j + 1) * shard_size]
    planned = [_id_and_label(item) for item in chunk]
    if path.exists():
      try:
        found_hash, stored, failed = _shard_clips(path)
      except FeatureError:
        damaged += 1
        todo.append((path, chunk))
        continue
      if found_hash != expected:
        raise FeatureError(f"{path}: made with other settings: "
                           f"{describe_mismatch(spec, read_shard_attrs(path)['spec'])}")
      if _holds_exactly((stored, failed), planned):
        kept += 1
      else:
        changed += 1
        todo.append((path, chunk))
      continue
    if other_clips is None:
      other_clips = {}
      for p in others:
        try:
          h, stored, failed = _shard_clips(p)
        except FeatureError:
          continue  # Stale and damaged: never reused, removed with the stale ones.
        if h == expected:
          other_clips[p] = (stored, failed)
    match = next((p for p, clips in other_clips.items() if _holds_exactly(clips, planned)), None)
    if match is not None:
      match.replace(path)  # Same bytes under the new count: no half state.
      del other_clips[match]
      renamed += 1
    else:
      todo.append((path, chunk))
  stale = len(others) - renamed
  if echo is not None and (changed or renamed or damaged or stale):
    parts = [f"{kept} shard(s) kept", f"{changed} to re-extract because their clips changed",
             f"{renamed} reused from the shards of another count",
             f"{damaged} unreadable to re-extract",
             f"{stale} stale shard(s) of another count to remove once the {count} new ones "
             "are whole"]
    echo(f"{split}: shards in {features_dir} checked against the clip list: "
         + ", ".join(x for x in parts if not x.startswith("0 ")))
  return todo, kept + renamed


def remove_stale_shards(features_dir: pathlib.Path, split: str, count: int) -> list[pathlib.Path]:
  """Deletes the shards of `split` of a count other than `count`, once all `count` are whole.

  They hold clips of an earlier clip list (see `plan_shards`); deleting them
  only after every shard of the current count exists means nothing valid is
  lost before its replacement is complete (with several workers, the last one
  to finish does it).

  Returns:
    the deleted paths (none while a current shard is still missing).
  """
  on_disk = _shards_on_disk(features_dir, split)
  if any((j, count) not in on_disk for j in range(count)):
    return []
  stale = sorted(p for (_, c), p in on_disk.items() if c != count)
  for p in stale:
    p.unlink(missing_ok=True)  # Another worker may have got there first.
  return stale


def clear_stale_shards(features_dir: pathlib.Path, counts: Mapping[str, int], echo=print) -> None:
  """`remove_stale_shards` for each split -> its current shard count, saying what went."""
  for split, count in counts.items():
    stale = remove_stale_shards(features_dir, split, count)
    if stale:
      echo(f"{split}: removed {len(stale)} stale shard(s) of an earlier clip list "
           f"({stale[0].name} ...), now that its {count} new shard(s) are whole")


def check_shard(path: str | os.PathLike) -> bool:
  """Reads a whole shard and checks it; returns whether it carries checksums.

  Raises:
    FeatureError: the shard is damaged (unreadable, a failed checksum) or
      holds invalid values; the message names it.
  """
  attrs = read_shard_attrs(path)
  with open_shard(path) as f:
    features, lengths, labels = f["features"][...], f["lengths"][...], f["labels"][...]
    ids = read_video_ids(f, path)
    checksummed = bool(f["features"].fletcher32) and "video_ids_sha256" in f.attrs
  validate_arrays(features, lengths, labels, len(attrs["class_names"]), str(path))
  if len(ids) != len(labels):
    raise FeatureError(f"{path}: {len(ids)} video ids for {len(labels)} examples; {REPAIR_HINT}")
  return checksummed


def verify_shards(features_dir: str | os.PathLike, splits: Sequence[str] | None = None,
                  ) -> tuple[list[tuple[pathlib.Path, str]], int, int]:
  """Reads every shard of `splits` (default all) whole; moves the damaged ones aside.

  A damaged shard is moved (not deleted) into `<features_dir>/damaged/`: its
  name is then free, so the next extraction rewrites it, and the bad file is
  kept for whoever wants to see what the disk did to it; nothing is lost by a
  check. Shards written before checksums existed are checked by the full read
  and the value checks alone.

  Returns:
    ([(moved-to path, reason)] of damaged shards, shards checked, shards
    among them without checksums).
  """
  features_dir = files.path(features_dir)
  bad, checked, unchecked = [], 0, 0
  for path in files.matching(features_dir, "*-of-*.h5"):
    m = _SHARD_RE.match(path.name)
    if not m or (splits is not None and m["split"] not in splits):
      continue
    checked += 1
    try:
      unchecked += not check_shard(path)
    except FeatureError as e:
      reason = str(e).replace(f"; {REPAIR_HINT}", "")
      dest = features_dir / DAMAGED_DIR / path.name
      dest.parent.mkdir(exist_ok=True)
      path.replace(dest)
      bad.append((dest, reason))
  return bad, checked, unchecked


def write_failure_report(features_dir: pathlib.Path) -> list[list[str]]:
  """Collects the failures of every shard on disk into failed_videos.csv.

  Returns:
    [[split, video_id, reason], ...].
  """
  failed = []
  for path in files.matching(features_dir, "*-of-*.h5"):
    split = _SHARD_RE.match(path.name)["split"]
    failed += [[split, *f] for f in read_shard_attrs(path)["failed"]]
  buf = io.StringIO()
  csv.writer(buf).writerows([["split", "video_id", "reason"], *failed])
  write_text_atomic(features_dir / FAILED_FILE, buf.getvalue())
  return failed
