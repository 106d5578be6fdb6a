"""Prints the top-k classes, with probabilities, of video files.

  python scripts/predict.py --workdir runs/demo/gru path/to/video.avi [more.mp4 ...]
"""
import sys

from videojax import platform

platform.quiet_start(sys.argv)  # Before TensorFlow loads: no start-up banners unless --verbosity.

from absl import app, flags, logging  # noqa: E402

from videojax import cli  # noqa: E402
from videojax.tools import predict  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained run (scripts/train.py --workdir).",
                               required=True)
_TOP_K = flags.DEFINE_integer("top_k", 5, "How many classes to print.")


def main(argv):
  if not flags.FLAGS["verbosity"].present:  # Orbax logs every checkpoint at INFO.
    logging.set_verbosity(logging.WARNING)
  if len(argv) < 2:
    raise app.UsageError("give one or more video files")
  return predict.print_top_k(_WORKDIR.value, argv[1:], _TOP_K.value)

if __name__ == "__main__":
  cli.run(main)
