"""The README's first command: the whole job on the embedded demo data.

Generates demo videos (UCF-101 layout), extracts features, trains the GRU and
the mean-pool baseline, evaluates both on the test split and prints a table.
"""
import sys

from videojax import platform

platform.quiet_start(sys.argv)  # Before TensorFlow loads: no start-up banners unless --verbosity.

from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from videojax import cli, demo  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", cli.config_file("demo.py"), "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", "runs/demo", "Where videos, features and runs go.")


def main(argv):
  platform.split_cpu_into_devices()  # First: before JAX initialises its backends.
  if not flags.FLAGS["verbosity"].present:  # Orbax logs every checkpoint at INFO.
    logging.set_verbosity(logging.WARNING)
  del argv
  demo.main(_CONFIG.value, _WORKDIR.value)

if __name__ == "__main__":
  cli.run(main)
