"""Prints the top-k classes, with probabilities, of video files.

  python scripts/predict.py --workdir runs/demo/gru path/to/video.avi [more.mp4 ...]
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from videojax import cli  # noqa: E402
from videojax.data.video import VideoError  # noqa: E402
from videojax.tools.predict import Predictor  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "A trained run (scripts/train.py --workdir).",
                               required=True)
_TOP_K = flags.DEFINE_integer("top_k", 5, "How many classes to print.")


def main(argv):
  if not flags.FLAGS["verbosity"].present:  # Orbax logs every checkpoint at INFO.
    logging.set_verbosity(logging.WARNING)
  if len(argv) < 2:
    raise app.UsageError("give one or more video files")
  predictor = Predictor(_WORKDIR.value)
  print(predictor.chosen, file=sys.stderr)  # stderr: stdout stays one block per video.
  status = 0
  for path in argv[1:]:
    try:
      top = predictor.top_k(path, _TOP_K.value)
    except VideoError as e:
      print(f"{path}: error: {e}")
      status = 1
      continue
    print(path)
    for name, p in top:
      print(f"  {p:7.2%}  {name}")
  return status


if __name__ == "__main__":
  cli.run(main)
