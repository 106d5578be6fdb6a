"""Dataset layouts, picked by name with `config.data.layout`.

Every layout yields the same things: the class names (label order), the clips
of the 'train' and 'test' subsets as `ucf101.Example`s, and each clip's group,
which validation hold-out keeps whole (`ucf101.split_by_group`): UCF gNN and
HMDB source video from the names, a `group` column of a CSV, else the source
video a folder clip's name was cut from (`source_group`); "" where none can be
known. Extraction stores the groups in the shards. A video_id is
the clip's path relative to `config.data.root` without extension (csv: the
path as listed), unique within a subset. Whether video files exist is not
checked: extraction reports missing or unreadable files one by one.

  ucf101       <root>/classInd.txt, trainlist0N.txt, testlist0N.txt (`ucf101`).
  hmdb51       <root>/<class>/<video>.avi, <split_dir>/<class>_test_split<N>.txt.
  folders      <root>/{train,test}/<Class>/<video>, or <root>/<Class>/<video>
               split by group with data.test_fraction and data.split_seed.
  csv          <root>/<csv_train>, <root>/<csv_test>: rows of (video path, label),
               and a `group` column where the header has one.
  tfds_ucf101  UCF-101 as built by tensorflow-datasets' `ucf101` builder; clips
               are JPEG frames in TFRecords rather than files (see `_tfds_read_split`).
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import functools
import os
import pathlib
import re
import shutil
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from videojax import platform
from videojax.data import ucf101
from videojax.data.ucf101 import Example

SUBSETS = ("train", "test")
# Lower-case suffixes the folders layout takes for videos; other files are ignored.
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg",
                    ".wmv", ".flv", ".3gp", ".ogv")


def _key(data_config, key: str) -> Any:
  """config.data.<key>, or a ValueError naming it when the config lacks it."""
  if key not in data_config:
    raise ValueError(f"config.data.{key} is missing; add it (see configs/default.py)")
  return data_config[key]


def _subset(subset: str) -> str:
  if subset not in SUBSETS:
    raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}")
  return subset


# ---------------------------------------------------------------------------- ucf101

def _ucf_class_names(c) -> list[str]:
  return ucf101.read_class_names(_key(c, "root"))


def _ucf_read_split(c, subset: str) -> list[Example]:
  return ucf101.read_split(_key(c, "root"), _subset(subset), _key(c, "split"))


# ---------------------------------------------------------------------------- hmdb51

HMDB_SPLIT_DIR = "testTrainMulti_7030_splits"
_HMDB_SUBSET = {"1": "train", "2": "test"}  # "0": not used in this split
_TRAILING_INDEX = re.compile(r"_\d+$")


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
  group = ucf101.group_of(video_id)
  if group:
    return group
  folder, _, name = video_id.rpartition("/")
  cls = class_name or folder.rpartition("/")[2]
  cut = name.rfind(f"_{cls}_") if cls else -1
  source = name[:cut] if cut > 0 else _CLIP_SUFFIX.sub("", name)
  if not source or source == name:
    return ""
  return f"{folder}/{source}" if folder else source


def _hmdb_files(c) -> tuple[pathlib.Path, dict[str, pathlib.Path]]:
  """(split folder, {class: its split-N file}) with classes sorted."""
  root, given, split = pathlib.Path(_key(c, "root")), _key(c, "split_dir"), _key(c, "split")
  folder = root / given if given else root / HMDB_SPLIT_DIR
  if not folder.is_dir():
    raise ValueError(f"{folder}: no such folder of HMDB-51 split files (config.data.split_dir="
                     f"{given!r}; empty means <root>/{HMDB_SPLIT_DIR})")
  suffix = f"_test_split{split}.txt"
  files = {p.name[:-len(suffix)]: p for p in folder.iterdir()
           if p.name.endswith(suffix) and len(p.name) > len(suffix) and p.is_file()}
  if not files:
    raise ValueError(f"{folder}: no '<class>{suffix}' files (config.data.split={split}; "
                     "HMDB-51 has splits 1-3)")
  return folder, dict(sorted(files.items()))


def _hmdb_class_names(c) -> list[str]:
  return list(_hmdb_files(c)[1])


def _hmdb_read_split(c, subset: str) -> list[Example]:
  """Clips marked 1 (train) or 2 (test) in the class files; classes sorted, lines in order."""
  _subset(subset)
  root = pathlib.Path(_key(c, "root"))
  folder, files = _hmdb_files(c)
  examples = []
  for label, (cls, path) in enumerate(files.items()):
    first_line: dict[str, int] = {}
    for lineno, line in ucf101.read_lines(path):
      parts = line.split()
      if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
        raise ValueError(f"{path}:{lineno}: expected '<video>.avi <0|1|2>' (1 train, 2 test, "
                         f"0 unused), got {line!r}")
      name = parts[0]
      if "/" in name or "\\" in name:
        raise ValueError(f"{path}:{lineno}: expected a file name in <root>/{cls}/, got {name!r}")
      if name in first_line:
        raise ValueError(f"{path}:{lineno}: {name} is listed twice (also line {first_line[name]})")
      first_line[name] = lineno
      if _HMDB_SUBSET.get(parts[1]) == subset:
        video_id = f"{cls}/{pathlib.PurePosixPath(name).stem}"
        examples.append(Example(path=root / cls / name, label=label, video_id=video_id,
                                group=hmdb_group(video_id)))
  if not examples:
    raise ValueError(f"{folder}: no clip is marked {'1' if subset == 'train' else '2'} "
                     f"({subset}) in the *_test_split{_key(c, 'split')}.txt files")
  return examples


# ---------------------------------------------------------------------------- folders

def _folders_base(c, subset: str) -> pathlib.Path:
  """<root>/<subset> when root has train/ and test/; root itself when it has neither."""
  root = pathlib.Path(_key(c, "root"))
  if not root.is_dir():
    raise ValueError(f"{root}: no such folder (config.data.root)")
  present = [s for s in SUBSETS if (root / s).is_dir()]
  if len(present) == 1:
    missing = next(s for s in SUBSETS if s not in present)
    raise ValueError(f"{root}: has {present[0]}/ but no {missing}/; give both (each with a "
                     "folder per class) or neither (one folder per class, split by "
                     "config.data.test_fraction)")
  return root / subset if present else root


def _scan_classes(base: pathlib.Path) -> dict[str, list[pathlib.Path]]:
  """{class folder name: its video files, sorted} with class names sorted."""
  folders = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
  if not folders:
    raise ValueError(f"{base}: no class folders; config.data.layout='folders' expects "
                     "<Class>/<video> under it")
  out = {}
  for folder in folders:
    videos = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                    and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not videos:
      raise ValueError(f"{folder}: class folder holds no video (no file ending in "
                       f"{', '.join(VIDEO_EXTENSIONS)}); remove it or add its clips")
    out[folder.name] = videos
  return out


def _folders_examples(root: pathlib.Path, classes: dict[str, list[pathlib.Path]],
                      label_of: Mapping[str, int]) -> list[Example]:
  examples: list[Example] = []
  first: dict[str, pathlib.Path] = {}
  for cls, videos in classes.items():
    for path in videos:
      video_id = path.relative_to(root).with_suffix("").as_posix()
      if video_id in first:
        raise ValueError(f"{path} and {first[video_id]}: two videos with one name; "
                         f"video_id {video_id!r} must be unique")
      first[video_id] = path
      examples.append(Example(path=path, label=label_of[cls], video_id=video_id,
                              group=source_group(video_id, cls)))
  return examples


def _folders_class_names(c) -> list[str]:
  return list(_scan_classes(_folders_base(c, "train")))


def _folders_read_split(c, subset: str) -> list[Example]:
  """Sorted class folders; clips in name order; pool split by `ucf101.split_by_group`."""
  _subset(subset)
  root = pathlib.Path(_key(c, "root"))
  base = _folders_base(c, subset)
  train_classes = _scan_classes(_folders_base(c, "train"))
  label_of = {cls: i for i, cls in enumerate(train_classes)}
  if base != root:  # train/ and test/
    classes = train_classes if subset == "train" else _scan_classes(base)
    for cls in classes:
      if cls not in label_of:
        raise ValueError(f"{base / cls}: class {cls!r} has no folder in {root / 'train'}")
    return _folders_examples(root, classes, label_of)
  fraction, seed = _key(c, "test_fraction"), _key(c, "split_seed")
  if not 0 < fraction < 1:
    raise ValueError(f"config.data.test_fraction={fraction} must lie in (0, 1) to split "
                     f"{root} (no train/ and test/ folders)")
  if not isinstance(seed, int) or seed < 0:
    raise ValueError(f"config.data.split_seed={seed!r} must be an integer >= 0")
  train, test = ucf101.split_by_group(_folders_examples(root, train_classes, label_of),
                                      fraction, seed)
  return train if subset == "train" else test


# ---------------------------------------------------------------------------- csv

CSV_GROUP_COLUMN = "group"


def _csv_rows(c, subset: str) -> tuple[pathlib.Path, list[tuple[int, str, str, str]]]:
  """(file, [(line, path, label, group), ...]) of config.data.csv_<subset>.

  group is the cell of the header's `group` column where it has one, else "".
  """
  key = f"csv_{subset}"
  name = _key(c, key)
  path = pathlib.Path(_key(c, "root")) / name
  if not path.is_file():
    raise ValueError(f"{path}: file not found (config.data.{key}={name!r}, relative to "
                     "config.data.root)")
  columns = tuple(_key(c, "csv_columns"))
  if len(columns) != 2:
    raise ValueError(f"config.data.csv_columns={columns!r}: give the header names of the "
                     "path and the label columns, e.g. ('video_name', 'tag')")
  reader = csv.reader(ucf101.read_text(path).splitlines())
  rows = []
  where = [0, 1]  # cells of path and label; header-less files hold exactly these two
  group_at = None  # cell of the group, where the header names one
  header_seen = False
  for cells in reader:
    lineno = reader.line_num
    cells = [cell.strip() for cell in cells]
    if not any(cells):
      continue
    if not rows and not header_seen:
      if all(col in cells for col in columns):
        where, header_seen = [cells.index(col) for col in columns], True
        if CSV_GROUP_COLUMN in cells:
          group_at = cells.index(CSV_GROUP_COLUMN)
        continue
      if len(cells) == 2 and not pathlib.PurePath(cells[0]).suffix:
        raise ValueError(f"{path}:{lineno}: {cells!r} looks like a header but lacks the "
                         f"columns {columns!r}; set config.data.csv_columns to its path and "
                         "label column names")
    if not header_seen and len(cells) != 2:
      raise ValueError(f"{path}:{lineno}: expected '<video path>,<label>' (no header with "
                       f"columns {columns!r} was found on the first line), got {cells!r}")
    if len(cells) <= max(where):
      raise ValueError(f"{path}:{lineno}: expected {max(where) + 1} columns, got {cells!r}")
    video, label = cells[where[0]], cells[where[1]]
    if not video or not label:
      raise ValueError(f"{path}:{lineno}: empty video path or label in {cells!r}")
    group = cells[group_at] if group_at is not None and group_at < len(cells) else ""
    rows.append((lineno, video, label, group))
  if not rows:
    raise ValueError(f"{path}: no clips listed")
  return path, rows


def _csv_class_names(c) -> list[str]:
  return sorted({label for _, _, label, _ in _csv_rows(c, "train")[1]})


def _csv_read_split(c, subset: str) -> list[Example]:
  """Rows in file order. A path not found under root is looked up under <root>/<subset>/,
  where the Keras CNN-RNN example keeps the clips its CSVs name. A clip's group is its
  `group` cell, else `source_group` of its path."""
  _subset(subset)
  root = pathlib.Path(_key(c, "root"))
  classes = _csv_class_names(c)
  label_of = {name: i for i, name in enumerate(classes)}
  path, rows = _csv_rows(c, subset)
  train_file = root / _key(c, "csv_train")
  examples, first_line = [], {}
  for lineno, video, label, group in rows:
    if label not in label_of:
      raise ValueError(f"{path}:{lineno}: label {label!r} does not occur in {train_file} "
                       "(the classes are the sorted labels of the train CSV)")
    rel = video.replace("\\", "/")
    video_id = str(pathlib.PurePosixPath(rel).with_suffix(""))
    if video_id in first_line:
      raise ValueError(f"{path}:{lineno}: {video} is listed twice (also line "
                       f"{first_line[video_id]})")
    first_line[video_id] = lineno
    file = root / rel
    if not file.exists() and (root / subset / rel).exists():
      file = root / subset / rel
    examples.append(Example(path=file, label=label_of[label], video_id=video_id,
                            group=group or source_group(video_id, label)))
  return examples


# ---------------------------------------------------------------------------- tfds_ucf101

TFDS_VIDEOS_ZIP = "UCF101_videos.zip"


def _tfds():
  """tensorflow_datasets, imported on use: it imports TensorFlow (~10 s)."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ValueError("config.data.layout='tfds_ucf101' needs tensorflow-datasets and "
                     f"tensorflow ({e}); pip install tensorflow-datasets tensorflow") from e
  platform.keep_tensorflow_off_accelerators()  # Its tf.data readers must not take them from JAX.
  return tfds


def _tfds_build(tfds, builder, c) -> None:
  """Builds the dataset from <tfds_manual_dir>/UCF101_videos.zip, or says how to.

  tfds takes the videos zip from the manual dir (url_checksums/ucf101.txt names
  its file) but downloads the 114 KB split-list zip from crcv.ucf.edu (its
  checksum entry has no file name), so the build needs the network unless that
  download is already in tfds' download cache. It runs ffmpeg on all 13,320
  videos: build once, before several extraction workers start.
  """
  name, data_dir, manual = builder.builder_config.name, _key(c, "tfds_data_dir"), \
      _key(c, "tfds_manual_dir")
  if not manual:
    raise ValueError(
        f"{builder.data_dir}: ucf101/{name} is not built. Build it once (tfds build "
        f"ucf101/{name} --data_dir={data_dir} --manual_dir=DIR) or set "
        f"config.data.tfds_manual_dir=DIR to build it here; DIR must hold {TFDS_VIDEOS_ZIP}")
  zip_path = pathlib.Path(manual) / TFDS_VIDEOS_ZIP
  if not zip_path.is_file():
    raise ValueError(
        f"{zip_path}: not found (config.data.tfds_manual_dir). tensorflow-datasets takes the "
        f"videos from exactly this file, {TFDS_VIDEOS_ZIP} of "
        "storage.googleapis.com/thumos14_files (6,960,400,115 bytes, checked by sha256); "
        "UCF101.rar from crcv.ucf.edu is not accepted")
  if shutil.which("ffmpeg") is None:
    raise ValueError(f"building ucf101/{name} (config.data.tfds_manual_dir is set) needs the "
                     "ffmpeg program on PATH: tensorflow-datasets runs it to cut every video "
                     "into JPEG frames")
  config = tfds.download.DownloadConfig(manual_dir=manual, try_download_gcs=False)
  try:
    builder.download_and_prepare(download_config=config)
  except ModuleNotFoundError as e:
    raise ValueError(f"building ucf101/{name} with tensorflow-datasets failed: {e}. "
                     "tensorflow-datasets 4.9 imports importlib_resources when it builds, "
                     "without requiring it on Python >= 3.9: pip install importlib_resources"
                     ) from e


def _tfds_builder(c):
  """The prepared ucf101 builder of config.data.tfds_data_dir / tfds_config."""
  tfds = _tfds()
  data_dir, split = _key(c, "tfds_data_dir"), _key(c, "split")
  if not data_dir:
    raise ValueError("config.data.tfds_data_dir is empty; set it to the tensorflow-datasets "
                     "data_dir that holds (or is to hold) the built ucf101")
  configs = {bc.name: bc for bc in tfds.builder_cls("ucf101").BUILDER_CONFIGS}
  name = _key(c, "tfds_config") or f"ucf101_{split}"
  if name not in configs:
    raise ValueError(f"config.data.tfds_config={name!r} (from config.data.split={split} when "
                     f"empty); accepted: {', '.join(configs)}")
  if configs[name].split_number != split:
    raise ValueError(f"config.data.tfds_config={name!r} holds split "
                     f"{configs[name].split_number} but config.data.split={split}; the split "
                     "lists read from config.data.root must be the ones tfds built from")
  builder = tfds.builder(f"ucf101/{name}", data_dir=os.fspath(data_dir))
  if not builder.is_prepared():
    _tfds_build(tfds, builder, c)
  if builder.info.disable_shuffling or builder.info.nondeterministic_order:
    raise ValueError(f"{builder.data_dir}: built with disable_shuffling or "
                     "nondeterministic_order, so its records are not in key-hash order and "
                     "cannot be matched to the split lists; rebuild it with the defaults")
  return builder


class _TfdsRecords:
  """Serves the records of one split of a built tfds dataset by index.

  TFRecord files only read forward. A request a little ahead of the last one
  reads on, keeping what it passes for requests that come slightly out of
  order (from a pool of decoding threads); any other reopens the split at that
  index, which tfds reaches by skipping whole files first. Thread-safe.
  """

  _KEEP = 16

  def __init__(self, builder, subset: str):
    self._builder, self._subset = builder, subset
    self._names = builder.info.features["label"].names
    self._lock = threading.Lock()
    self._records = None
    self._next = 0
    self._kept: collections.OrderedDict[int, tuple[Any, int]] = collections.OrderedDict()

  def _open(self, index: int) -> None:
    tfds = _tfds()
    ds = self._builder.as_dataset(
        split=f"{self._subset}[{index}:]", shuffle_files=False,
        # The JPEG bytes of every frame: only the sampled frames get decoded.
        decoders={"video": tfds.decode.SkipDecoding()},
        # The default interleaves 16 files, which leaves key-hash order.
        read_config=tfds.ReadConfig(interleave_cycle_length=1))
    self._records, self._next = iter(tfds.as_numpy(ds)), index
    self._kept.clear()

  def _record(self, index: int) -> tuple[Any, int]:
    with self._lock:
      if index in self._kept:
        return self._kept.pop(index)
      if self._records is None or not self._next <= index <= self._next + self._KEEP:
        self._open(index)
      while True:
        record = next(self._records)
        got = (record["video"], int(record["label"]))
        self._next += 1
        if self._next - 1 == index:
          return got
        self._kept[self._next - 1] = got
        if len(self._kept) > self._KEEP:
          self._kept.popitem(last=False)

  def frames(self, index: int, video_id: str, class_name: str) -> Sequence[bytes]:
    """bytes[n]: the JPEG frames of record `index`, checked to be of `class_name`.

    Raises:
      ValueError: the record's label is another class, so records and split
        lists do not match (another build, other lists).
    """
    video, label = self._record(index)
    if self._names[label].lower() != class_name.lower():
      raise ValueError(
          f"{self._builder.data_dir}: record {index} of {self._subset!r} is a "
          f"{self._names[label]} clip, but the split lists put {video_id} there; the dataset "
          "was not built from the split lists in config.data.root")
    return video


def _tfds_key(example: Example) -> str:
  """The key the builder gives a clip (tensorflow_datasets/video/ucf101.py:200-208)."""
  return example.path.name.replace("HandStandPushups", "HandstandPushups")


def _tfds_lists(c) -> pathlib.Path:
  root = pathlib.Path(_key(c, "root"))
  if not (root / "classInd.txt").is_file():
    raise ValueError(
        f"{root}: no classInd.txt. With config.data.layout='tfds_ucf101', config.data.root "
        "is the folder of UCF-101's split lists (ucfTrainTestlist of "
        "UCF101TrainTestSplits-RecognitionTask.zip, which tfds also extracts under "
        "<download_dir>/extracted/): tfds records carry no file names, the lists name them")
  return root


def _tfds_class_names(c) -> list[str]:
  return ucf101.read_class_names(_tfds_lists(c))


def _tfds_read_split(c, subset: str) -> list[Example]:
  """The clips of the split lists, matched to the records of the built dataset.

  The builder keys each clip by its file name and writes a split's records in
  the order of md5(split name + key) (tfds `Shuffler`, salt = split name), and
  stores no file name. Ordering the listed clips the same way names every
  record; the counts must agree, and every record read is checked to hold the
  listed clip's class. Examples come in record order, so extraction reads the
  TFRecords forward. Their `frames` return the clip's JPEG frames; `path` is
  '<data_dir>/<subset>[<record>]', not a file.

  Raises:
    ValueError: the config errors of `_tfds_builder`, split list errors (as
      `ucf101.read_split`), classes that tfds does not know, or a record
      count other than the number of listed clips (the builder skips clips
      whose video is missing, and then records cannot be named).
  """
  _subset(subset)
  root = _tfds_lists(c)
  builder = _tfds_builder(c)
  from tensorflow_datasets.core import hashing  # pylint: disable=g-import-not-at-top
  names = ucf101.read_class_names(root)
  tfds_names = {n.lower() for n in builder.info.features["label"].names}
  unknown = [n for n in names if n.lower() not in tfds_names]
  if unknown:
    raise ValueError(f"{root / 'classInd.txt'}: classes {unknown} are not UCF-101 classes of "
                     "the tfds ucf101 builder")
  hasher = hashing.Hasher(subset)
  listed = sorted(ucf101.read_split(root, subset, _key(c, "split")),
                  key=lambda e: hasher.hash_key(_tfds_key(e)))
  count = builder.info.splits[subset].num_examples
  if count != len(listed):
    list_file = root / f"{subset}list{_key(c, 'split'):02d}.txt"
    raise ValueError(
        f"{builder.data_dir}: {subset!r} holds {count} records but {list_file} lists "
        f"{len(listed)} clips. The "
        "builder skips clips whose video is missing, and then records cannot be matched to "
        "names; rebuild from the complete UCF101_videos.zip or use config.data.layout='ucf101' "
        "on the videos")
  reader = _TfdsRecords(builder, subset)
  data_dir = pathlib.Path(builder.data_dir)
  return [dataclasses.replace(e, path=data_dir / f"{subset}[{i}]",
                              frames=functools.partial(reader.frames, i, e.video_id,
                                                       names[e.label]))
          for i, e in enumerate(listed)]


# ---------------------------------------------------------------------------- registry

@dataclasses.dataclass(frozen=True)
class _Layout:
  class_names: Callable[[Any], list[str]]
  read_split: Callable[[Any, str], list[Example]]
  group_of: Callable[[str], str]
  # Keys of config.data besides root and split that decide which clip is in which subset.
  spec_keys: tuple[str, ...]


_LAYOUTS = {
    "ucf101": _Layout(_ucf_class_names, _ucf_read_split, ucf101.group_of, ()),
    "hmdb51": _Layout(_hmdb_class_names, _hmdb_read_split, hmdb_group, ()),
    "folders": _Layout(_folders_class_names, _folders_read_split, source_group,
                       ("test_fraction", "split_seed")),
    "csv": _Layout(_csv_class_names, _csv_read_split, source_group, ()),
    "tfds_ucf101": _Layout(_tfds_class_names, _tfds_read_split, ucf101.group_of,
                           ("tfds_config",)),
}
LAYOUTS = tuple(_LAYOUTS)


def layout_name(data_config) -> str:
  """config.data.layout ('ucf101' when absent, as in configs made before layouts).

  Raises:
    ValueError: a name not in LAYOUTS.
  """
  name = data_config.get("layout", "ucf101")
  if name not in _LAYOUTS:
    raise ValueError(f"config.data.layout={name!r}; accepted: {', '.join(LAYOUTS)}")
  return name


def class_names(data_config) -> list[str]:
  """The class names of the layout; names[label] is the class of a label.

  Args:
    data_config: config.data (layout, root and the keys of the layout).

  Raises:
    ValueError, naming the config key or the file and line at fault.
  """
  return _LAYOUTS[layout_name(data_config)].class_names(data_config)


def read_split(data_config, subset: str) -> list[Example]:
  """The clips of subset 'train' or 'test', labels indexing `class_names`.

  Raises:
    ValueError, naming the config key or the file and line at fault: an
      unknown layout or subset, missing or malformed lists, unknown labels, a
      clip listed twice, no clips.
  """
  return _LAYOUTS[layout_name(data_config)].read_split(data_config, subset)


def group_of(data_config: Mapping[str, Any], video_id: str) -> str:
  """The group of a clip of the layout, from its name alone ("" when unknown).

  Only data_config['layout'] is read. ucf101, tfds_ucf101: `ucf101.group_of`
  (class and gNN); hmdb51: `hmdb_group`; folders, csv: `source_group` (a CSV's
  group column is not seen here: extraction stores each clip's group in the
  shards, and this serves shards written before that).
  """
  return _LAYOUTS[layout_name(data_config)].group_of(video_id)


def split_spec(data_config) -> dict[str, Any]:
  """What extraction adds to its spec so that shards of another split never mix.

  {} for ucf101, so features extracted before layouts existed keep their hash;
  else {'layout': name} plus the layout's keys that move clips between subsets.
  A folders pool (no train/ and test/) adds 'groups': 'source': its test
  split is drawn by `source_group` groups since these exist, so a
  features_dir split clip by clip before is refused rather than completed
  with shards of another split.
  """
  name = layout_name(data_config)
  if name == "ucf101":
    return {}
  spec = {"layout": name, **{k: _key(data_config, k) for k in _LAYOUTS[name].spec_keys}}
  root = pathlib.Path(_key(data_config, "root"))
  if name == "folders" and not any((root / s).is_dir() for s in SUBSETS):
    spec["groups"] = "source"
  return spec
