"""Extracts per-frame backbone features of a UCF-101-layout dataset into HDF5 shards.

  python scripts/extract_features.py --config configs/default.py \
      --config.data.root=/data/UCF-101 --config.data.features_dir=/data/feats_lite0

Re-running skips finished shards. --verify reads every shard back and moves damaged ones aside
for the next run to re-extract. --shard i --num_shards n lets n machines split the work;
in a multi-host run (see scripts/train.py) they default to the process index and count.
"""
import sys

from videojax import platform

platform.quiet_start(sys.argv)  # Before TensorFlow loads: no start-up banners unless --verbosity.

from absl import flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

import jax  # noqa: E402

from videojax import cli, distributed, extract  # noqa: E402

distributed.define_flags()  # --coordinator_address, --num_processes, ...
_CONFIG = config_flags.DEFINE_config_file(
    "config", cli.config_file("default.py"), "Experiment config.")
_SHARD = flags.DEFINE_integer("shard", None, "This worker's index in [0, num_shards) "
                              "(default: the JAX process index, 0 on one host).")
_NUM_SHARDS = flags.DEFINE_integer("num_shards", None, "Number of workers sharing the "
                                   "extraction (default: the JAX process count).")
_SPLITS = flags.DEFINE_list("splits", ["train", "test"], "Split lists to extract.")
_VERIFY = flags.DEFINE_bool("verify", False, "Extract nothing: read every shard of --splits "
                            "whole, move damaged ones to <features_dir>/damaged/ and exit "
                            "non-zero if there were any; a run without --verify then "
                            "re-extracts them.")


def main(argv):
  platform.split_cpu_into_devices()  # First: before JAX initialises its backends.
  if not flags.FLAGS["verbosity"].present:  # Orbax logs every checkpoint at INFO.
    logging.set_verbosity(logging.WARNING)
  distributed.initialize_from_flags()  # Before any JAX computation.
  del argv
  if _VERIFY.value:
    extract.verify_features(_CONFIG.value, splits=_SPLITS.value)
    return
  worker = jax.process_index() if _SHARD.value is None else _SHARD.value
  num_workers = jax.process_count() if _NUM_SHARDS.value is None else _NUM_SHARDS.value
  report = extract.extract_features(_CONFIG.value, splits=_SPLITS.value, worker=worker,
                                    num_workers=num_workers)
  print(f"Done: {report['extracted']} shard(s) written, {report['skipped']} already complete, "
        f"{len(report['failed'])} clip(s) failed.")


if __name__ == "__main__":
  cli.run(main)
