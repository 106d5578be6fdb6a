"""Frames/s of feature extraction: model only, decode only, end to end, one frame at a time.

  python benchmarks/bench_extract.py --backbone efficientnet_lite0 --image_size 112

Runs on the demo's generated videos (written to --data once) or on any UCF-101-layout
--root. "End to end" is `extract.extract_shard`, the code extraction runs: threads decode
while the device embeds packed batches. "One frame at a time" calls the same jitted
backbone on one frame per call, as the Keras CNN-RNN example calls `predict` per frame;
it is timed on already-decoded frames, which flatters it. Compilation is excluded
everywhere (a warm-up call first). Prints a Markdown table with the machine and versions.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import concurrent.futures  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import flax  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402
from tqdm import tqdm  # noqa: E402

from configs import demo as demo_config  # noqa: E402
from videojax import cli, extract, models, sharding  # noqa: E402
from videojax import platform as platform_lib  # noqa: E402 (not the standard library's)
from videojax.data import synthetic, video  # noqa: E402
from videojax.data.sources import ucf101  # noqa: E402

_BACKBONE = flags.DEFINE_string("backbone", "efficientnet_lite0",
                                f"One of {', '.join(models.BACKBONE_NAMES)}.")
_WEIGHTS = flags.DEFINE_string("weights", "random-init",
                               "imagenet, random-init or a file; speed does not depend on it.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 112, "Frame side in pixels.")
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 16, "T frames sampled per clip.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Frames per device call.")
_WORKERS = flags.DEFINE_integer("num_workers", 2, "Decoding threads.")
_CLIPS = flags.DEFINE_integer("clips", 120, "How many clips of the split to time.")
_ROOT = flags.DEFINE_string("root", "", "A UCF-101-layout dataset; default: the demo videos.")
_DATA = flags.DEFINE_string("data", os.path.join(tempfile.gettempdir(), "videojax_bench_videos"),
                            "Where the demo videos are generated when --root is empty.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repeats of the model-only batch (median).")
_OUT = flags.DEFINE_string("out", "", "Also write the table to this Markdown file.")


def _rate(frames: int, seconds: float) -> float:
  return frames / seconds


def _model_fps(embed, frames: np.ndarray) -> float:
  """Frames/s of `embed(frames)`: median of --repeats calls after a warm-up call."""
  embed(frames)
  times = []
  for _ in range(_REPEATS.value):
    t0 = time.perf_counter()
    embed(frames)
    times.append(time.perf_counter() - t0)
  return _rate(len(frames), float(np.median(times)))


def main(argv):
  del argv
  platform_lib.split_cpu_into_devices()  # As extract_features.py does.
  if _ROOT.value:
    root = pathlib.Path(_ROOT.value)
  else:
    root = synthetic.write_dataset(pathlib.Path(_DATA.value), seed=0,
                                   **demo_config.get_config().demo_data.to_dict())
  examples = ucf101.read_split(root, "train")[:_CLIPS.value]
  t, size = _NUM_FRAMES.value, _IMAGE_SIZE.value
  mesh = sharding.make_mesh(0, local=True)
  batch = math.ceil(_BATCH.value / mesh.devices.size) * mesh.devices.size
  module = models.create_backbone(_BACKBONE.value, pooling="avg", cpu_kernels=platform_lib.cpu_kernels())
  variables = models.load_backbone_variables(_BACKBONE.value, module, _WEIGHTS.value,
                                             image_size=size)
  embed = extract.make_embed_fn(_BACKBONE.value, module, variables, mesh)
  width = models.backbone_feature_dim(_BACKBONE.value)
  rng = np.random.default_rng(0)

  # Model only: the jitted, sharded backbone on a fixed batch.
  frames = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
  model_fps = _model_fps(embed, frames)

  # Decode only: the same threads and calls extraction uses, no model.
  def decode(e):
    return video.read_video_views(e.path, t, size, (1.0,))

  t0 = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(_WORKERS.value) as pool:
    decoded = list(tqdm(pool.map(decode, examples), total=len(examples), desc="decode",
                        disable=None))
  decode_s = time.perf_counter() - t0
  num_frames = sum(d[2] for d in decoded)
  decode_fps = _rate(num_frames, decode_s)

  # End to end: extract_shard, writing a real shard.
  spec = {"backbone": _BACKBONE.value, "num_frames": t, "image_size": size, "pooling": "avg"}
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    with tqdm(total=len(examples), desc="end to end", disable=None) as progress:
      extract.extract_shard(examples, pathlib.Path(tmp) / "bench-00000-of-00001.h5",
                            embed=embed, spec=spec, class_names=ucf101.read_class_names(root),
                            feature_dim=width, batch_size=batch,
                            num_workers=_WORKERS.value, progress=progress)
    e2e_fps = _rate(num_frames, time.perf_counter() - t0)

  # One frame per call (Keras example style), on frames decoded above.
  single_mesh = sharding.make_mesh(1, local=True)
  one = extract.make_embed_fn(_BACKBONE.value, module, variables, single_mesh)
  sample = [f[None] for d in decoded[:4] for f in d[0]][:64]
  one(sample[0])
  t0 = time.perf_counter()
  for f in sample:
    one(f)
  single_fps = _rate(len(sample), time.perf_counter() - t0)
  # The same batch as "model only" on that one device: how much batching
  # alone gains per device, the other factor of the 5x target besides the
  # device count.
  model1_fps = _model_fps(one, frames)

  bound = min(model_fps, decode_fps)
  rows = [
      ("model only (jit, batch %d, %d device(s))" % (batch, mesh.devices.size), model_fps, ""),
      ("decode only (%d threads, %d clips, %d frames)" % (_WORKERS.value, len(examples),
                                                          num_frames), decode_fps, ""),
      ("end to end (extract_shard)", e2e_fps,
       f"{e2e_fps / bound:.0%} of min(model, decode); target >= 80%"),
      ("one frame per call (batch 1, 1 device)", single_fps,
       f"end to end is {e2e_fps / single_fps:.1f}x this; target >= 5x"),
      ("model only (jit, batch %d, 1 device)" % batch, model1_fps,
       f"{model1_fps / single_fps:.1f}x one frame per call on the same device"),
  ]
  dev = jax.devices()[0]
  lines = [
      f"`{' '.join([pathlib.Path(sys.argv[0]).name] + sys.argv[1:])}`",
      "",
      f"{_BACKBONE.value} at {size} px, T = {t}, avg pooling, fp32. Machine: "
      f"{platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPU cores, "
      f"{len(jax.devices())} x {dev.device_kind}; jax {jax.__version__}, flax "
      f"{flax.__version__}, Python {platform.python_version()}.",
      "",
      "| stage | frames/s | note |",
      "|---|---|---|",
      *[f"| {name} | {fps:.1f} | {note} |" for name, fps, note in rows],
  ]
  table = "\n".join(lines)
  print("\n" + table)
  if _OUT.value:
    pathlib.Path(_OUT.value).write_text(table + "\n")


if __name__ == "__main__":
  cli.run(main)
