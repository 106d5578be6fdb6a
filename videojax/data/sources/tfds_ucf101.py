"""UCF-101 as built by tensorflow-datasets' `ucf101` builder.

Clips are JPEG frames in TFRecords rather than files (see `_read_split`):
config.data.root is the folder of UCF-101's split lists, which name the
records; config.data.tfds_data_dir holds the built dataset.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import os
import pathlib
import shutil
import threading
from collections.abc import Sequence
from typing import Any

from videojax import platform
from videojax.data.sources import groups, ucf101
from videojax.data.sources.base import Clip, Source, check_subset, key

VIDEOS_ZIP = "UCF101_videos.zip"


def _tfds():
  """tensorflow_datasets, imported on use: it imports TensorFlow (~10 s)."""
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ValueError("config.data.layout='tfds_ucf101' needs tensorflow-datasets and "
                     f"tensorflow ({e}); pip install tensorflow-datasets tensorflow") from e
  platform.keep_tensorflow_off_accelerators()  # Its tf.data readers must not take them from JAX.
  return tfds


def _build(tfds, builder, c) -> None:
  """Builds the dataset from <tfds_manual_dir>/UCF101_videos.zip, or says how to.

  tfds takes the videos zip from the manual dir (url_checksums/ucf101.txt names
  its file) but downloads the 114 KB split-list zip from crcv.ucf.edu (its
  checksum entry has no file name), so the build needs the network unless that
  download is already in tfds' download cache. It runs ffmpeg on all 13,320
  videos: build once, before several extraction workers start.
  """
  name, data_dir, manual = builder.builder_config.name, key(c, "tfds_data_dir"), \
      key(c, "tfds_manual_dir")
  if not manual:
    raise ValueError(
        f"{builder.data_dir}: ucf101/{name} is not built. Build it once (tfds build "
        f"ucf101/{name} --data_dir={data_dir} --manual_dir=DIR) or set "
        f"config.data.tfds_manual_dir=DIR to build it here; DIR must hold {VIDEOS_ZIP}")
  zip_path = pathlib.Path(manual) / VIDEOS_ZIP
  if not zip_path.is_file():
    raise ValueError(
        f"{zip_path}: not found (config.data.tfds_manual_dir). tensorflow-datasets takes the "
        f"videos from exactly this file, {VIDEOS_ZIP} of "
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


def _builder(c):
  """The prepared ucf101 builder of config.data.tfds_data_dir / tfds_config."""
  tfds = _tfds()
  data_dir, split = key(c, "tfds_data_dir"), key(c, "split")
  if not data_dir:
    raise ValueError("config.data.tfds_data_dir is empty; set it to the tensorflow-datasets "
                     "data_dir that holds (or is to hold) the built ucf101")
  configs = {bc.name: bc for bc in tfds.builder_cls("ucf101").BUILDER_CONFIGS}
  name = key(c, "tfds_config") or f"ucf101_{split}"
  if name not in configs:
    raise ValueError(f"config.data.tfds_config={name!r} (from config.data.split={split} when "
                     f"empty); accepted: {', '.join(configs)}")
  if configs[name].split_number != split:
    raise ValueError(f"config.data.tfds_config={name!r} holds split "
                     f"{configs[name].split_number} but config.data.split={split}; the split "
                     "lists read from config.data.root must be the ones tfds built from")
  builder = tfds.builder(f"ucf101/{name}", data_dir=os.fspath(data_dir))
  if not builder.is_prepared():
    _build(tfds, builder, c)
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


def _tfds_key(example: Clip) -> str:
  """The key the builder gives a clip (tensorflow_datasets/video/ucf101.py:200-208)."""
  return example.path.name.replace("HandStandPushups", "HandstandPushups")


def _lists(c) -> pathlib.Path:
  root = pathlib.Path(key(c, "root"))
  if not (root / "classInd.txt").is_file():
    raise ValueError(
        f"{root}: no classInd.txt. With config.data.layout='tfds_ucf101', config.data.root "
        "is the folder of UCF-101's split lists (ucfTrainTestlist of "
        "UCF101TrainTestSplits-RecognitionTask.zip, which tfds also extracts under "
        "<download_dir>/extracted/): tfds records carry no file names, the lists name them")
  return root


def _read_split(c, subset: str) -> list[Clip]:
  """The clips of the split lists, matched to the records of the built dataset.

  The builder keys each clip by its file name and writes a split's records in
  the order of md5(split name + key) (tfds `Shuffler`, salt = split name), and
  stores no file name. Ordering the listed clips the same way names every
  record; the counts must agree, and every record read is checked to hold the
  listed clip's class. Clips come in record order, so extraction reads the
  TFRecords forward. Their `frames` return the clip's JPEG frames; `path` is
  '<data_dir>/<subset>[<record>]', not a file.

  Raises:
    ValueError: the config errors of `_builder`, split list errors (as
      `ucf101.read_split`), classes that tfds does not know, or a record
      count other than the number of listed clips (the builder skips clips
      whose video is missing, and then records cannot be named).
  """
  check_subset(subset)
  root = _lists(c)
  builder = _builder(c)
  from tensorflow_datasets.core import hashing  # pylint: disable=g-import-not-at-top
  names = ucf101.read_class_names(root)
  tfds_names = {n.lower() for n in builder.info.features["label"].names}
  unknown = [n for n in names if n.lower() not in tfds_names]
  if unknown:
    raise ValueError(f"{root / 'classInd.txt'}: classes {unknown} are not UCF-101 classes of "
                     "the tfds ucf101 builder")
  hasher = hashing.Hasher(subset)
  listed = sorted(ucf101.read_split(root, subset, key(c, "split")),
                  key=lambda e: hasher.hash_key(_tfds_key(e)))
  count = builder.info.splits[subset].num_examples
  if count != len(listed):
    list_file = root / f"{subset}list{key(c, 'split'):02d}.txt"
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


class TfdsUcf101(Source):
  """config.data.layout='tfds_ucf101': root (split lists), split, tfds_data_dir,
  tfds_config, tfds_manual_dir."""
  name = "tfds_ucf101"
  spec_keys = ("tfds_config",)
  group_of = staticmethod(groups.ucf_group)

  def class_names(self) -> list[str]:
    return ucf101.read_class_names(_lists(self.config))

  def clips(self, subset: str) -> list[Clip]:
    return _read_split(self.config, subset)
