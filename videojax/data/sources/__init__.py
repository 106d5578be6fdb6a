"""The data registry: one source per dataset layout, picked by `config.data.layout`.

Every source (`base.Source`) answers `class_names()` and `clips(subset)` with
`base.Clip`s (video_id, path, label, group) of 'train' and 'test', and `spec()`,
what extraction adds to its spec. Extraction and the import of feature arrays
read datasets through these sources only.

  ucf101       <root>/classInd.txt, trainlist0N.txt, testlist0N.txt (`ucf101`).
  hmdb51       <root>/<class>/<video>.avi, <split_dir>/<class>_test_split<N>.txt.
  folders      <root>/{train,test}/<Class>/<video>, or <root>/<Class>/<video>
               split by group with data.test_fraction and data.split_seed.
  csv          <root>/<csv_train>, <root>/<csv_test>: rows of (video path, label),
               and a group column where the header has one (`csv_lists`).
  tfds_ucf101  UCF-101 as built by tensorflow-datasets' `ucf101` builder.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from videojax.data.sources import csv_lists, folders, hmdb51, tfds_ucf101, ucf101
from videojax.data.sources.base import SUBSETS, Clip, Source, class_order

__all__ = ["LAYOUTS", "SUBSETS", "Clip", "Source", "class_order", "get", "group_of",
           "layout_name", "split_spec"]

_SOURCES: dict[str, type[Source]] = {s.name: s for s in (
    ucf101.Ucf101, hmdb51.Hmdb51, folders.Folders, csv_lists.CsvLists, tfds_ucf101.TfdsUcf101)}
LAYOUTS = tuple(_SOURCES)


def layout_name(data_config) -> str:
  """config.data.layout ('ucf101' when absent, as in configs made before layouts).

  Raises:
    ValueError: a name not in LAYOUTS.
  """
  name = data_config.get("layout", "ucf101")
  if name not in _SOURCES:
    raise ValueError(f"config.data.layout={name!r}; accepted: {', '.join(LAYOUTS)}")
  return name


def get(data_config) -> Source:
  """The source of config.data (its layout, root and the keys of the layout).

  Raises:
    ValueError: an unknown layout.
  """
  return _SOURCES[layout_name(data_config)](data_config)


def split_spec(data_config) -> dict[str, Any]:
  """What extraction adds to its spec so that shards of another split never mix.

  {} for ucf101, so features extracted before layouts existed keep their hash;
  else {'layout': name} plus the layout's keys that move clips between subsets
  (see each source's `spec`).
  """
  return get(data_config).spec()


def group_of(data_config: Mapping[str, Any], video_id: str) -> str:
  """The group of a clip of the layout, from its name alone ("" when unknown).

  Only data_config['layout'] is read. ucf101, tfds_ucf101: `groups.ucf_group`
  (class and gNN); hmdb51: `groups.hmdb_group`; folders, csv:
  `groups.source_group` (a CSV's group column is not seen here: extraction
  stores each clip's group in the shards, and this serves shards written
  before that).
  """
  return _SOURCES[layout_name(data_config)].group_of(video_id)
