"""Importing features made elsewhere: formats, splits, sampling, failures, resume, training."""
import copy
import csv
import os
import pathlib
import subprocess
import sys

import h5py
import ml_collections
import numpy as np
import pytest

from configs import demo as demo_config
from videojax import train
from videojax.data import features as F
from videojax.data import import_features as I
from videojax.data import sources, video
from videojax.data.sources import csv_lists

ROOT = pathlib.Path(__file__).resolve().parents[1]
D = 6
CLASSES = ["Jump", "Run"]
QUIET = dict(echo=lambda *_: None, num_workers=2)


def _arr(seed: int, t: int, d: int = D) -> np.ndarray:
  return np.random.default_rng(seed).normal(size=(t, d)).astype(np.float32)


def _save(stem: pathlib.Path, arr: np.ndarray, fmt: str, name: str = "feats") -> pathlib.Path:
  """Writes `arr` [t, d] as <stem>.<ext> in format `fmt`; returns the file."""
  stem.parent.mkdir(parents=True, exist_ok=True)
  ext = {"mat73": "mat"}.get(fmt, fmt)
  path = stem.with_name(f"{stem.name}.{ext}")
  if fmt == "npy":
    np.save(path, arr)
  elif fmt == "npz":
    np.savez(path, **{name: arr})
  elif fmt == "mat":
    scipy_io = pytest.importorskip("scipy.io", reason="scipy reads MATLAB v5 .mat files")
    scipy_io.savemat(path, {name: arr, "source": "i3d"})  # a char variable is no candidate
  elif fmt == "mat73":  # As MATLAB's save -v7.3 writes it: HDF5, a t x d matrix as [d, t].
    with h5py.File(path, "w", userblock_size=512) as f:
      f.create_dataset(name, data=arr.T).attrs["MATLAB_class"] = np.bytes_("double")
      f.create_dataset("label", data=np.array([[7.0]])).attrs["MATLAB_class"] = np.bytes_("char")
    with open(path, "r+b") as f:
      f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024")
  else:  # h5 / hdf5
    with h5py.File(path, "w") as f:
      f.create_dataset(f"features/{name}", data=arr)
      f.attrs["fps"] = 25
  return path


def _ucf_root(root: pathlib.Path, train_ids, test_ids) -> pathlib.Path:
  root.mkdir(parents=True, exist_ok=True)
  (root / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in enumerate(CLASSES, 1)))
  (root / "trainlist01.txt").write_text("".join(
      f"{v}.avi {CLASSES.index(v.split('/')[0]) + 1}\r\n" for v in train_ids))
  (root / "testlist01.txt").write_text("".join(f"{v}.avi\r\n" for v in test_ids))
  return root


def _ucf(root: pathlib.Path):
  return I.make_source(ucf_root=str(root))


def _class_of(vid: str) -> str:
  return vid.rsplit("/", 1)[-1].split("_")[1]  # v_<Class>_gNN_cMM


def _ids(groups, clips=1):
  return [f"{c}/v_{c}_g{g:02d}_c{k:02d}" for c in CLASSES for g in groups
          for k in range(1, clips + 1)]


def _dataset(tmp_path, fmt="npy", groups=(1, 2), test_groups=(3,), clips=1, flat=False,
             lengths=(3, 9, 4, 12, 1)):
  """Arrays of every listed video (t cycling through `lengths`) and a UCF root."""
  train_ids, test_ids = _ids(groups, clips), _ids(test_groups, clips)
  arrays = {}
  for i, vid in enumerate(train_ids + test_ids):
    # A class offset makes the classes learnable.
    arrays[vid] = _arr(i, lengths[i % len(lengths)]) + 2.0 * CLASSES.index(vid.split("/")[0])
    _save(tmp_path / "src" / (vid.split("/")[1] if flat else vid), arrays[vid], fmt)
  root = _ucf_root(tmp_path / "ucf", train_ids, test_ids)
  return tmp_path / "src", root, arrays


def _check_split(features_dir, split, arrays, num_frames, listed):
  fs = F.load_split(features_dir, split)
  assert fs.video_ids == listed and fs.class_names == CLASSES
  assert fs.spec["backbone"] == "imported" and fs.spec["num_frames"] == num_frames
  assert fs.features.shape == (len(listed), num_frames, D)
  for i, vid in enumerate(listed):
    arr = arrays[vid]
    idx = video.sample_indices(len(arr), num_frames)
    assert fs.lengths[i] == len(idx) == min(len(arr), num_frames)
    assert fs.labels[i] == CLASSES.index(_class_of(vid))
    np.testing.assert_allclose(fs.features[i, :len(idx)], arr[idx], rtol=1e-3, atol=1e-3)
    assert not fs.features[i, len(idx):].any()  # padding is zeros, masked by the length
  return fs


@pytest.mark.parametrize("fmt", ["npy", "npz", "mat", "mat73", "h5", "hdf5"])
def test_each_format_with_ucf_split(tmp_path, fmt):
  src, root, arrays = _dataset(tmp_path, fmt)
  report = I.import_features(src, tmp_path / "out", source=_ucf(root),
                             num_frames=4, shard_size=3, **QUIET)
  assert report["failed"] == [] and report["feature_dim"] == D and report["unlisted"] == 0
  assert report["imported"] == 3 and report["num_videos"] == {"train": 4, "test": 2}
  _check_split(tmp_path / "out", "train", arrays, 4, _ids((1, 2)))
  _check_split(tmp_path / "out", "test", arrays, 4, _ids((3,)))
  assert (tmp_path / "out" / "failed_videos.csv").read_text().strip() == "split,video_id,reason"


def test_long_sequences_sampled_at_segment_centres_short_ones_padded(tmp_path):
  src = tmp_path / "src"
  frames = {"v_Jump_g01_c01": 23, "v_Run_g01_c01": 5, "v_Jump_g02_c01": 3, "v_Run_g02_c01": 1,
            "v_Run_g03_c01": 7}
  for name, n in frames.items():  # Row i holds i everywhere: the features name their frame.
    _save(src / name, np.repeat(np.arange(n, dtype=np.float32)[:, None], D, 1) + 1, "npy")
  (tmp_path / "train.csv").write_text("video_name,tag\n" + "".join(
      f"{n}.avi,{n.split('_')[1]}\n" for n in list(frames)[:4]))
  (tmp_path / "test.csv").write_text("video_name,tag\nv_Run_g03_c01.avi,Run\n")
  source = I.make_source(train_csv=str(tmp_path / "train.csv"),
                         test_csv=str(tmp_path / "test.csv"))
  I.import_features(src, tmp_path / "out", source=source, num_frames=5, **QUIET)
  fs = F.load_split(tmp_path / "out", "train")
  got = {v: fs.features[i, :, 0].astype(int) - 1 for i, v in enumerate(fs.video_ids)}
  # floor((i + 0.5) * 23 / 5): the centres of 5 equal segments of the whole sequence.
  np.testing.assert_array_equal(got["v_Jump_g01_c01"], [2, 6, 11, 16, 20])
  np.testing.assert_array_equal(got["v_Run_g01_c01"], [0, 1, 2, 3, 4])
  np.testing.assert_array_equal(got["v_Jump_g02_c01"], [0, 1, 2, -1, -1])  # -1: zero padding
  np.testing.assert_array_equal(got["v_Run_g02_c01"], [0, -1, -1, -1, -1])
  np.testing.assert_array_equal(fs.lengths, [5, 5, 3, 1])
  assert (fs.features[:, :, 1:] == fs.features[:, :, :1]).all()


def test_csv_sources_flat_layout_sorted_classes(tmp_path):
  src, _, arrays = _dataset(tmp_path, "npz", flat=True)
  flat = {v.split("/")[1]: a for v, a in arrays.items()}
  rows = {"train": _ids((1, 2)), "test": _ids((3,))}
  for split, vids in rows.items():  # The Keras example's files: an index column, then these.
    (tmp_path / f"{split}.csv").write_text(",video_name,tag\n" + "".join(
        f"{i},{v.split('/')[1]}.avi,{v.split('/')[0]}\n" for i, v in enumerate(vids)))
  (tmp_path / "all.csv").write_text("Video,Class,Subset\n" + "".join(
      f"{v.split('/')[1]},{v.split('/')[0]},{s}\n" for s, vids in rows.items() for v in vids))
  sources = {
      "two": I.make_source(train_csv=str(tmp_path / "train.csv"),
                                 test_csv=str(tmp_path / "test.csv")),
      "one": I.make_source(csv_path=str(tmp_path / "all.csv"), split_column="subset",
                                 video_column="video", label_column="class"),
  }
  for name, source in sources.items():
    assert source.class_names() == CLASSES  # sorted
    out = tmp_path / name
    assert I.import_features(src, out, source=source, num_frames=4, **QUIET)["failed"] == []
    for split, vids in rows.items():
      _check_split(out, split, flat, 4, [v.split("/")[1] for v in vids])


def test_groups_from_the_csv_column_else_the_names_are_stored(tmp_path):
  """Cuts of a few source videos: a group column, or '<source>_clip<n>' names, keep each
  source on one side of the validation split."""
  src = tmp_path / "src"
  train_ids = [f"{c}{s}_clip{k}" for c in CLASSES for s in range(3) for k in (1, 2)]
  named = {v: f"take{i}" for i, v in enumerate(train_ids)}  # names that tell nothing
  for i, v in enumerate(train_ids + ["Jump9_clip1", "Run9_clip1"]):
    _save(src / v, _arr(i, 5), "npy")
    if v in named:
      _save(src / named[v], _arr(i, 5), "npy")
  lists = {}
  for name, column, vid_of in (("by_name", "", lambda v: v),
                               ("by_column", ",group", lambda v: named[v])):
    (tmp_path / f"{name}.csv").write_text(f"video_name,tag{column}\n" + "".join(
        f"{vid_of(v)}.avi,{v[:-7].rstrip('0123456789')}"
        f"{',' + v.rsplit('_', 1)[0] if column else ''}\n" for v in train_ids))
    lists[name] = vid_of
  (tmp_path / "test.csv").write_text("video_name,tag\nJump9_clip1.avi,Jump\nRun9_clip1,Run\n")
  for name, vid_of in lists.items():
    source = I.make_source(train_csv=str(tmp_path / f"{name}.csv"),
                                 test_csv=str(tmp_path / "test.csv"))
    out = tmp_path / name
    I.import_features(src, out, source=source, num_frames=4, shard_size=5, **QUIET)
    index, _ = F.read_index(out, "train")
    back = {vid_of(v): v for v in train_ids}
    assert index.groups == [back[v].rsplit("_", 1)[0] for v in index.video_ids]
    rest, held = train.split_validation(index, 0.34, seed=0)
    sources = lambda fs: {index.groups[index.video_ids.index(v)] for v in fs.video_ids}
    assert len(held) == 4 and not sources(rest) & sources(held)
    assert F.read_index(out, "test")[0].groups == ["Jump9", "Run9"]
    assert source.describe().get("group_column") == ("group" if name == "by_column" else None)
  # A UCF-101 root: the gNN of each name.
  src_ucf, root, _ = _dataset(tmp_path / "ucf_case")
  I.import_features(src_ucf, tmp_path / "ucf_out", source=_ucf(root),
                    num_frames=4, **QUIET)
  index, _ = F.read_index(tmp_path / "ucf_out", "train")
  assert index.groups == [v.split("/")[1][2:-4] for v in index.video_ids]
  # A group column named but absent is an error; an unnamed one is optional.
  with pytest.raises(ValueError, match=r"by_column.csv:1: .* lacks the group column "
                                       r"\(looked for 'src'.*--group_column"):
    I.make_source(train_csv=str(tmp_path / "by_column.csv"),
                  test_csv=str(tmp_path / "test.csv"), group_column="src").clips("train")


def test_split_source_errors_name_the_problem(tmp_path):
  with pytest.raises(ValueError, match="exactly one split source"):
    I.make_source()
  with pytest.raises(ValueError, match="exactly one split source"):
    I.make_source(ucf_root="x", train_csv="y")
  with pytest.raises(ValueError, match="go together"):
    I.make_source(train_csv="train.csv")
  (tmp_path / "a.csv").write_text("clip,tag\nv_a.avi,A\n")
  with pytest.raises(ValueError, match=r"lacks the video column .*--video_column"):
    I.make_source(train_csv=str(tmp_path / "a.csv"), test_csv=str(tmp_path / "a.csv")).clips(
        "train")
  (tmp_path / "b.csv").write_text("video_name,tag\nv_a.avi,A\nv_b,B\nv_a.mp4,B\n")
  with pytest.raises(ValueError, match=r"b.csv:4: v_a.mp4 is listed twice \(also line 2\)"):
    I.make_source(train_csv=str(tmp_path / "b.csv"), test_csv=str(tmp_path / "a.csv")).clips(
        "train")
  assert csv_lists.video_id_of(".\\Jump\\v_x_g01_c01.avi") == "Jump/v_x_g01_c01"
  assert csv_lists.video_id_of("clip.001") == "clip.001"


def test_bad_arrays_are_skipped_and_reported(tmp_path):
  src, root, arrays = _dataset(tmp_path, "npy", groups=(1, 2, 3, 4), test_groups=(5,))
  bad = _ids((1, 2, 3, 4))
  (src / f"{bad[0]}.npy").unlink()                                          # missing
  np.save(src / f"{bad[1]}.npy", np.full((5, D), np.nan, np.float32))      # NaN
  np.save(src / f"{bad[2]}.npy", _arr(0, 5, D + 1))                        # another d
  np.save(src / f"{bad[3]}.npy", np.zeros((5, D, 2), np.float32))          # 3-D
  (src / f"{bad[4]}.npy").write_bytes(b"not an array")                     # unreadable
  np.save(src / f"{bad[5]}.npy", np.full((5, D), 1e6, np.float32))         # beyond float16
  (src / f"{bad[6]}.npy").unlink()                                          # two candidates
  np.savez(src / f"{bad[6]}.npz", rgb=_arr(1, 5), flow=_arr(2, 5))
  report = I.import_features(src, tmp_path / "out", source=_ucf(root),
                             num_frames=4, **QUIET)
  reasons = {vid: reason for split, vid, reason in report["failed"]}
  assert sorted(reasons) == sorted(bad[:7]) and report["feature_dim"] == D
  for vid, words in zip(bad, ["no array file", "NaN or inf", f"feature dimension {D + 1}",
                              "expected features [t, d]", "unreadable", "float16",
                              "name one with --key"]):
    assert words in reasons[vid], (vid, reasons[vid])
  fs = F.load_split(tmp_path / "out", "train")
  assert fs.video_ids == [bad[7]] and sorted(v for v, _ in fs.failed) == sorted(bad[:7])
  with open(tmp_path / "out" / "failed_videos.csv", newline="") as f:
    rows = list(csv.reader(f))
  assert rows[0] == ["split", "video_id", "reason"]
  assert sorted(rows[1:]) == sorted(report["failed"])
  _check_split(tmp_path / "out", "test", arrays, 4, _ids((5,)))


def test_shard_whose_videos_all_fail_is_written_empty(tmp_path):
  src, root, _ = _dataset(tmp_path, "npy")
  for vid in _ids((3,)):
    (src / f"{vid}.npy").unlink()
  report = I.import_features(src, tmp_path / "out", source=_ucf(root),
                             num_frames=4, **QUIET)
  assert sorted(v for _, v, _ in report["failed"]) == _ids((3,))
  fs = F.load_split(tmp_path / "out", "test")
  assert len(fs) == 0 and sorted(v for v, _ in fs.failed) == _ids((3,))


def test_key_selects_among_several_arrays(tmp_path):
  src, root, arrays = _dataset(tmp_path, "h5")
  for vid, arr in arrays.items():  # A second 2-D array beside each: now ambiguous.
    with h5py.File(src / f"{vid}.h5", "a") as f:
      f["features/flow"] = -arr
  source = _ucf(root)
  with pytest.raises(F.FeatureError, match="name one with --key"):
    I.import_features(src, tmp_path / "a", source=source, num_frames=4, **QUIET)
  I.import_features(src, tmp_path / "b", source=source, num_frames=4,
                    key="features/feats", **QUIET)
  _check_split(tmp_path / "b", "train", arrays, 4, _ids((1, 2)))
  assert F.load_split(tmp_path / "b", "train").spec["key"] == "features/feats"


def test_feature_dim_tie_asks_for_the_flag(tmp_path):
  src, root, arrays = _dataset(tmp_path, "npy")
  other = [*_ids((2,)), _ids((3,))[0]]  # 3 of the 6 arrays
  for vid in other:
    np.save(src / f"{vid}.npy", _arr(0, 4, D + 2))
  with pytest.raises(F.FeatureError, match="choose one with --feature_dim"):
    I.import_features(src, tmp_path / "out", source=_ucf(root),
                      num_frames=4, **QUIET)
  report = I.import_features(src, tmp_path / "out", source=_ucf(root),
                             num_frames=4, feature_dim=D, **QUIET)
  assert sorted(v for _, v, _ in report["failed"]) == sorted(other)


def test_rerun_skips_complete_shards_and_refuses_other_settings(tmp_path):
  src, root, arrays = _dataset(tmp_path, "npy", groups=(1, 2, 3))
  out, source = tmp_path / "out", _ucf(root)
  first = I.import_features(src, out, source=source, num_frames=4, shard_size=2, **QUIET)
  assert (first["imported"], first["skipped"]) == (4, 0)
  shards = sorted(out.glob("*.h5"))
  stamps = {p: p.stat().st_mtime_ns for p in shards}
  again = I.import_features(src, out, source=source, num_frames=4, shard_size=2, **QUIET)
  assert (again["imported"], again["skipped"]) == (0, 4)
  shards[1].unlink()
  (out / f".{shards[1].name}.tmp-123").write_bytes(b"half")  # an interrupted write
  third = I.import_features(src, out, source=source, num_frames=4, shard_size=2, **QUIET)
  assert (third["imported"], third["skipped"]) == (1, 3)
  assert all(p.stat().st_mtime_ns == stamps[p] for p in shards if p != shards[1])
  _check_split(out, "train", arrays, 4, _ids((1, 2, 3)))
  with pytest.raises(F.FeatureError, match="num_frames: expected 5, found 4"):
    I.import_features(src, out, source=source, num_frames=5, shard_size=2, **QUIET)
  (root / "classInd.txt").write_text("1 Jump\n2 Run\n3 Swim\n")
  with pytest.raises(F.FeatureError, match="class lists differ"):
    I.import_features(src, out, source=_ucf(root), num_frames=4,
                      shard_size=2, **QUIET)


def test_imported_features_train_a_temporal_model(tmp_path):
  src, root, _ = _dataset(tmp_path, "npy", groups=(1, 2, 3, 4), test_groups=(5,), clips=2)
  I.import_features(src, tmp_path / "features", source=_ucf(root),
                    num_frames=6, **QUIET)
  c = copy.deepcopy(demo_config.get_config())
  c.data.features_dir, c.data.num_frames = str(tmp_path / "features"), 6
  c.data.val_fraction = 0.25
  # meanpool: the model is beside the point here and compiles in half the time of the GRU
  # (test_end_to_end trains the GRU).
  c.model.name = "meanpool"
  c.train.num_epochs, c.train.batch_size, c.train.num_devices = 1, 4, 1
  c.eval.batch_size = 4
  results = train.train_and_evaluate(c, str(tmp_path / "run"), echo=lambda *_: None)
  assert results["num_examples"] == 4 and results["num_train"] == 12
  assert results["num_val"] == 4 and 0 <= results["accuracy"] <= 1


def test_script_imports_csv_lists(tmp_path):
  src, _, arrays = _dataset(tmp_path, "npy", flat=True)
  for split, groups in (("train", (1, 2)), ("test", (3,))):
    (tmp_path / f"{split}.csv").write_text("video_name,tag,shot\n" + "".join(
        f"{v.split('/')[1]}.avi,{v.split('/')[0]},s{i // 2}\n" for i, v in enumerate(_ids(groups))))
  out = tmp_path / "out"
  # Run from another directory than the checkout: the relative --config is the checkout's.
  proc = subprocess.run(
      [sys.executable, str(ROOT / "scripts" / "import_features.py"), f"--src={src}",
       "--config=configs/default.py:t4", f"--config.data.features_dir={out}",
       f"--train_csv={tmp_path / 'train.csv'}", f"--test_csv={tmp_path / 'test.csv'}",
       "--config.extract.shard_size=2", "--group_column=shot"],
      capture_output=True, text=True, cwd=tmp_path, timeout=120,
      env={**os.environ, "PYTHONPATH": str(ROOT)})
  assert proc.returncode == 0, proc.stderr
  assert "Done: 3 shard(s) written, 0 already complete, 0 video(s) failed, d=6." in proc.stdout
  _check_split(out, "test", {v.split("/")[1]: a for v, a in arrays.items()}, 4,
               [v.split("/")[1] for v in _ids((3,))])
  # --group_column: the column's groups are stored, not those of the UCF names.
  index, _ = F.read_index(out, "train")
  assert sorted(zip(index.video_ids, index.groups)) == sorted(
      (v.split("/")[1], f"s{i // 2}") for i, v in enumerate(_ids((1, 2))))


def test_rerun_after_the_list_grew_imports_the_new_clips_and_drops_stale_shards(tmp_path):
  src, root, arrays = _dataset(tmp_path, "npy", groups=(1, 2, 3, 4))
  out = tmp_path / "out"
  _ucf_root(root, _ids((1, 2)), _ids((3,)))  # train: 4 clips, 2 shards of 2
  I.import_features(src, out, source=_ucf(root), num_frames=4,
                    shard_size=2, **QUIET)
  _ucf_root(root, _ids((1, 2, 4)), _ids((3,)))  # train: 6 clips, 3 shards
  said = []
  I.import_features(src, out, source=_ucf(root), num_frames=4,
                    shard_size=2, echo=said.append, num_workers=2)
  assert sorted(p.name for p in out.glob("train-*.h5")) == [
      F.shard_name("train", j, 3) for j in range(3)]
  _check_split(out, "train", arrays, 4, _ids((1, 2, 4)))
  assert any("stale shard" in s for s in said), said


def test_csv_layout_and_csv_import_agree_on_classes_labels_and_groups(tmp_path):
  """One CSV reader, one class order: the shards an import writes from CSV lists hold
  the classes, labels and groups that the csv layout lists for extraction."""
  (tmp_path / "train.csv").write_text(
      "video_name,tag,group\nRun/srcA_clip1.avi,Run,\nJump/x.avi,Jump,street\n"
      "Run/srcA_clip2.avi,Run,\nJump/y.avi,Jump,street\nJump/srcB_c01.avi,Jump,\n")
  (tmp_path / "test.csv").write_text("video_name,tag\nRun/srcC_clip1.avi,Run\nJump/z.avi,Jump\n")
  layout = sources.get(ml_collections.ConfigDict({
      "layout": "csv", "root": str(tmp_path), "csv_train": "train.csv", "csv_test": "test.csv",
      "csv_columns": ("video_name", "tag")}))
  imported = I.make_source(train_csv=str(tmp_path / "train.csv"),
                           test_csv=str(tmp_path / "test.csv"))
  assert layout.class_names() == imported.class_names() == CLASSES
  for i, vid in enumerate(["Run/srcA_clip1", "Jump/x", "Run/srcA_clip2", "Jump/y",
                           "Jump/srcB_c01", "Run/srcC_clip1", "Jump/z"]):
    _save(tmp_path / "src" / vid, _arr(i, 3), "npy")
  I.import_features(tmp_path / "src", tmp_path / "out", source=imported, num_frames=2, **QUIET)
  want_groups = {"train": ["Run/srcA", "street", "Run/srcA", "street", "Jump/srcB"],
                 "test": ["Run/srcC", ""]}
  for split in sources.SUBSETS:
    listed = [(e.video_id, e.label, e.group) for e in layout.clips(split)]
    assert listed == [(e.video_id, e.label, e.group) for e in imported.clips(split)]
    assert [g for _, _, g in listed] == want_groups[split]
    index, _ = F.read_index(tmp_path / "out", split)
    assert index.class_names == CLASSES
    assert sorted(zip(index.video_ids, index.labels.tolist(), index.groups)) == sorted(listed)


def test_csv_import_takes_its_classes_from_the_train_rows(tmp_path):
  (tmp_path / "train.csv").write_text("video_name,tag\na.avi,Run\n")
  (tmp_path / "test.csv").write_text("video_name,tag\nb.avi,Jump\n")
  source = I.make_source(train_csv=str(tmp_path / "train.csv"),
                         test_csv=str(tmp_path / "test.csv"))
  assert source.class_names() == ["Run"]
  with pytest.raises(ValueError, match=r"test.csv:2: label 'Jump' does not occur in .*train.csv"):
    source.clips("test")
