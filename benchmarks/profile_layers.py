"""Where ResNet-50's time goes on the CPU: each convolution, XLA:CPU against TensorFlow/oneDNN.

  python benchmarks/profile_layers.py --batch 32 --repeats 5 --out profile.md
  python benchmarks/profile_layers.py --variants default,eigen --devices 1 --nowhole_model
  python benchmarks/profile_layers.py --dry_run          # tiny shapes, no TensorFlow

Every distinct convolution of our ResNet-50 (v1.5) at --image_size is read from its traced
program (`jax.make_jaxpr`), with how often it occurs, and timed at --batch frames two ways,
interleaved, --repeats rounds, median: a jitted `jax.lax.conv_general_dilated` (NHWC/HWIO, as
flax's nn.Conv calls it) and `tf.nn.conv2d` in a `tf.function` with TensorFlow's oneDNN kernels
on (`TF_ENABLE_ONEDNN_OPTS=1` unless set otherwise; the table says which ran). --fuse adds what
inference batch norm and ReLU become, `relu(conv * scale + bias)`, to both. Each XLA column is
one --variants entry (named XLA:CPU compile options, `VARIANTS`, applied per compilation, so the
variants interleave in one process) on --devices XLA CPU devices, the batch split over them as
extraction splits it. TensorFlow runs on its default intra-op pool (every core).

Per layer: ms per batch, GMAC/s and ours / TensorFlow (> 1: ours faster); the total weights each
layer by its count in ResNet-50. "cores" is process CPU time / wall time while it ran: how many
cores the kernel kept busy (or got, on a shared machine); frames per CPU-s, the whole model's
frames over its process CPU time, is the figure least moved by other jobs' load. The whole-model
row times our ResNet-50 (preprocessing and `module.apply`, jitted as `extract.make_embed_fn`
does, with each variant's options) against
`keras.applications.ResNet50(weights=None, include_top=False, pooling='avg')` `predict_on_batch`
(with its `preprocess_input`) on the same uint8 frames; each variant's features are compared with
the default variant's (max |diff| / max |default|). The backbone has no matmul (no classifier), so
the table holds convolutions only; a dot_general in the traced program would be listed as such.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorFlow as its users run it on x86 (oneDNN is its default there); platform.quiet_start turns
# it off for the training scripts, so say it explicitly.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import collections  # noqa: E402
import dataclasses  # noqa: E402
import math  # noqa: E402
import pathlib  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

import bench_lib  # noqa: E402 (this folder's shared helpers)
from videojax import cli, extract, models, sharding  # noqa: E402
from videojax.errors import UserError  # noqa: E402

# XLA:CPU compile options of jaxlib 0.10.2 (`Compiled.compile(compiler_options=...)`), by name;
# "a+b" merges two. "default" is what extraction compiles: convolutions and dots as YNNPACK
# fusions. "eigen" leaves convolutions to XLA's own (Eigen) kernels, dots to YNNPACK.
# (xla_cpu_use_onednn, xla_cpu_experimental_onednn_*, xla_cpu_experimental_xnn_fusion_type and
# the XNN graph fusion left the compiled program unchanged: BENCHMARKS.md.)
VARIANTS = {
    "default": {},
    "eigen": {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"},
    "no_xnnpack": {"xla_cpu_use_xnnpack": False},
    "fast_math": {"xla_cpu_enable_fast_math": True},
    "vector512": {"xla_cpu_prefer_vector_width": 512},
    "one_thread": {"xla_cpu_multi_thread_eigen": False},
}


def variant_options(name: str) -> dict:
  """The compile options of --variants entry `name` ('eigen+fast_math' merges two)."""
  options = {}
  for part in name.split("+"):
    if part not in VARIANTS:
      raise UserError(f"--variants: unknown {part!r} in {name!r}; accepted: "
                      f"{', '.join(VARIANTS)}, joined by '+'")
    options.update(VARIANTS[part])
  return options


_IMAGE_SIZE = flags.DEFINE_integer("image_size", 224, "Frame side in pixels.")
_BATCH = flags.DEFINE_integer("batch", 32, "Frames per call (split over --devices).")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Interleaved timed rounds (median).")
_VARIANTS = flags.DEFINE_list("variants", ["default"], f"XLA columns: {', '.join(VARIANTS)}; "
                              "'a+b' merges two.")
_DEVICES = flags.DEFINE_list("devices", ["1", "2"], "XLA CPU device counts, one column each.")
_FUSE = flags.DEFINE_bool("fuse", False, "Each convolution followed by relu(y * scale + bias).")
_TF = flags.DEFINE_bool("tf", True, "Time TensorFlow/oneDNN (and Keras) too.")
_WHOLE = flags.DEFINE_bool("whole_model", True, "Add the whole-model row.")
_LAYERS = flags.DEFINE_bool("layers", True, "Time the layers.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "32 px, batch 2, 1 repeat, no TensorFlow, no "
                             "whole model: that the script runs.")
_OUT = flags.DEFINE_string("out", "", "Also write the Markdown to this file.")


@dataclasses.dataclass(frozen=True)
class Conv:
  """One convolution as the model calls it (NHWC input of one frame, HWIO kernel)."""
  h: int
  w: int
  c_in: int
  kh: int
  kw: int
  c_out: int
  stride: int
  padding: tuple[tuple[int, int], ...]

  def out_hw(self) -> tuple[int, int]:
    (pt, pb), (pl, pr) = self.padding
    return ((self.h + pt + pb - self.kh) // self.stride + 1,
            (self.w + pl + pr - self.kw) // self.stride + 1)

  def macs(self) -> int:
    """Multiply-adds per frame."""
    return math.prod(self.out_hw()) * self.kh * self.kw * self.c_in * self.c_out

  def name(self) -> str:
    return (f"{self.kh}x{self.kw}/{self.stride} {self.c_in}->{self.c_out} at "
            f"{self.h}x{self.w}")


def model_layers(image_size: int) -> tuple[collections.Counter, list[str]]:
  """(Counter of ResNet-50's convolutions per frame, names of other contractions), traced."""
  import jax.extend.core as jcore

  module = models.create_backbone("resnet50", pooling="avg", cpu_kernels=False)
  frame = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32)
  shapes = jax.eval_shape(module.init, jax.random.key(0), frame)
  jaxpr = jax.make_jaxpr(module.apply)(shapes, frame).jaxpr
  convs, others = collections.Counter(), []

  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      if eqn.primitive.name == "conv_general_dilated":
        p = eqn.params
        lhs, rhs = eqn.invars[0].aval.shape, eqn.invars[1].aval.shape
        if (p["dimension_numbers"].lhs_spec != (0, 3, 1, 2) or
            p["dimension_numbers"].rhs_spec != (3, 2, 0, 1) or p["feature_group_count"] != 1 or
            set(p["window_strides"]) != {p["window_strides"][0]} or
            set(p["lhs_dilation"] + p["rhs_dilation"]) != {1}):
          raise UserError(f"profile_layers: a convolution it cannot time: {eqn}")
        convs[Conv(lhs[1], lhs[2], lhs[3], rhs[0], rhs[1], rhs[3], p["window_strides"][0],
                   tuple(tuple(x) for x in p["padding"]))] += 1
      elif eqn.primitive.name == "dot_general":
        others.append(f"dot_general {eqn.invars[0].aval.shape} x {eqn.invars[1].aval.shape}")
      for sub in eqn.params.values():
        if isinstance(sub, (jcore.ClosedJaxpr, jcore.Jaxpr)):
          walk(getattr(sub, "jaxpr", sub))

  walk(jaxpr)
  return convs, others


def timed(fn, *args) -> tuple[float, float]:
  """(wall s, process CPU s) of one call of `fn(*args)`, waited for."""
  c0, t0 = time.process_time(), time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - t0, time.process_time() - c0


def xla_conv(conv: Conv, batch: int, devices: int, options: dict, fuse: bool, arrays):
  """The layer jitted and compiled with `options`, its batch split over `devices`: a no-argument
  callable."""
  mesh = sharding.make_mesh(devices, local=True)
  data, repl = sharding.batch_sharded(mesh), sharding.replicated(mesh)
  x, w, scale, bias = arrays

  def layer(x, w, scale, bias):
    y = jax.lax.conv_general_dilated(x, w, (conv.stride,) * 2, conv.padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return jax.nn.relu(y * scale + bias) if fuse else y

  args = (jax.device_put(x, data), *jax.device_put((w, scale, bias), repl))
  compiled = jax.jit(layer, in_shardings=(data, repl, repl, repl), out_shardings=data).lower(
      *args).compile(compiler_options=options)
  return lambda: compiled(*args)


def tf_conv(conv: Conv, fuse: bool, arrays):
  import tensorflow as tf

  x, w, scale, bias = (tf.constant(a) for a in arrays)
  padding = [[0, 0], list(conv.padding[0]), list(conv.padding[1]), [0, 0]]

  @tf.function
  def layer(x):
    y = tf.nn.conv2d(x, w, strides=conv.stride, padding=padding)
    # bias_add, so that TensorFlow's remapper may fuse it (and the ReLU) into the convolution.
    return tf.nn.relu(tf.nn.bias_add(y * scale, bias)) if fuse else y

  return lambda: layer(x)


def whole_xla(module, variables, frames: np.ndarray, devices: int, options: dict):
  """Our ResNet-50 on u8 frames, extraction's `extract.make_embed_fn` compiled with `options`."""
  mesh = sharding.make_mesh(devices, local=True)
  embed = extract.make_embed_fn("resnet50", module, variables, mesh, compiler_options=options)
  return lambda: np.asarray(embed(frames))


def interleave(fns: dict, repeats: int) -> dict:
  """{name: (median wall s, median cores, median CPU s)}: a warm-up call each, then `repeats`
  rounds in turn."""
  for fn in fns.values():
    jax.block_until_ready(fn())
  walls, cpus = collections.defaultdict(list), collections.defaultdict(list)
  for _ in range(max(1, repeats)):
    for name, fn in fns.items():
      wall, cpu = timed(fn)
      walls[name].append(wall)
      cpus[name].append(cpu)
  return {n: (statistics.median(walls[n]),
              statistics.median(c / w for c, w in zip(cpus[n], walls[n])),
              statistics.median(cpus[n])) for n in fns}


def tf_versions() -> str:
  import tensorflow as tf
  from tensorflow.python.util import _pywrap_util_port

  state = "on" if _pywrap_util_port.IsMklEnabled() else "off"
  return (f"TensorFlow {tf.__version__} (oneDNN {state}, "
          f"{tf.config.threading.get_intra_op_parallelism_threads() or 'default'} intra-op "
          "threads)")


def main(argv):
  del argv
  host = bench_lib.machine()
  dry = _DRY_RUN.value
  size, batch, repeats = (32, 2, 1) if dry else (_IMAGE_SIZE.value, _BATCH.value, _REPEATS.value)
  use_tf = _TF.value and not dry
  if not _VARIANTS.value:
    raise UserError(f"--variants: name one or more of {', '.join(VARIANTS)}")
  options = {v: variant_options(v) for v in _VARIANTS.value}
  try:
    device_counts = [int(d) for d in _DEVICES.value]
  except ValueError as e:
    raise UserError(f"--devices takes integers, e.g. 1,2: {e}") from e
  jax.config.update("jax_num_cpu_devices", max(device_counts))
  if max(device_counts) > len(jax.devices()) or min(device_counts) < 1:
    raise UserError(f"--devices: 1 to {len(jax.devices())} accepted")
  if any(batch % d for d in device_counts):
    raise UserError(f"--batch {batch} must divide over each of --devices {device_counts}")
  columns = [(v, d) for v in _VARIANTS.value for d in device_counts]
  col_name = {c: f"XLA {c[0]}, {c[1]} dev" for c in columns}
  fuse = _FUSE.value
  rng = np.random.default_rng(0)
  lines = [
      f"`{' '.join([pathlib.Path(sys.argv[0]).name] + sys.argv[1:])}`",
      "",
      f"ResNet-50 v1.5 at {size} px, batch {batch}, f32, {repeats} interleaved rounds, median"
      f"{'; each convolution followed by relu(y * scale + bias)' if fuse else ''}. Machine: "
      f"{host}; jax {jax.__version__}"
      + (f"; {tf_versions()}" if use_tf else "; no TensorFlow") + ".",
      "",
  ]

  convs, others = model_layers(size)
  if _LAYERS.value:
    head = ["layer", "count", "GMAC/frame"] + [f"{col_name[c]} ms (GMAC/s, cores)"
                                                for c in columns]
    if use_tf:
      head += ["TF oneDNN ms (GMAC/s, cores)"] + [f"{col_name[c]} / TF" for c in columns]
    rows, total = [], collections.Counter()
    for conv, count in sorted(convs.items(), key=lambda kv: -kv[0].macs() * kv[1]):
      oh, ow = conv.out_hw()
      arrays = (rng.standard_normal((batch, conv.h, conv.w, conv.c_in), np.float32),
                (rng.standard_normal((conv.kh, conv.kw, conv.c_in, conv.c_out)) /
                 math.sqrt(conv.kh * conv.kw * conv.c_in)).astype(np.float32),
                rng.uniform(0.5, 1.5, conv.c_out).astype(np.float32),
                rng.standard_normal(conv.c_out).astype(np.float32))
      fns = {c: xla_conv(conv, batch, c[1], options[c[0]], fuse, arrays) for c in columns}
      if use_tf:
        fns["tf"] = tf_conv(conv, fuse, arrays)
      result = interleave(fns, repeats)
      gmac = conv.macs() * batch / 1e9
      for name, (wall, _, _) in result.items():
        total[name] += count * wall
      cells = [f"{1e3 * result[c][0]:.1f} ({gmac / result[c][0]:.0f}, {result[c][1]:.1f})"
               for c in columns]
      if use_tf:
        tf_wall, tf_cores, _ = result["tf"]
        cells += [f"{1e3 * tf_wall:.1f} ({gmac / tf_wall:.0f}, {tf_cores:.1f})"]
        cells += [f"{tf_wall / result[c][0]:.2f}" for c in columns]
      rows.append(f"| {conv.name()} | {count} | {conv.macs() / 1e9:.3f} | " + " | ".join(cells)
                  + " |")
      print(rows[-1], flush=True)
    macs = sum(c.macs() * n for c, n in convs.items()) * batch / 1e9
    cells = [f"{1e3 * total[c]:.0f} ({macs / total[c]:.0f})" for c in columns]
    if use_tf:
      cells += [f"{1e3 * total['tf']:.0f} ({macs / total['tf']:.0f})"]
      cells += [f"**{total['tf'] / total[c]:.2f}**" for c in columns]
    rows.append(f"| all {sum(convs.values())} convolutions, weighted by count | "
                f"{sum(convs.values())} | {macs / batch:.3f} | " + " | ".join(cells) + " |")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), *rows, ""]
  if others:
    lines += ["Not timed (other contractions): " + "; ".join(others) + ".", ""]

  if _WHOLE.value and not dry:
    lines += whole_model(size, batch, repeats, columns, col_name, options, use_tf)
  lines += [f"Load average at the end: {bench_lib.load_average()}."]
  text = "\n".join(lines)
  print("\n" + text)
  if _OUT.value:
    pathlib.Path(_OUT.value).write_text(text + "\n")


def whole_model(size, batch, repeats, columns, col_name, options, use_tf) -> list[str]:
  """The whole-model table: ours per column against Keras's ResNet50, frames/s."""
  module, variables = bench_lib.backbone("resnet50", size, weights="numpy", cpu_kernels=False)
  frames = np.random.default_rng(1).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
  ours_macs = bench_lib.macs_per_frame("resnet50", module, variables, size)
  fns = {c: whole_xla(module, variables, frames, c[1], options[c[0]]) for c in columns}
  keras_line = ""
  if use_tf:
    import keras

    twin = keras.applications.ResNet50(weights=None, include_top=False, pooling="avg",
                                       input_shape=(size, size, 3))
    prep = keras.applications.resnet50.preprocess_input
    fns["keras"] = lambda: twin.predict_on_batch(prep(frames.astype(np.float32)))
    keras_macs = bench_lib.keras_macs_per_frame(twin)
    keras_line = f"Keras {keras.__version__}, {keras_macs / 1e9:.3f} GMAC per frame (v1). "
  features = {c: fns[c]() for c in columns}
  result = interleave(fns, repeats)
  reference = {d: features[("default", d)] for _, d in columns if ("default", d) in features}
  rows = []
  for name, (wall, cores, cpu) in result.items():
    macs = ours_macs if name != "keras" else keras_macs
    label = col_name.get(name, "Keras ResNet50 predict_on_batch (TF oneDNN)")
    numerics = ""
    if name != "keras" and name[1] in reference and name[0] != "default":
      diff, scale = bench_lib.max_abs_diff(features[name], reference[name[1]])
      numerics = f"{diff / scale:.1e}"
    vs = f"{result['keras'][0] / wall:.2f}" if use_tf else ""
    rows.append(f"| {label} | {batch / wall:.2f} | {batch / wall * macs / 1e9:.1f} | "
                f"{cores:.1f} | {batch / cpu:.2f} | {vs} | {numerics} |")
  return [
      f"Whole model, batch {batch}, u8 frames in, features out (preprocessing included). Ours "
      f"{ours_macs / 1e9:.3f} GMAC per frame (v1.5). {keras_line}Numerics: max |features - "
      "default's| / max |default's| on the same device count.",
      "",
      "| model | frames/s | GMAC/s | cores | frames per CPU-s | Keras time / this (> 1: "
      "faster) | vs default |",
      "|---|---|---|---|---|---|---|",
      *rows,
      "",
  ]


if __name__ == "__main__":
  cli.run(main)
