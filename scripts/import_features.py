r"""Imports per-video feature arrays made elsewhere into the HDF5 shards that training reads.

Config-driven like scripts/extract_features.py: --config (default configs/default.py)
gives the output (data.features_dir), T (data.num_frames), the shard size and reading
threads (extract.shard_size, extract.num_workers) and, unless a list flag below names
one, the split source (data.layout, data.root, data.split, data.csv_*), each
overridable with --config.<key>=<value>.

--src holds one array [t, d] per video, named after the video (nested
'<Class>/v_x_g01_c01.npy' or flat 'v_x_g01_c01.npy'), as .npy, .npz, .mat (v5 or
v7.3) or .h5/.hdf5. Labels and splits come from a UCF-101-style root or from CSVs, read by
the same data sources as extraction (layouts ucf101 and csv of videojax.data.sources);
a CSV's `group` column (--group_column) names the source video of each clip, which
validation keeps whole (else the group is read from UCF/HMDB or '<source>_clip<n>' names):

  # classInd.txt, trainlist01.txt, testlist01.txt under --ucf_root:
  python scripts/import_features.py --src=/data/ucf101_i3d_npy --ucf_root=/data/UCF-101 \
      --config.data.features_dir=/data/ucf101_i3d --config.data.num_frames=32

  # CSVs with a header, e.g. the Keras video-classification example's (video_name,tag):
  python scripts/import_features.py --src=/data/feats --train_csv=train.csv \
      --test_csv=test.csv --config.data.features_dir=/data/feats_h5

  # then any temporal model:
  python scripts/train.py --config configs/default.py --workdir runs/imported_gru \
      --config.data.features_dir=/data/ucf101_i3d

Longer sequences are sampled uniformly to data.num_frames, shorter ones padded and masked.
Unusable arrays (missing, unreadable, not 2-D, another d, NaN/inf) are skipped and listed
in <features_dir>/failed_videos.csv. Re-running skips finished shards; a features_dir
made with other settings is refused.
"""
import sys

from videojax import platform

platform.quiet_start(sys.argv)  # Before TensorFlow loads: no start-up banners unless --verbosity.

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from videojax import cli  # noqa: E402
from videojax.data import import_features as import_lib  # noqa: E402
from videojax.data import sources  # noqa: E402
from videojax.data.sources import csv_lists  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", cli.config_file("default.py"), "Experiment config: data.features_dir, "
    "data.num_frames, extract.shard_size, extract.num_workers and the split source.")

_SRC = flags.DEFINE_string("src", None, "Directory of per-video arrays [t, d], named after "
                           "the video ids (nested <Class>/<video>.npy or flat).", required=True)
_UCF_ROOT = flags.DEFINE_string("ucf_root", None, "Split source: a folder with classInd.txt, "
                                "trainlistNN.txt and testlistNN.txt (UCF-101 layout; "
                                "config.data.split says which NN).")
_TRAIN_CSV = flags.DEFINE_string("train_csv", None, "Split source: CSV of the training "
                                 "videos (header with a video and a class column); needs "
                                 "--test_csv.")
_TEST_CSV = flags.DEFINE_string("test_csv", None, "CSV of the test videos (with --train_csv).")
_CSV = flags.DEFINE_string("csv", None, "Split source: one CSV for both splits; "
                           "--split_column names each row's split (train or test).")
_SPLIT_COLUMN = flags.DEFINE_string("split_column", "split", "With --csv: the split column.")
_VIDEO_COLUMN = flags.DEFINE_string(
    "video_column", None, "CSV column of the video file or id; default the first of "
    f"{', '.join(csv_lists.VIDEO_COLUMNS)}.")
_LABEL_COLUMN = flags.DEFINE_string(
    "label_column", None, "CSV column of the class name; default the first of "
    f"{', '.join(csv_lists.LABEL_COLUMNS)}. Classes are the train labels, sorted.")
_GROUP_COLUMN = flags.DEFINE_string(
    "group_column", None, "CSV column of each video's group (the source video its clip was "
    "cut from; validation keeps groups whole); default the first of "
    f"{', '.join(csv_lists.GROUP_COLUMNS)} if present, else the group is read from the name.")
_FEATURE_DIM = flags.DEFINE_integer("feature_dim", None, "d to import; default the d most "
                                    "arrays have. Arrays of another d are recorded as failed.",
                                    lower_bound=1)
_KEY = flags.DEFINE_string("key", None, "Array to read from .npz/.mat/.h5 files holding "
                           "several; default the only 2-D numeric one.")
# Flags of before the config: refused with an error that names the config key.
RENAMED = {"features_dir": "config.data.features_dir", "num_frames": "config.data.num_frames",
           "split": "config.data.split", "shard_size": "config.extract.shard_size",
           "num_workers": "config.extract.num_workers"}


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  config = _CONFIG.value
  if not config.data.features_dir:
    raise ValueError("config.data.features_dir is empty; set --config.data.features_dir=PATH")
  if _UCF_ROOT.value or _TRAIN_CSV.value or _TEST_CSV.value or _CSV.value:
    source = import_lib.make_source(
        ucf_root=_UCF_ROOT.value, split=config.data.split, train_csv=_TRAIN_CSV.value,
        test_csv=_TEST_CSV.value, csv_path=_CSV.value, split_column=_SPLIT_COLUMN.value,
        video_column=_VIDEO_COLUMN.value, label_column=_LABEL_COLUMN.value,
        group_column=_GROUP_COLUMN.value)
  elif config.data.root:
    source = sources.get(config.data)
  else:
    raise ValueError("give a split source: --ucf_root, --train_csv with --test_csv, --csv, "
                     "or --config.data.root (with --config.data.layout)")
  report = import_lib.import_features(
      _SRC.value, config.data.features_dir, source=source, num_frames=config.data.num_frames,
      shard_size=config.extract.shard_size, key=_KEY.value, feature_dim=_FEATURE_DIM.value,
      num_workers=config.extract.num_workers)
  print(f"Done: {report['imported']} shard(s) written, {report['skipped']} already complete, "
        f"{len(report['failed'])} video(s) failed, d={report['feature_dim']}.")


if __name__ == "__main__":
  cli.run(main, renamed=RENAMED)
