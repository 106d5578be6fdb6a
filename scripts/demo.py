"""The README's first command: the whole job on the embedded demo data.

Generates demo videos (UCF-101 layout), extracts features, trains the GRU and
the mean-pool baseline, evaluates both on the test split and prints a table.
"""
import copy
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from videojax import cli, config_check, demo, platform  # noqa: E402
from videojax.data.sources import ucf101  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", "configs/demo.py", "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Where videos, features and runs go.")


def main(argv):
  platform.split_cpu_into_devices()  # First: before JAX initialises its backends.
  if not flags.FLAGS["verbosity"].present:  # Orbax logs every checkpoint at INFO.
    logging.set_verbosity(logging.WARNING)
  del argv
  # The demo sets the paths itself; check the rest before any video is generated.
  config = copy.deepcopy(_CONFIG.value)
  config.data.root = config.data.features_dir = _WORKDIR.value
  for stage in config_check.STAGES:
    config_check.validate(config, stage)
  t0 = time.time()
  out = demo.run_demo(_CONFIG.value, _WORKDIR.value)
  print("\n" + out["table"])
  print(f"\nTotal {time.time() - t0:.0f} s. Checkpoints, metrics.jsonl and TensorBoard logs: "
        f"{_WORKDIR.value}/<model>/; table: {_WORKDIR.value}/results.md")
  clip = ucf101.read_split(f"{_WORKDIR.value}/videos", "test")[0].path
  print(f"Try: python scripts/predict.py --workdir {_WORKDIR.value}/gru {clip}")


if __name__ == "__main__":
  cli.run(main)
