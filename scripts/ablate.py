r"""Trains every cell of a sweep, once per seed, and summarises the results.

  python scripts/ablate.py --config configs/default.py --workdir runs/ablation \
      --config.data.root=/data/UCF-101 \
      --sweep data.num_frames=8,16,32 --sweep extract.backbone=resnet18,efficientnet_lite0 \
      --sweep model.name=gru,meanpool --seeds 0,1,2

Features are extracted once per extraction setting, at the longest swept
data.num_frames, into <workdir>/features/; runs go to <workdir>/runs/<cell>/seed<k>/;
tables and plots to <workdir>/ (results.csv, summary.csv, summary.md, accuracy.png,
curves.png). Re-running skips finished runs and resumes interrupted ones.
Then: python scripts/report.py --workdir <workdir>
"""
import sys

from videojax import platform

platform.quiet_start(sys.argv)  # Before TensorFlow loads: no start-up banners unless --verbosity.

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402
from tqdm import tqdm  # noqa: E402

from videojax import cli  # noqa: E402
from videojax.tools import ablate  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", cli.config_file("default.py"), "Base experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "The ablation folder: features, runs, tables, "
                               "plots (--out before).", required=True)
_SWEEP = flags.DEFINE_multi_string(
    "sweep", [], "KEY=V1,V2,... : a config key and its values, parsed to the key's type "
    "(int, float, str, true/false, tuples in brackets: model.gru.hidden=(16,8),(32,16)). "
    "Repeat the flag to cross several keys.")
_SEEDS = flags.DEFINE_string("seeds", "0", "train.seed values, comma-separated; each cell "
                             "trains once per seed.")
_NO_PROBE = flags.DEFINE_bool("no_probe", False, "Leave out the linear probe (model "
                              "linear_probe, mean of the frames + one linear layer) that is "
                              "otherwise trained beside every sweep on the same features and "
                              "seeds.")


def main(argv):
  platform.split_cpu_into_devices()  # First: before JAX initialises its backends.
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if not flags.FLAGS["verbosity"].present:  # Orbax logs every checkpoint at INFO.
    logging.set_verbosity(logging.WARNING)
  out = ablate.run_ablation(_CONFIG.value, _WORKDIR.value, _SWEEP.value, _SEEDS.value,
                            echo=tqdm.write, probe=not _NO_PROBE.value)
  if out["files"]:
    print("\n" + out["files"]["summary_md"].read_text())


if __name__ == "__main__":
  cli.run(main, renamed={"out": "workdir"})
