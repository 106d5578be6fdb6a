"""Tests of videojax.data.sources.ucf101 and .groups: class and split files, groups, group splits."""

import pathlib
import random

import pytest

from videojax.data.sources.base import Clip
from videojax.data.sources.groups import split_by_group
from videojax.data.sources.groups import ucf_group
from videojax.data.sources.ucf101 import read_class_names, read_split

_CLASS_IND = "1 ApplyEyeMakeup\r\n2 HandstandPushups  \r\n3 YoYo\r\n\r\n"
_TRAIN = ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"
          "HandstandPushups/v_HandStandPushups_g08_c01.avi 2 \r\n"
          "  YoYo/v_YoYo_g09_c02.avi   3\r\n"
          "\r\n")
# The official lists spell one class folder with another case.
_TEST = ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n"
         "HandStandPushups/v_HandStandPushups_g01_c03.avi\r\n"
         "YoYo/v_YoYo_g02_c01.avi\r\n")


def _make_root(root: pathlib.Path, class_ind: str = _CLASS_IND, train: str = _TRAIN,
               test: str = _TEST) -> pathlib.Path:
  root.mkdir(parents=True, exist_ok=True)
  for name, text in [("classInd.txt", class_ind), ("trainlist01.txt", train),
                     ("testlist01.txt", test)]:
    if text is not None:
      (root / name).write_bytes(text.encode())
  return root


def test_read_class_names_crlf_and_blanks(tmp_path):
  assert read_class_names(_make_root(tmp_path)) == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]


def test_read_class_names_follows_index_not_line_order(tmp_path):
  root = _make_root(tmp_path, class_ind="2 B\n3 C\n1 A\n")
  assert read_class_names(root) == ["A", "B", "C"]


def test_read_split_train(tmp_path):
  root = _make_root(tmp_path)
  examples = read_split(root, "train")
  assert [e.label for e in examples] == [0, 1, 2]
  assert examples[0] == Clip(
      path=root / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01.avi", label=0,
      video_id="ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", group="ApplyEyeMakeup_g08")
  assert examples[2].video_id == "YoYo/v_YoYo_g09_c02"
  assert examples[2].group == "YoYo_g09"


def test_read_split_test_takes_labels_from_folders_of_any_case(tmp_path):
  root = _make_root(tmp_path)
  (root / "HandstandPushups").mkdir()
  (root / "HandstandPushups" / "v_HandStandPushups_g01_c03.avi").write_bytes(b"")
  examples = read_split(root, "test", split=1)
  assert [e.label for e in examples] == [0, 1, 2]
  hand = examples[1]
  # The id uses classInd's spelling; the path is the file that exists.
  assert hand.video_id == "HandstandPushups/v_HandStandPushups_g01_c03"
  assert hand.path == root / "HandstandPushups" / "v_HandStandPushups_g01_c03.avi"
  assert hand.group == "HandStandPushups_g01"


def test_read_split_does_not_check_video_files(tmp_path):
  examples = read_split(_make_root(tmp_path), "train")
  assert not any(e.path.exists() for e in examples)


@pytest.mark.parametrize("file,content,match", [
    ("classInd.txt", "1 A\n2B\n", r"classInd.txt:2: expected '<index> <ClassName>'"),
    ("classInd.txt", "1 A\n\nx B\n", r"classInd.txt:3: expected"),
    ("classInd.txt", "1 A\n1 B\n", r"classInd.txt:2: duplicate class index 1 \(already line 1\)"),
    ("classInd.txt", "1 A\n2 a\n", r"classInd.txt:2: duplicate class name"),
    ("classInd.txt", "1 A\n3 B\n", r"classInd.txt: class indices must be 1..2"),
    ("classInd.txt", "\r\n", r"classInd.txt: no classes"),
    ("trainlist01.txt", "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\n"
     "YoYo/v_YoYo_g01_c01.avi 2\n", r"trainlist01.txt:2: label 2 \(HandstandPushups\) disagrees"),
    ("trainlist01.txt", "\nSkiing/v_Skiing_g01_c01.avi 1\n",
     r"trainlist01.txt:2: class folder 'Skiing' is not in .*classInd.txt"),
    ("trainlist01.txt", "YoYo/v_YoYo_g01_c01.avi 4\n", r"trainlist01.txt:1: label 4 out of range 1..3"),
    ("trainlist01.txt", "YoYo/v_YoYo_g01_c01.avi 0\n", r"trainlist01.txt:1: label 0 out of range"),
    ("trainlist01.txt", "YoYo/v_YoYo_g01_c01.avi three\n", r"trainlist01.txt:1: label must be"),
    ("trainlist01.txt", "YoYo/v_YoYo_g01_c01.avi 3 extra\n", r"trainlist01.txt:1: expected"),
    ("trainlist01.txt", "v_YoYo_g01_c01.avi 3\n", r"trainlist01.txt:1: expected a path"),
    ("trainlist01.txt", "YoYo/v_YoYo_g01_c01.avi 3\nyoyo/v_YoYo_g01_c01.avi 3\n",
     r"trainlist01.txt:2: .* listed twice \(also line 1\)"),
    ("trainlist01.txt", "\n \n", r"trainlist01.txt: no clips"),
])
def test_read_split_errors_name_file_and_line(tmp_path, file, content, match):
  root = _make_root(tmp_path)
  (root / file).write_text(content)
  with pytest.raises(ValueError, match=match):
    read_split(root, "train")


@pytest.mark.parametrize("missing", ["classInd.txt", "trainlist01.txt"])
def test_read_split_missing_files(tmp_path, missing):
  root = _make_root(tmp_path)
  (root / missing).unlink()
  with pytest.raises(ValueError, match=f"{missing}: file not found"):
    read_split(root, "train")


def test_read_split_other_split_and_subset(tmp_path):
  root = _make_root(tmp_path)
  with pytest.raises(ValueError, match="testlist02.txt: file not found"):
    read_split(root, "test", split=2)
  with pytest.raises(ValueError, match="subset"):
    read_split(root, "val")


@pytest.mark.parametrize("video_id,group", [
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01", "ApplyEyeMakeup_g08"),
    ("v_YoYo_g25_c07", "YoYo_g25"),
    ("Some_Class/v_Some_Class_g3", "Some_Class_g3"),
    # No gNN: unknown, and split_by_group takes such a clip as a group of its own.
    ("wave/RATRACE_wave_f_nm_np1_fr_goo_37", ""),
    ("x/v_gym_c01", ""),
])
def test_ucf_group(video_id, group):
  assert ucf_group(video_id) == group


def _examples(groups_per_class: dict[int, int], clips: int = 3) -> list[Clip]:
  out = []
  for label, groups in groups_per_class.items():
    for g in range(1, groups + 1):
      for c in range(1, clips + 1):
        vid = f"C{label}/v_C{label}_g{g:02d}_c{c:02d}"
        out.append(Clip(pathlib.Path(vid + ".avi"), label, vid, ucf_group(vid)))
  return out


def test_split_by_group_keeps_groups_whole_and_classes_on_both_sides():
  examples = _examples({0: 10, 1: 5, 2: 2, 3: 1})
  rest, held = split_by_group(examples, 0.2, seed=0)
  assert sorted(rest + held, key=lambda e: e.video_id) == sorted(examples, key=lambda e: e.video_id)
  assert not {e.group for e in rest} & {e.group for e in held}
  held_groups = {label: {e.group for e in held if e.label == label} for label in range(4)}
  assert [len(held_groups[label]) for label in range(4)] == [2, 1, 1, 0]
  for label in (0, 1, 2):
    assert any(e.label == label for e in rest)
  # Order of the input is kept on both sides.
  assert rest == [e for e in examples if e in rest]


def test_split_by_group_deterministic_and_order_independent():
  examples = _examples({0: 10, 1: 10, 2: 10})
  first = split_by_group(examples, 0.3, seed=7)
  assert split_by_group(examples, 0.3, seed=7) == first
  shuffled = list(examples)
  random.Random(0).shuffle(shuffled)
  _, held = split_by_group(shuffled, 0.3, seed=7)
  assert {e.group for e in held} == {e.group for e in first[1]}
  others = {frozenset(e.group for e in split_by_group(examples, 0.3, seed=s)[1])
            for s in range(5)}
  assert len(others) > 1


def test_split_by_group_large_fraction_leaves_one_group():
  rest, held = split_by_group(_examples({0: 4, 1: 2}), 0.9, seed=0)
  assert len({e.group for e in rest if e.label == 0}) == 1
  assert len({e.group for e in rest if e.label == 1}) == 1


def test_split_by_group_single_group_classes():
  # No class has two groups, but there are two groups: hold one out anyway.
  rest, held = split_by_group(_examples({0: 1, 1: 1}), 0.5, seed=0)
  assert len({e.group for e in held}) == 1 and len({e.group for e in rest}) == 1
  rest, held = split_by_group(_examples({0: 1}), 0.5, seed=0)
  assert held == [] and len(rest) == 3


def test_split_by_group_clips_of_unknown_group_are_groups_of_their_own():
  examples = [Clip(pathlib.Path(f"a/x{i}.avi"), 0, f"a/x{i}", "") for i in range(4)]
  rest, held = split_by_group(examples, 0.5, seed=0)
  assert len(rest) == len(held) == 2
  assert sorted(rest + held, key=lambda e: e.video_id) == examples


def test_split_by_group_zero_and_bad_fraction():
  examples = _examples({0: 3})
  assert split_by_group(examples, 0.0, seed=0) == (examples, [])
  for bad in (-0.1, 1.0):
    with pytest.raises(ValueError, match="fraction"):
      split_by_group(examples, bad, seed=0)


def test_weizmann4(shared_data):
  root = shared_data / "weizmann4"
  assert read_class_names(root) == ["WaveOneHand", "WaveTwoHands", "JumpingJack", "Bend"]
  train, test = read_split(root, "train"), read_split(root, "test")
  assert len(train) == 48 and len(test) == 24
  for examples in (train, test):
    assert sorted({e.label for e in examples}) == [0, 1, 2, 3]
    assert all(e.path.is_file() for e in examples)
  assert not {e.group for e in train} & {e.group for e in test}
  # A clip and its mirror (c01, c02) share a group.
  assert len({e.group for e in train}) == 24
  rest, held = split_by_group(train, 0.2, seed=0)
  assert not {e.group for e in rest} & {e.group for e in held}
  assert sorted({e.label for e in held}) == [0, 1, 2, 3]
