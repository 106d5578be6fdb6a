"""Tests of videojax.data.sources: every source, its errors, groups, and real extractions."""

import concurrent.futures
import contextlib
import copy
import importlib.resources.abc
import os
import pathlib
import socket
import sys

import cv2
import ml_collections
import numpy as np
import pytest

from configs import default as default_config
from configs import demo as demo_config
from videojax import extract, train
from videojax.data import sources, video
from videojax.data.sources import groups, tfds_ucf101, ucf101
from videojax.data import features as F


def _data(root, **kw) -> ml_collections.ConfigDict:
  c = copy.deepcopy(default_config.get_config().data)
  c.root = str(root)
  c.update(kw)
  return c


def _write(path: pathlib.Path, text: str = "") -> pathlib.Path:
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(text.encode())
  return path


def _clips(data_config, subset):
  return sources.get(data_config).clips(subset)


def _classes(data_config):
  return sources.get(data_config).class_names()


def _ids(examples):
  return [e.video_id for e in examples]


def _assert_groups_whole(a, b):
  assert not {e.group for e in a} & {e.group for e in b}


# ----------------------------------------------------------------------------- registry

def test_unknown_layout_names_key_and_accepted_values(tmp_path):
  with pytest.raises(ValueError, match=r"config\.data\.layout='kinetics'; accepted: ucf101, "
                                       r"hmdb51, folders, csv, tfds_ucf101"):
    _clips(_data(tmp_path, layout="kinetics"), "train")


def _tiny_dataset(root: pathlib.Path, layout: str) -> ml_collections.ConfigDict:
  """A few listed clips of two classes in `layout` (video files are not needed to list them)."""
  if layout == "ucf101":
    _write(root / "classInd.txt", "1 Jump\n2 Run\n")
    _write(root / "trainlist01.txt", "Jump/v_Jump_g01_c01.avi 1\nRun/v_Run_g02_c01.avi 2\n")
    _write(root / "testlist01.txt", "Jump/v_Jump_g03_c01.avi\nRun/v_Run_g04_c01.avi\n")
  elif layout == "hmdb51":
    _hmdb(root)
  elif layout == "folders":
    for sub, name in [("train", "Jump/a_c1.avi"), ("train", "Run/b_c1.avi"),
                      ("test", "Jump/c_c1.avi"), ("test", "Run/d_c1.avi")]:
      _write(root / sub / name)
  elif layout == "csv":
    _write(root / "train.csv", "video_name,tag\nsrcA_clip1.avi,Run\nsrcB_clip1.avi,Jump\n")
    _write(root / "test.csv", "video_name,tag\nsrcC_clip1.avi,Jump\n")
  return _data(root, layout=layout)


@pytest.mark.parametrize("layout", [n for n in sources.LAYOUTS if n != "tfds_ucf101"])
def test_every_source_yields_clips_with_label_group_and_subset(tmp_path, layout):
  """tfds_ucf101 needs a tfds build: test_tfds_build_reads_every_record_as_its_listed_clip."""
  source = sources.get(_tiny_dataset(tmp_path, layout))
  assert isinstance(source, sources.Source) and source.name == layout
  names = source.class_names()
  assert len(names) == 2 and len(set(names)) == 2
  for subset in sources.SUBSETS:
    clips = source.clips(subset)
    assert clips and all(isinstance(e, sources.Clip) for e in clips)
    assert all(0 <= e.label < len(names) and e.video_id and e.group for e in clips), clips
    assert len({e.video_id for e in clips}) == len(clips)
    # Groups from the names alone agree with the listed ones (no group column here).
    assert [source.group_of(e.video_id) for e in clips] == [e.group for e in clips]
  assert sources.split_spec(source.config) == source.spec()
  with pytest.raises(ValueError, match="subset must be one of"):
    source.clips("val")


def test_class_order_is_sorted_names_of_the_train_rows(tmp_path):
  assert sources.class_order(["9", "10", "b", "B", "9"]) == ["10", "9", "B", "b"]
  _write(tmp_path / "train.csv", "video_name,tag\nx.avi,b\ny.avi,10\nz.avi,B\nw.avi,9\n")
  _write(tmp_path / "test.csv", "video_name,tag\nv.avi,10\n")
  assert _classes(_data(tmp_path, layout="csv")) == ["10", "9", "B", "b"]


def test_ucf101_layout_is_the_ucf101_reader(shared_data):
  root = shared_data / "weizmann4"
  c = _data(root)
  assert _classes(c) == ucf101.read_class_names(root)
  assert _clips(c, "test") == ucf101.read_split(root, "test")
  assert sources.split_spec(c) == {}
  with pytest.raises(ValueError, match="subset must be one of"):
    _clips(c, "val")


def test_ucf101_features_keep_their_spec_hash():
  """Shards extracted before layouts existed stay valid: no new key in the spec."""
  c = default_config.get_config()
  assert "layout" not in extract.extraction_spec(c)
  c.data.layout = "folders"
  assert extract.extraction_spec(c)["layout"] == "folders"
  assert extract.extraction_spec(c)["test_fraction"] == c.data.test_fraction


# ----------------------------------------------------------------------------- hmdb51

_BRUSH = ("April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \r\n"
          "April_09_brush_hair_u_nm_np1_ba_goo_1.avi 1 \r\n"
          "Blonde_being_brushed_brush_hair_f_cm_np2_ri_med_0.avi 2 \r\n"
          "Brushing_Hair_with_Beth_brush_hair_h_nm_np1_le_goo_0.avi 0 \r\n")
_WAVE = ("RATRACE_wave_f_nm_np1_fr_goo_37.avi 2\n"
         "TrumanShow_wave_f_nm_np1_fr_med_26.avi 1\n\n"
         "TrumanShow_wave_u_cm_np1_fr_med_27.avi 1\n")


def _hmdb(root: pathlib.Path, split_dir="testTrainMulti_7030_splits", split=1,
          files=None) -> pathlib.Path:
  files = files if files is not None else {"wave": _WAVE, "brush_hair": _BRUSH}
  for cls, text in files.items():
    _write(root / split_dir / f"{cls}_test_split{split}.txt", text)
  return root


def test_hmdb51_classes_labels_ids_and_groups(tmp_path):
  c = _data(_hmdb(tmp_path), layout="hmdb51")
  assert _classes(c) == ["brush_hair", "wave"]
  train = _clips(c, "train")
  assert [(e.video_id, e.label, e.group) for e in train] == [
      ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0", 0, "brush_hair/April_09"),
      ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_1", 0, "brush_hair/April_09"),
      ("wave/TrumanShow_wave_f_nm_np1_fr_med_26", 1, "wave/TrumanShow"),
      ("wave/TrumanShow_wave_u_cm_np1_fr_med_27", 1, "wave/TrumanShow")]
  assert train[0].path == tmp_path / "brush_hair" / "April_09_brush_hair_u_nm_np1_ba_goo_0.avi"
  # 2 = test; 0 = in neither subset.
  assert _ids(_clips(c, "test")) == [
      "brush_hair/Blonde_being_brushed_brush_hair_f_cm_np2_ri_med_0",
      "wave/RATRACE_wave_f_nm_np1_fr_goo_37"]
  assert sources.split_spec(c) == {"layout": "hmdb51"}


def test_hmdb51_split_dir_and_split_number(tmp_path):
  _hmdb(tmp_path, split_dir="lists", split=2, files={"wave": "a_wave_f_nm_np1_fr_goo_0.avi 1\n"})
  c = _data(tmp_path, layout="hmdb51", split_dir="lists", split=2)
  assert _ids(_clips(c, "train")) == ["wave/a_wave_f_nm_np1_fr_goo_0"]
  with pytest.raises(ValueError,
                     match=r"no '<class>_test_split1.txt' files \(config\.data\.split=1"):
    _classes(_data(tmp_path, layout="hmdb51", split_dir="lists", split=1))
  with pytest.raises(ValueError, match=r"testTrainMulti_7030_splits: no such folder .*"
                                       r"config\.data\.split_dir=''"):
    _classes(_data(tmp_path, layout="hmdb51"))


@pytest.mark.parametrize("text, message", [
    ("a_wave_0.avi 3\n", r"wave_test_split1.txt:1: expected '<video>.avi <0\|1\|2>'"),
    ("a_wave_0.avi\n", r"wave_test_split1.txt:1: expected"),
    ("a_wave_0.avi 1\n\na_wave_0.avi 2\n", r"wave_test_split1.txt:3: a_wave_0.avi is listed "
                                            r"twice \(also line 1\)"),
    ("x/a_wave_0.avi 1\n", r"wave_test_split1.txt:1: expected a file name"),
    ("a_wave_0.avi 2\n", r"no clip is marked 1 \(train\)"),
])
def test_hmdb51_errors_name_file_and_line(tmp_path, text, message):
  c = _data(_hmdb(tmp_path, files={"wave": text}), layout="hmdb51")
  with pytest.raises(ValueError, match=message):
    _clips(c, "train")


@pytest.mark.parametrize("video_id, group", [
    ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0", "brush_hair/April_09"),
    ("wave/RATRACE_wave_f_nm_np1_fr_goo_37", "wave/RATRACE"),
    ("cartwheel/hmdb51_Turnk_r_Pippi_Michel_cartwheel_f_cm_np2_le_med_6",
     "cartwheel/hmdb51_Turnk_r_Pippi_Michel"),
    # The action also inside the source name: the last '_<action>_' counts.
    ("wave/wave_goodbye_wave_h_nm_np1_fr_goo_2", "wave/wave_goodbye"),
    # No action in the name: drop the clip index only.
    ("wave/holiday_clip_12", "wave/holiday_clip"),
])
def test_hmdb_group(video_id, group):
  assert groups.hmdb_group(video_id) == group
  assert sources.group_of({"layout": "hmdb51"}, video_id) == group


def _index(ids, labels, spec):
  return F.FeatureSet(features=np.zeros((len(ids), 0, 0), np.float16),
                      lengths=np.ones(len(ids), np.int32), labels=np.asarray(labels, np.int32),
                      video_ids=list(ids), class_names=["a", "b"], spec=spec, failed=[])


def test_split_validation_uses_the_layout_in_the_feature_spec():
  # Two source videos per class, three clips each: HMDB groups are the sources.
  ids = [f"{cls}/{src}_{cls}_f_nm_np1_fr_goo_{i}" for cls in ("a", "b") for src in ("S", "T")
         for i in range(3)]
  labels = [0] * 6 + [1] * 6
  rest, held = train.split_validation(_index(ids, labels, {"layout": "hmdb51"}), 0.5, seed=0)
  assert len(rest) == len(held) == 6
  origins = lambda fs: {v.rsplit("_", 7)[0] for v in fs.video_ids}
  assert not origins(rest) & origins(held)
  # Spec without a layout (older shards): UCF groups, where every such name is its own group.
  rest, held = train.split_validation(_index(ids, labels, {}), 0.5, seed=0)
  assert origins(rest) & origins(held)


# ----------------------------------------------------------------------------- folders

def _pool(root: pathlib.Path) -> pathlib.Path:
  for cls in ("YoYo", "Archery"):
    for g in range(1, 5):
      for clip in (1, 2):
        _write(root / cls / f"v_{cls}_g{g:02d}_c{clip:02d}.avi")
  _write(root / "Archery" / "notes.txt")       # not a video: ignored
  _write(root / "Archery" / ".v_hidden.avi")   # hidden: ignored
  _write(root / "classes.txt")                 # a file beside the class folders: ignored
  return root


def test_folders_pool_split_by_group(tmp_path):
  c = _data(_pool(tmp_path), layout="folders", test_fraction=0.25, split_seed=3)
  assert _classes(c) == ["Archery", "YoYo"]
  train, test = _clips(c, "train"), _clips(c, "test")
  assert len(train) == 12 and len(test) == 4
  assert sorted(_ids(train) + _ids(test)) == sorted(
      f"{cls}/v_{cls}_g{g:02d}_c{k:02d}" for cls in ("YoYo", "Archery") for g in range(1, 5)
      for k in (1, 2))
  _assert_groups_whole(train, test)
  # One group of each class is held out, so both classes are on both sides.
  assert sorted(e.label for e in test) == [0, 0, 1, 1]
  assert all(e.label == (e.video_id.startswith("YoYo")) for e in train + test)
  assert train[0].path == tmp_path / train[0].video_id.split("/")[0] / (
      train[0].video_id.split("/")[1] + ".avi")
  assert _clips(c, "test") == test  # deterministic
  c.split_seed = 4
  assert _ids(_clips(c, "test")) != _ids(test)
  assert sources.split_spec(c) == {"layout": "folders", "test_fraction": 0.25, "split_seed": 4,
                                    "groups": "source"}


def test_folders_pool_without_group_names_splits_clips(tmp_path):
  for cls in ("a", "b"):
    for i in range(4):
      _write(tmp_path / cls / f"clip{i}.MP4")
  c = _data(tmp_path, layout="folders", test_fraction=0.5)
  train, test = _clips(c, "train"), _clips(c, "test")
  assert len(train) == len(test) == 4
  # No group can be known from such names: "" marks them, and each clip is split alone.
  assert {e.group for e in train + test} == {""}


def test_folders_pool_split_clip_by_clip_before_is_not_completed(tmp_path):
  """A pool's test split now follows source videos: shards of the old split are refused."""
  c = _extract_config(_pool(tmp_path / "pool"), tmp_path / "features", layout="folders")
  spec = extract.extraction_spec(c)
  assert spec["groups"] == "source"
  old = {k: v for k, v in spec.items() if k != "groups"}  # as extracted before
  features_dir = pathlib.Path(c.data.features_dir)
  features_dir.mkdir()
  F.check_spec_file(features_dir, old, ["Archery", "YoYo"])
  before = (features_dir / F.SPEC_FILE).read_bytes()
  with pytest.raises(F.FeatureError, match=r"other settings \(groups: expected 'source', "
                                           r"found None\); use another features directory"):
    F.check_spec_file(features_dir, spec, ["Archery", "YoYo"])
  assert (features_dir / F.SPEC_FILE).read_bytes() == before


@pytest.mark.parametrize("video_id, group", [
    ("cats/srcA_clip1", "cats/srcA"),
    ("cats/srcA_c01", "cats/srcA"),
    ("cats/srcA-002", "cats/srcA"),
    ("cats/srcA_part2", "cats/srcA"),
    ("cats/srcA_seg4", "cats/srcA"),
    ("cats/my_holiday_12", "cats/my_holiday"),
    ("train/cats/srcA_Clip3", "train/cats/srcA"),
    ("srcA_clip1", "srcA"),
    ("Punch/v_Punch_g01_c03", "Punch_g01"),                             # UCF-101
    ("wave/RATRACE_wave_f_nm_np1_fr_goo_37", "wave/RATRACE"),           # HMDB-51
    ("cats/srcA", ""), ("cats/clip3", ""), ("cats/2019", ""),           # nothing tells
])
def test_source_group(video_id, group):
  assert groups.source_group(video_id) == group
  assert sources.group_of({"layout": "folders"}, video_id) == group
  assert sources.group_of({"layout": "csv"}, video_id) == group


def test_folders_pool_keeps_clips_of_one_source_video_on_one_side(tmp_path):
  # Near-duplicate clips cut from a few source videos: a source on both sides of the
  # test split (or of validation) lets a model recognise the video, not the action.
  for cls in ("cats", "dogs"):
    for src in ("srcA", "srcB", "srcC", "srcD"):
      for k in (1, 2, 3):
        _write(tmp_path / cls / f"{cls}_{src}_clip{k}.mp4")
  c = _data(tmp_path, layout="folders", test_fraction=0.25, split_seed=0)
  train, test = _clips(c, "train"), _clips(c, "test")
  assert len(train) == 18 and len(test) == 6
  source = lambda e: e.video_id.rsplit("_", 1)[0]
  assert {e.group for e in train + test} == {source(e) for e in train + test}
  assert not {source(e) for e in train} & {source(e) for e in test}


def test_folders_train_and_test_subfolders(tmp_path):
  for sub, cls, name in [("train", "b", "x.avi"), ("train", "a", "y.mp4"), ("train", "a", "z.avi"),
                         ("test", "b", "w.mkv")]:
    _write(tmp_path / sub / cls / name)
  c = _data(tmp_path, layout="folders")
  assert _classes(c) == ["a", "b"]
  # The groups do not move clips between train/ and test/: the spec is as before.
  assert sources.split_spec(c) == {"layout": "folders", "test_fraction": 0.3, "split_seed": 0}
  assert [(e.video_id, e.label) for e in _clips(c, "train")] == [
      ("train/a/y", 0), ("train/a/z", 0), ("train/b/x", 1)]
  test = _clips(c, "test")
  assert [(e.video_id, e.label, e.path) for e in test] == [
      ("test/b/w", 1, tmp_path / "test" / "b" / "w.mkv")]


@pytest.mark.parametrize("files, kw, message", [
    (["train/a/x.avi", "test/c/y.avi"], {}, r"test/c: class 'c' has no folder in .*train"),
    (["train/a/x.avi"], {}, r"has train/ but no test/"),
    (["a/x.avi", "b/notes.txt"], {}, r"/b: class folder holds no video"),
    (["a/x.avi", "b/y.avi"], {"test_fraction": 0.0}, r"config\.data\.test_fraction=0\.0 must"),
    (["a/x.avi", "a/x.mp4", "b/y.avi"], {}, r"two videos with one name; video_id 'a/x'"),
    (["notes.txt"], {}, r"no class folders"),
])
def test_folders_errors(tmp_path, files, kw, message):
  for f in files:
    _write(tmp_path / f)
  with pytest.raises(ValueError, match=message):
    _clips(_data(tmp_path, layout="folders", **kw), "test")


# ----------------------------------------------------------------------------- csv

def test_csv_keras_example_layout(tmp_path):
  """The Keras CNN-RNN example: header video_name,tag; clips under train/ and test/."""
  _write(tmp_path / "train.csv", "video_name,tag\r\nv_Punch_g01_c01.avi,Punch\r\n"
                                 "v_CricketShot_g08_c01.avi,CricketShot\r\n"
                                 "v_Punch_g02_c03.avi,Punch\r\n\r\n")
  _write(tmp_path / "test.csv", "video_name,tag\nv_Punch_g20_c01.avi,Punch\n")
  _write(tmp_path / "train" / "v_Punch_g01_c01.avi")
  c = _data(tmp_path, layout="csv")
  assert _classes(c) == ["CricketShot", "Punch"]
  train = _clips(c, "train")
  assert [(e.video_id, e.label, e.group) for e in train] == [
      ("v_Punch_g01_c01", 1, "Punch_g01"), ("v_CricketShot_g08_c01", 0, "CricketShot_g08"),
      ("v_Punch_g02_c03", 1, "Punch_g02")]
  # Found under train/, else under the root (missing: extraction reports it).
  assert train[0].path == tmp_path / "train" / "v_Punch_g01_c01.avi"
  assert train[1].path == tmp_path / "v_CricketShot_g08_c01.avi"
  assert [(e.video_id, e.label) for e in _clips(c, "test")] == [
      ("v_Punch_g20_c01", 1)]


def test_csv_group_column_else_the_name(tmp_path):
  """A `group` column names each clip's source video; an empty cell or none: the name."""
  _write(tmp_path / "train.csv", "video_name,tag,group\n"
                                 "a/1.avi,x,street\na/2.avi,x,street\nb/srcB_clip1.avi,y,\n"
                                 "b/cam.avi,y,\n")
  _write(tmp_path / "test.csv", "video_name,tag\nc/srcC_clip1.avi,x\nc/cam2.avi,y\n")
  c = _data(tmp_path, layout="csv")
  assert [(e.video_id, e.group) for e in _clips(c, "train")] == [
      ("a/1", "street"), ("a/2", "street"), ("b/srcB_clip1", "b/srcB"), ("b/cam", "")]
  assert [e.group for e in _clips(c, "test")] == ["c/srcC", ""]


def test_csv_headerless_and_named_columns(tmp_path):
  _write(tmp_path / "lists" / "tr.csv", "clips/b/1.avi,b\nclips/a/2.mp4, a \n")
  _write(tmp_path / "lists" / "te.csv", ",label,path\n0,a,clips/a/3.avi\n")
  c = _data(tmp_path, layout="csv", csv_train="lists/tr.csv", csv_test="lists/te.csv",
            csv_columns=("path", "label"))
  assert _classes(c) == ["a", "b"]
  assert [(e.video_id, e.label) for e in _clips(c, "train")] == [
      ("clips/b/1", 1), ("clips/a/2", 0)]
  test = _clips(c, "test")
  assert [(e.video_id, e.label, e.path) for e in test] == [
      ("clips/a/3", 0, tmp_path / "clips" / "a" / "3.avi")]


@pytest.mark.parametrize("train_csv, test_csv, message", [
    ("video_name,tag\na.avi,x\n", "video_name,tag\nb.avi,x\n\nc.avi,y\n",
     r"test.csv:4: label 'y' does not occur in .*train.csv"),
    ("path,label\na.avi,x\n", "b.avi,x\n", r"train.csv:1: .* looks like a header but lacks the "
                                            r"video column \(looked for 'video_name'\)"),
    ("a.avi,x\nb.avi,x,extra\n", "b.avi,x\n", r"train.csv:2: expected '<video path>,<label>'"),
    ("video_name,tag\na.avi,x\na.mp4,x\n", "b.avi,x\n", r"train.csv:3: a.mp4 is listed twice "
                                                         r"\(also line 2\)"),
    ("video_name,tag\na.avi,\n", "b.avi,x\n", r"train.csv:2: empty video path or label"),
    ("video_name,tag\n", "b.avi,x\n", r"train.csv: no clips listed"),
])
def test_csv_errors_name_file_and_line(tmp_path, train_csv, test_csv, message):
  _write(tmp_path / "train.csv", train_csv)
  _write(tmp_path / "test.csv", test_csv)
  with pytest.raises(ValueError, match=message):
    for subset in sources.SUBSETS:
      _clips(_data(tmp_path, layout="csv"), subset)


def test_csv_one_file_with_a_split_column(tmp_path):
  _write(tmp_path / "all.csv", "Video,Label,Subset,Group\na.avi,x,train,g1\nb.avi,y,test,\n"
                               "c.avi,y,train,\n")
  c = _data(tmp_path, layout="csv", csv_train="all.csv", csv_test="all.csv", csv_columns=("", ""))
  c.csv_split_column = "subset"
  assert _classes(c) == ["x", "y"]
  assert [(e.video_id, e.label, e.group) for e in _clips(c, "train")] == [("a", 0, "g1"),
                                                                          ("c", 1, "")]
  assert _ids(_clips(c, "test")) == ["b"]
  assert sources.split_spec(c) == {"layout": "csv", "csv_split_column": "subset"}
  _write(tmp_path / "all.csv", "video,label,subset\na.avi,x,train\nb.avi,y,val\n")
  with pytest.raises(ValueError, match=r"all.csv:3: split 'val'; expected one of train, test"):
    _clips(c, "train")


def test_csv_missing_file_names_the_key(tmp_path):
  with pytest.raises(ValueError, match=r"train.csv: file not found \(config\.data\.csv_train="):
    _classes(_data(tmp_path, layout="csv"))


# ----------------------------------------------------------------------------- real clips

def _all_frames(path) -> list[np.ndarray]:
  capture, frames = cv2.VideoCapture(os.fspath(path)), []
  while True:
    ok, frame = capture.read()
    if not ok:
      break
    frames.append(frame)
  capture.release()
  return frames


def test_encoded_frames_sample_exactly_like_the_file(shared_data):
  """Lossless frames of a real HMDB clip (which reports one frame too many) give the
  file's views bit for bit."""
  path = shared_data / "real_clips" / "RATRACE_wave_f_nm_np1_fr_goo_37.avi"
  encoded = [cv2.imencode(".png", f)[1].tobytes() for f in _all_frames(path)]
  scales = (1.0, 0.85, 1.15)
  want = video.read_video_views(path, 16, 40, scales)
  got = video.read_encoded_views(encoded, 16, 40, scales, name="clip")
  np.testing.assert_array_equal(got[1], want[1])
  np.testing.assert_array_equal(got[0], want[0])
  assert got[2] == want[2] == 16
  short = video.read_encoded_views(encoded[:5], 16, 40, (1.0,), name="clip")
  assert short[2] == 5 and short[1].tolist() == [[0, 1, 2, 3, 4]]
  with pytest.raises(video.VideoError, match="clip: frame 2 of 3 is not a decodable image"):
    video.read_encoded_views(encoded[:2] + [b"junk"], 4, 40, (1.0,), name="clip")
  with pytest.raises(video.VideoError, match="clip: the clip has no frames"):
    video.read_encoded_views([], 4, 40, (1.0,), name="clip")


def _extract_config(root, features_dir, **data):
  c = demo_config.get_config()
  c.data.root, c.data.features_dir = str(root), str(features_dir)
  c.data.update(data)
  # The EfficientNet weights that install with videojax load in a second; a random-init
  # ResNet takes ~20 s to initialise op by op on CPU. 96 px: XLA's CPU conv is slow on
  # the 2x2 maps that 64 px gives.
  c.extract.backbone, c.extract.weights, c.extract.pooling = "efficientnet_lite0", "imagenet", "avg"
  c.extract.image_size, c.data.num_frames = 96, 4
  c.extract.batch_size, c.extract.num_devices, c.extract.num_workers = 16, 1, 2
  return c


def test_hmdb51_extraction_of_real_clips(shared_data, tmp_path):
  clips = shared_data / "real_clips"
  root = tmp_path / "hmdb"
  files = {"wave": sorted(p.name for p in clips.glob("*_wave_*.avi")),
           "cartwheel": [p.name for p in clips.glob("hmdb51_*cartwheel*.avi")]}
  assert len(files["wave"]) == 3 and len(files["cartwheel"]) == 1
  for cls, names in files.items():
    (root / cls).mkdir(parents=True)
    for name in names:
      (root / cls / name).symlink_to(clips / name)
  wave = files["wave"]
  _hmdb(root, files={
      "wave": f"{wave[0]} 1\n{wave[1]} 2\n{wave[2]} 1\nNotThere_wave_f_nm_np1_fr_goo_0.avi 1\n",
      "cartwheel": f"{files['cartwheel'][0]} 1\n"})
  c = _extract_config(root, tmp_path / "features", layout="hmdb51")
  report = extract.extract_features(c, echo=lambda *_: None)
  assert report["failed"] == [["train", "wave/NotThere_wave_f_nm_np1_fr_goo_0",
                               f"{root}/wave/NotThere_wave_f_nm_np1_fr_goo_0.avi: no such file"]]
  train, test = F.load_split(c.data.features_dir, "train"), F.load_split(c.data.features_dir,
                                                                          "test")
  stem = lambda n: n.rsplit(".", 1)[0]
  assert train.class_names == ["cartwheel", "wave"]
  assert sorted(zip(train.video_ids, train.labels.tolist())) == sorted(
      [(f"cartwheel/{stem(files['cartwheel'][0])}", 0), (f"wave/{stem(wave[0])}", 1),
       (f"wave/{stem(wave[2])}", 1)])
  assert test.video_ids == [f"wave/{stem(wave[1])}"]
  assert train.lengths.tolist() == [4, 4, 4] and train.features.shape[1:] == (4, 1280)
  assert np.isfinite(train.features).all() and train.spec["layout"] == "hmdb51"
  # The shards store each clip's group, as the layout decided it at extraction.
  index, _ = F.read_index(c.data.features_dir, "train")
  assert index.groups == [groups.hmdb_group(v) for v in index.video_ids]
  assert all(index.groups)


# ----------------------------------------------------------------------------- tfds_ucf101

# A stand-in for the ffmpeg program that tensorflow-datasets runs to cut a video into
# frames (`ffmpeg -i <video> [-vf ...] <dir>/%010d.jpeg`); none is installed here.
_FAKE_FFMPEG = """
import sys, cv2
args = sys.argv[1:]
capture, n = cv2.VideoCapture(args[args.index("-i") + 1]), 0
while True:
  ok, frame = capture.read()
  if not ok:
    break
  n += 1
  cv2.imwrite(args[-1] % n, frame, [cv2.IMWRITE_JPEG_QUALITY, 95])
sys.exit(0 if n else 1)
"""
# (class, list entry, frames); HandStandPushups: the lists spell it so, tfds renames it.
_TFDS_CLIPS = {
    "train": [("Archery", "Archery/v_Archery_g08_c01.avi", 7),
              ("Archery", "Archery/v_Archery_g09_c02.avi", 9),
              ("HandstandPushups", "HandstandPushups/v_HandStandPushups_g10_c01.avi", 11),
              ("YoYo", "YoYo/v_YoYo_g11_c01.avi", 13),
              ("YoYo", "YoYo/v_YoYo_g12_c04.avi", 3)],
    "test": [("Archery", "Archery/v_Archery_g01_c01.avi", 8),
             ("YoYo", "YoYo/v_YoYo_g02_c03.avi", 10)]}


def _write_clip(path: pathlib.Path, frames: int, seed: int) -> None:
  rng = np.random.default_rng(seed)
  base = cv2.resize(rng.integers(0, 255, (6, 8, 3), np.uint8), (64, 48),
                    interpolation=cv2.INTER_LINEAR)
  writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48))
  for i in range(frames):
    writer.write(np.roll(base, 3 * i, axis=1))
  writer.release()


@contextlib.contextmanager
def _offline():
  """Any Python-level attempt to reach the network fails the test."""
  def refuse(*args, **kwargs):
    raise AssertionError(f"network access attempted: {args!r}")
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket, "create_connection", refuse)
    mp.setattr(socket, "getaddrinfo", refuse)
    yield mp


@pytest.fixture(scope="module")
def tfds_ucf(tmp_path_factory):
  """ucf101/ucf101_1 built by the real tfds builder from 7 small local videos, offline."""
  tfds = pytest.importorskip("tensorflow_datasets")
  base = tmp_path_factory.mktemp("tfds")
  videos, lists = base / "videos" / "UCF101", base / "ucfTrainTestlist"
  videos.mkdir(parents=True)
  lists.mkdir()
  _write(lists / "classInd.txt", "1 Archery\n2 HandstandPushups\n3 YoYo\n")
  videos_of = {}
  for subset, clips in _TFDS_CLIPS.items():
    lines = []
    for cls, entry, frames in clips:
      name = entry.split("/")[1].replace("HandStandPushups", "HandstandPushups")
      _write_clip(videos / name, frames, seed=len(videos_of))
      videos_of[entry.rsplit(".", 1)[0]] = videos / name
      lines.append(f"{entry} {1 + ['Archery', 'HandstandPushups', 'YoYo'].index(cls)}"
                   if subset == "train" else entry)
    _write(lists / f"{subset}list01.txt", "\n".join(lines) + "\n")
  bin_dir, manual = base / "bin", base / "manual"
  _write(bin_dir / "ffmpeg", f"#!{sys.executable}\n{_FAKE_FFMPEG}").chmod(0o755)
  # Only its presence is checked: the patched download below hands over the videos.
  _write(manual / tfds_ucf101.VIDEOS_ZIP, "stand-in")
  c = _data(lists, layout="tfds_ucf101", tfds_data_dir=str(base / "tfds"),
            tfds_manual_dir=str(manual))
  config_cls = tfds.download.DownloadConfig
  with _offline() as mp:
    mp.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    # What `download_and_extract` of the builder's two URLs gives: the extracted folders.
    mp.setattr(tfds.download.DownloadManager, "download_and_extract",
               lambda self, urls: {"videos": videos.parent, "splits": base})
    # Two shards per split, so reading has to keep file order.
    mp.setattr(tfds.download, "DownloadConfig",
               lambda **kw: config_cls(num_shards=2, **kw))
    # tensorflow-datasets 4.9.10 imports importlib_resources when it builds, a package
    # it requires only on Python < 3.9; the standard library's module serves.
    mp.setitem(sys.modules, "importlib_resources", importlib.resources)
    examples = {s: _clips(c, s) for s in sources.SUBSETS}
  return {"config": c, "examples": examples, "sources": videos_of, "lists": lists, "base": base}


def test_tfds_build_reads_every_record_as_its_listed_clip(tfds_ucf):
  c, examples, videos_of = tfds_ucf["config"], tfds_ucf["examples"], tfds_ucf["sources"]
  assert _classes(c) == ["Archery", "HandstandPushups", "YoYo"]
  for subset in sources.SUBSETS:
    listed = ucf101.read_split(tfds_ucf["lists"], subset)
    got = examples[subset]
    assert sorted(_ids(got)) == sorted(_ids(listed))
    assert {(e.video_id, e.label, e.group) for e in got} == {
        (e.video_id, e.label, e.group) for e in listed}
    # Record order: every record is the clip of that name (frame counts differ).
    for e in got:
      assert len(e.frames()) == len(_all_frames(videos_of[e.video_id])), e.video_id
  assert "HandstandPushups/v_HandStandPushups_g10_c01" in _ids(examples["train"])
  assert sources.split_spec(c) == {"layout": "tfds_ucf101", "tfds_config": ""}


def test_tfds_records_served_in_any_order_from_threads(tfds_ucf):
  train = tfds_ucf["examples"]["train"]
  order = [4, 3, 0, 2, 1, 4, 0]
  with concurrent.futures.ThreadPoolExecutor(3) as pool:
    counts = list(pool.map(lambda i: len(train[i].frames()), order))
  assert counts == [len(_all_frames(tfds_ucf["sources"][train[i].video_id])) for i in order]


def test_tfds_frames_sampled_like_the_file(tfds_ucf):
  spec = {"num_frames": 4, "image_size": 32, "temporal_scales": (1.0, 1.15)}
  for e in tfds_ucf["examples"]["test"]:
    frames, frame_of, length = extract.read_example_views(e, spec)
    want = extract.read_views(tfds_ucf["sources"][e.video_id], spec)
    np.testing.assert_array_equal(frame_of, want[1])
    assert length == want[2] == 4
    # Only the JPEG round trip of the tfds frames differs.
    assert np.abs(frames.astype(int) - want[0]).mean() < 4


def test_tfds_shard_extraction(tfds_ucf, tmp_path):
  """extract_shard reads tfds clips through Example.frames like files."""
  spec = {"num_frames": 4, "image_size": 32}
  examples = tfds_ucf["examples"]["train"]
  embed = lambda frames: frames.reshape(len(frames), -1)[:, :8].astype(np.float32)
  progress = type("Progress", (), {"update": lambda self, n: None})()
  failed = extract.extract_shard(
      examples, tmp_path / F.shard_name("train", 0, 1), embed=embed, spec=spec,
      class_names=["Archery", "HandstandPushups", "YoYo"], feature_dim=8, batch_size=8,
      num_workers=2, progress=progress)
  assert failed == []
  fs = F.load_split(tmp_path, "train")
  assert fs.video_ids == _ids(examples)
  assert fs.lengths.tolist() == [min(4, len(_all_frames(tfds_ucf["sources"][v])))
                                 for v in fs.video_ids]


def test_tfds_lists_that_do_not_match_the_records(tfds_ucf, tmp_path):
  lists = tmp_path / "lists"
  lists.mkdir()
  (lists / "classInd.txt").write_bytes((tfds_ucf["lists"] / "classInd.txt").read_bytes())
  train = (tfds_ucf["lists"] / "trainlist01.txt").read_text().splitlines()
  _write(lists / "trainlist01.txt", "\n".join(train[:-1]) + "\n")
  c = _data(lists, layout="tfds_ucf101", tfds_data_dir=tfds_ucf["config"].tfds_data_dir)
  with pytest.raises(ValueError, match=r"'train' holds 5 records but .*trainlist01.txt lists 4"):
    _clips(c, "train")
  # Same count, other names: the order by key hash puts clips of other classes first.
  _write(lists / "trainlist01.txt", "\n".join(train[:-2] + [
      "Archery/v_Archery_g20_c01.avi 1", "Archery/v_Archery_g21_c01.avi 1"]) + "\n")
  with pytest.raises(ValueError, match=r"record \d of 'train' is a \w+ clip, but the split "
                                       r"lists put .* there"):
    for e in _clips(c, "train"):
      e.frames()


def test_tfds_config_errors(tfds_ucf, tmp_path, monkeypatch):
  lists = tfds_ucf["lists"]
  built = tfds_ucf["config"].tfds_data_dir
  cases = [
      (dict(tfds_data_dir=""), r"config\.data\.tfds_data_dir is empty"),
      (dict(tfds_data_dir=built, tfds_config="ucf101_9"),
       r"config\.data\.tfds_config='ucf101_9' .*accepted: ucf101_1_256, ucf101_1, ucf101_2"),
      (dict(tfds_data_dir=built, tfds_config="ucf101_2"),
       r"tfds_config='ucf101_2' holds split 2 but config\.data\.split=1"),
      (dict(tfds_data_dir=str(tmp_path)),
       r"ucf101/ucf101_1 is not built\. Build it once \(tfds build ucf101/ucf101_1 .*"
       r"config\.data\.tfds_manual_dir"),
      (dict(tfds_data_dir=str(tmp_path), tfds_manual_dir=str(tmp_path)),
       r"UCF101_videos\.zip: not found \(config\.data\.tfds_manual_dir\)"),
  ]
  with _offline():
    for kw, message in cases:
      with pytest.raises(ValueError, match=message):
        _clips(_data(lists, layout="tfds_ucf101", **kw), "train")
    _write(tmp_path / "manual" / tfds_ucf101.VIDEOS_ZIP)
    monkeypatch.setattr(tfds_ucf101.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match=r"needs the ffmpeg program on PATH"):
      _clips(_data(lists, layout="tfds_ucf101", tfds_data_dir=str(tmp_path),
                                tfds_manual_dir=str(tmp_path / "manual")), "train")
    with pytest.raises(ValueError, match=r"no classInd\.txt\. With config\.data\.layout="
                                         r"'tfds_ucf101', config\.data\.root is the folder"):
      _clips(_data(tmp_path, layout="tfds_ucf101", tfds_data_dir=built), "train")
