r"""Evaluates trained runs, alone or as an ensemble, with optional test-time views.

  python scripts/evaluate.py --workdir runs/r18_gru --out runs/r18_gru/eval
  python scripts/evaluate.py --workdir runs/r18_gru,runs/r50_gru --tta original,faster \
      --out runs/ensemble

Writes metrics.json (top-1/top-5, macro precision/recall/F1, macro one-vs-rest
ROC AUC), per_class.csv, confusion.csv, confusion.png and probabilities.npz.
"""
import sys

from videojax import platform

platform.quiet_start(sys.argv)  # Before TensorFlow loads: no start-up banners unless --verbosity.

from absl import app, flags, logging  # noqa: E402

from videojax import cli  # noqa: E402
from videojax.tools import evaluate, tta  # noqa: E402

_WORKDIR = flags.DEFINE_multi_string(
    "workdir", None, "Run directories (scripts/train.py --workdir), comma-separated or the "
    "flag repeated. Each is evaluated at its best checkpoint; several make an ensemble whose "
    "probabilities are averaged. They must share the class list and the clips of --split; "
    "models and features (backbones) may differ.", required=True)
_OUT = flags.DEFINE_string("out", None, "Directory for the result files.", required=True)
_SPLIT = flags.DEFINE_string("split", "test", "Feature split to evaluate (shards named "
                             "<split>-*.h5).")
_TTA = flags.DEFINE_list(
    "tta", list(tta.DEFAULT), f"Test-time views, comma-separated, from: {', '.join(tta.MODES)}. "
    "Probabilities are averaged over every view (offsets gives three). original: the clip; "
    "reversed: played backwards (WRONG for classes told apart by direction, e.g. opening vs "
    "closing); faster: every 2nd frame; slower: the middle half, each frame twice; offsets: "
    "starts 1/8, 1/4, 3/8 of the way in. Views act on the positions each run reads.")
_FEATURES_DIR = flags.DEFINE_multi_string(
    "features_dir", None, "Evaluate on these features instead of each run's own: one dir "
    "for every run, or one per --workdir (comma-separated or repeated, in --workdir order). "
    "They must be made the same way (same backbone, weights, pooling, feature_dim and "
    "split lists; at least the run's num_frames, which are subsampled as in training), e.g. "
    "another crop (extract.crop); give a run once per crop to average over crops.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Clips per jitted call.")


def _paths(values: list[str] | None) -> list[str]:
  """Repeated flags, each possibly a comma list, as one list."""
  return [p for v in values or [] for p in v.split(",") if p]


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:  # Orbax logs every checkpoint at INFO.
    logging.set_verbosity(logging.WARNING)
  modes = tta.parse_modes(_TTA.value)
  evaluate.evaluate(_paths(_WORKDIR.value), _OUT.value, split=_SPLIT.value, tta=modes,
                    features_dirs=_paths(_FEATURES_DIR.value) or None,
                    batch_size=_BATCH_SIZE.value)


if __name__ == "__main__":
  cli.run(main)
