"""Trains a temporal model on extracted features and evaluates it on the test split.

  python scripts/train.py --config configs/default.py --workdir runs/r18_gru \
      --config.data.features_dir=/data/feats_r18 --config.model.name=gru
  python scripts/train.py --config configs/default.py:meanpool,t32 --workdir runs/mp_t32 \
      --config.data.features_dir=/data/feats_lite0_t32

Variants after ':' (a model, a backbone, t<frames>, KEY=VALUE; videojax/config_variants.py)
apply first, then --config.<key>=<value> overrides.

Re-running with the same --workdir resumes from the latest checkpoint.
Multi-host: run it on every host with --coordinator_address/--num_processes/--process_id
(or the JAX_* environment, or under srun); see README "Scale out".
"""
import sys

from videojax import platform

platform.quiet_start(sys.argv)  # Before TensorFlow loads: no start-up banners unless --verbosity.

from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from videojax import cli, distributed, train  # noqa: E402

distributed.define_flags()  # --coordinator_address, --num_processes, ...
_CONFIG = config_flags.DEFINE_config_file(
    "config", cli.config_file("default.py"), "Experiment config.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints, logs and results go here.",
                               required=True)


def main(argv):
  platform.split_cpu_into_devices()  # First: before JAX initialises its backends.
  if not flags.FLAGS["verbosity"].present:  # Orbax logs every checkpoint at INFO.
    logging.set_verbosity(logging.WARNING)
  distributed.initialize_from_flags()  # Before any JAX computation.
  del argv
  train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
  cli.run(main)
