"""Frames/s of feature extraction: model only, decode only, end to end, one frame at a time.

  python benchmarks/bench_extract.py --backbone efficientnet_lite0 --image_size 112
  python benchmarks/bench_extract.py --backbone resnet50 --image_size 224 --vs_keras

Runs on the demo's generated videos (written to --data once) or on any UCF-101-layout
--root. "End to end" is `extract.extract_shard`, the code extraction runs: threads decode
while the device embeds packed batches. "One frame at a time" calls the same jitted
backbone on one frame per call, as the Keras CNN-RNN example calls `predict` per frame;
it is timed on already-decoded frames, which flatters it. Compilation is excluded
everywhere (a warm-up call first). Decode only is timed at each --num_workers count, and
pipeline efficiency = end to end / min(model only, decode only) says how well the threads
hide decoding behind the model. Prints a Markdown table with the machine and versions.

--vs_keras times Keras's twin of the backbone (keras.applications.ResNet50 for resnet50)
on the same frames and cores instead, interleaved with ours: model only and end to end
(Keras: decode a clip, `predict` its frames, as the Keras CNN-RNN example), with the
ratio ours / Keras and GMAC/s. Keras is imported in that mode only.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# --vs_keras compares with Keras as its users run it: TensorFlow's oneDNN kernels on, its default
# on x86 (platform.quiet_start, which the training scripts call, turns them off; not called here).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import math  # noqa: E402
import pathlib  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import flax  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402
from tqdm import tqdm  # noqa: E402

# This folder's shared helpers (the script's own folder is first on sys.path).
import bench_lib  # noqa: E402
from configs import demo as demo_config  # noqa: E402
from videojax import cli, extract, models, sharding  # noqa: E402
from videojax import platform as platform_lib  # noqa: E402 (not the standard library's)
from videojax.data import synthetic, video  # noqa: E402
from videojax.data.sources import ucf101  # noqa: E402
from videojax.errors import UserError  # noqa: E402

_BACKBONE = flags.DEFINE_string("backbone", "efficientnet_lite0",
                                f"One of {', '.join(models.BACKBONE_NAMES)}.")
_WEIGHTS = flags.DEFINE_string("weights", "random-init",
                               "imagenet, random-init or a file; speed does not depend on it.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", 112, "Frame side in pixels.")
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 16, "T frames sampled per clip.")
_BATCH = flags.DEFINE_integer("batch_size", 128, "Frames per device call.")
_WORKERS = flags.DEFINE_list(
    "num_workers", ["1", "2"], "Decoding threads (a list): decode only is timed at each "
    "count, end to end at the last.")
_CLIPS = flags.DEFINE_integer("clips", 120, "How many clips of the split to time.")
_ROOT = flags.DEFINE_string("root", "", "A UCF-101-layout dataset; default: the demo videos.")
_DATA = flags.DEFINE_string("data", os.path.join(tempfile.gettempdir(), "videojax_bench_videos"),
                            "Where the demo videos are generated when --root is empty.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed repeats of the model-only batch (median).")
_VS_KERAS = flags.DEFINE_bool(
    "vs_keras", False, "Instead of the stages table: ours against Keras's same backbone "
    "(resnet50), model only and end to end, "
    "interleaved, with GMAC/s.")
_ROUNDS = flags.DEFINE_integer("rounds", 2, "--vs_keras: interleaved end-to-end rounds "
                               "(ours then Keras, each a pass over the clips).")
_OUT = flags.DEFINE_string("out", "", "Also write the table to this Markdown file.")

# Keras applications with the same architecture as one of ours (--vs_keras), and the
# input preprocessing each applies. Keras's ResNet50 is v1 (stride 2 in the first 1x1
# convolution of a downsampling block), ours v1.5 (stride 2 in the 3x3): the same layers
# and parameters, about 5 % more multiply-adds for v1.5 at 224 px (the MAC rows show both).
KERAS_TWINS = {"resnet50": ("ResNet50", "resnet50")}
_HOST = ["?"]  # bench_lib.machine() as main starts: its load average is the one at the start.


def _workers() -> list[int]:
  try:
    workers = [int(w) for w in _WORKERS.value]
  except ValueError as e:
    raise UserError(f"--num_workers takes integers, e.g. 1,2: {e}") from e
  if not workers or min(workers) < 1:
    raise UserError("--num_workers: each count must be >= 1")
  return workers


def _examples():
  if _ROOT.value:
    root = pathlib.Path(_ROOT.value)
  else:
    root = synthetic.write_dataset(pathlib.Path(_DATA.value), seed=0,
                                   **demo_config.get_config().demo_data.to_dict())
  return root, ucf101.read_split(root, "train")[:_CLIPS.value]


def _end_to_end(examples, root, embed, batch: int, workers: int) -> float:
  """Seconds of `extract.extract_shard` over `examples`, writing a real shard."""
  spec = {"backbone": _BACKBONE.value, "num_frames": _NUM_FRAMES.value,
          "image_size": _IMAGE_SIZE.value, "pooling": "avg"}
  with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    with tqdm(total=len(examples), desc="end to end", disable=None) as progress:
      extract.extract_shard(examples, pathlib.Path(tmp) / "bench-00000-of-00001.h5",
                            embed=embed, spec=spec, class_names=ucf101.read_class_names(root),
                            feature_dim=models.backbone_feature_dim(_BACKBONE.value),
                            batch_size=batch, num_workers=workers, progress=progress)
    return time.perf_counter() - t0


def _header(precision: str = "fp32") -> list[str]:
  dev = jax.devices()[0]
  return [
      f"`{' '.join([pathlib.Path(sys.argv[0]).name] + sys.argv[1:])}`",
      "",
      f"{_BACKBONE.value} at {_IMAGE_SIZE.value} px, T = {_NUM_FRAMES.value}, avg pooling, "
      f"{precision}. Machine: {_HOST[0]}; {len(jax.devices())} x "
      f"{dev.device_kind}; jax {jax.__version__}, flax {flax.__version__}, Python "
      f"{platform.python_version()}.",
      "",
  ]


def _report(lines: list[str]) -> None:
  lines = lines + ["", f"Load average at the end: {bench_lib.load_average()}."]
  table = "\n".join(lines)
  print("\n" + table)
  if _OUT.value:
    pathlib.Path(_OUT.value).write_text(table + "\n")


def stages():
  """The stages table: model only, decode only per worker count, end to end, one frame."""
  workers = _workers()
  root, examples = _examples()
  t, size = _NUM_FRAMES.value, _IMAGE_SIZE.value
  mesh = sharding.make_mesh(0, local=True)
  batch = math.ceil(_BATCH.value / mesh.devices.size) * mesh.devices.size
  module, variables = bench_lib.backbone(_BACKBONE.value, size, weights=_WEIGHTS.value)
  embed = bench_lib.embed_fn(_BACKBONE.value, module, variables, mesh)
  rng = np.random.default_rng(0)

  # Model only: the jitted, sharded backbone on a fixed batch.
  frames = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
  model_fps = bench_lib.frames_per_second(embed, frames, _REPEATS.value)

  # Decode only: the same threads and calls extraction uses, no model; per worker count.
  decode_fps = {}
  for w in workers:
    decode_fps[w], decoded, num_frames = bench_lib.decode_rate(examples, t, size, w)

  # End to end: extract_shard, writing a real shard, with the last worker count.
  e2e_fps = num_frames / _end_to_end(examples, root, embed, batch, workers[-1])

  # One frame per call (Keras example style), on frames decoded above.
  single_mesh = sharding.make_mesh(1, local=True)
  one = bench_lib.embed_fn(_BACKBONE.value, module, variables, single_mesh)
  sample = [f[None] for d in decoded[:4] for f in d[0]][:64]
  np.asarray(one(sample[0]))
  t0 = time.perf_counter()
  for f in sample:
    np.asarray(one(f))  # Each frame waited for, as a loop over single frames is.
  single_fps = len(sample) / (time.perf_counter() - t0)
  # The same batch as "model only" on that one device: how much batching
  # alone gains per device, the other factor of the 5x target besides the
  # device count.
  model1_fps = bench_lib.frames_per_second(one, frames, _REPEATS.value)

  last = workers[-1]
  bound = min(model_fps, decode_fps[last])
  macs = bench_lib.macs_per_frame(_BACKBONE.value, module, variables, size)
  rows = [("model only (jit, batch %d, %d device(s))" % (batch, mesh.devices.size), model_fps,
           f"{model_fps * macs / 1e9:.1f} GMAC/s ({macs / 1e9:.2f} GMAC per frame)")]
  for w in workers:
    rows.append((f"decode only ({w} thread(s), {len(examples)} clips, {num_frames} frames)",
                 decode_fps[w], f"{decode_fps[w] / decode_fps[workers[0]]:.2f}x "
                 f"{workers[0]} thread(s)" if w != workers[0] else ""))
  rows += [
      (f"end to end (extract_shard, {last} thread(s))", e2e_fps,
       f"pipeline efficiency {e2e_fps / bound:.0%} = end to end / min(model only, decode "
       f"only at {last}); target >= 90%"),
      ("one frame per call (batch 1, 1 device)", single_fps,
       f"end to end is {e2e_fps / single_fps:.1f}x this; target >= 5x"),
      ("model only (jit, batch %d, 1 device)" % batch, model1_fps,
       f"{model1_fps / single_fps:.1f}x one frame per call on the same device"),
  ]
  _report(_header() + [
      "| stage | frames/s | note |",
      "|---|---|---|",
      *[f"| {name} | {fps:.1f} | {note} |" for name, fps, note in rows],
  ])


def vs_keras():
  """Ours against Keras's same backbone: model only and end to end, interleaved."""
  if _BACKBONE.value not in KERAS_TWINS:
    raise UserError(f"--vs_keras: Keras has no twin of {_BACKBONE.value!r}; accepted "
                    f"--backbone: {', '.join(KERAS_TWINS)}")
  workers = _workers()[-1]
  root, examples = _examples()
  t, size = _NUM_FRAMES.value, _IMAGE_SIZE.value
  mesh = sharding.make_mesh(0, local=True)
  batch = math.ceil(_BATCH.value / mesh.devices.size) * mesh.devices.size
  module, variables = bench_lib.backbone(_BACKBONE.value, size, weights=_WEIGHTS.value)
  embed = bench_lib.embed_fn(_BACKBONE.value, module, variables, mesh)
  ours_macs = bench_lib.macs_per_frame(_BACKBONE.value, module, variables, size)

  # Keras only here: a benchmark-only dependency (tensorflow-cpu brings Keras 3).
  os.environ.setdefault("KERAS_BACKEND", "tensorflow")
  import keras
  import tensorflow as tf
  from tensorflow.python.util import _pywrap_util_port

  cls, prep = KERAS_TWINS[_BACKBONE.value]
  twin = getattr(keras.applications, cls)(weights=None, include_top=False, pooling="avg",
                                          input_shape=(size, size, 3))
  preprocess = getattr(keras.applications, prep).preprocess_input
  keras_macs = bench_lib.keras_macs_per_frame(twin)

  def keras_embed(frames):
    return twin.predict_on_batch(preprocess(frames.astype(np.float32)))

  rng = np.random.default_rng(0)
  frames = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
  # Model only, interleaved: one warm-up call each, then ours and Keras in turn.
  np.asarray(embed(frames))
  keras_embed(frames)
  model = {"ours": [], "keras": []}
  for _ in range(max(1, _REPEATS.value)):
    for name, fn in (("ours", embed), ("keras", keras_embed)):
      t0 = time.perf_counter()
      np.asarray(fn(frames))  # Ours is dispatched asynchronously: wait for it.
      model[name].append(batch / (time.perf_counter() - t0))

  # End to end: ours is extract_shard (decoding threads overlapped with the device);
  # Keras is the CNN-RNN example's loop: decode a clip, `predict` its frames as one batch.
  def keras_end_to_end():
    t0 = time.perf_counter()
    for e in tqdm(examples, desc="keras end to end", disable=None):
      clip, length = video.read_video(e.path, t, size)
      twin.predict(preprocess(clip[:length].astype(np.float32)), verbose=0)
    return time.perf_counter() - t0

  # Also warms the page cache for both.
  num_frames = sum(video.read_video(e.path, t, size)[1] for e in examples)
  e2e = {"ours": [], "keras": []}
  for _ in range(max(1, _ROUNDS.value)):
    e2e["ours"].append(num_frames / _end_to_end(examples, root, embed, batch, workers))
    e2e["keras"].append(num_frames / keras_end_to_end())

  def cell(rates):
    return f"{statistics.median(rates):.1f} ({min(rates):.1f}-{max(rates):.1f})"

  def gmacs(rates, macs):
    return f"{statistics.median(rates) * macs / 1e9:.1f}"

  rows = []
  for stage, rates in ((f"model only (batch {batch})", model),
                       (f"end to end ({len(examples)} clips, {num_frames} frames)", e2e)):
    ratio = statistics.median(rates["ours"]) / statistics.median(rates["keras"])
    rows.append(f"| {stage} | {cell(rates['ours'])} | {cell(rates['keras'])} | **{ratio:.2f}** "
                f"| {gmacs(rates['ours'], ours_macs)} | {gmacs(rates['keras'], keras_macs)} |")
  # What TensorFlow loaded with, not what the environment asked for.
  onednn = "on" if _pywrap_util_port.IsMklEnabled() else "off"
  _report(_header() + [
      f"Ours: `extract.make_embed_fn` on {mesh.devices.size} XLA device(s); end to end "
      f"`extract.extract_shard` with {workers} decoding thread(s). Keras {keras.__version__} "
      f"(TensorFlow {tf.__version__}, oneDNN {onednn}, "
      f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'} intra-op "
      f"threads): keras.applications.{cls}(weights=None, include_top=False, "
      "pooling='avg'), `predict_on_batch` for model only; end to end decodes each clip with "
      "the same `video.read_video` and calls `predict` on its frames, one clip at a time, as "
      "the Keras CNN-RNN example does. Both include their input preprocessing. Interleaved: "
      f"{_REPEATS.value} model-only repeats and {_ROUNDS.value} end-to-end round(s), median "
      "(min-max) frames/s.",
      "",
      f"Multiply-adds per frame, convolutions and matmuls counted from their shapes: ours "
      f"{ours_macs / 1e9:.3f} G (ResNet v1.5, from the traced program, "
      f"`bench_lib.macs_per_frame`), Keras {keras_macs / 1e9:.3f} G (ResNet v1, from its "
      "Conv2D and Dense layers). GMAC/s = frames/s x these.",
      "",
      "| stage | ours frames/s | Keras frames/s | ours / Keras | ours GMAC/s | Keras GMAC/s |",
      "|---|---|---|---|---|---|",
      *rows,
  ])


def main(argv):
  del argv
  _HOST[0] = bench_lib.machine()
  platform_lib.split_cpu_into_devices()  # As extract_features.py does.
  if _VS_KERAS.value:
    vs_keras()
  else:
    stages()


if __name__ == "__main__":
  cli.run(main)
