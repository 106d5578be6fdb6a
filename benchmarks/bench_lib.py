"""What the benchmark scripts share: backbone and train-step timing, the machine line.

No flags and no side effects at import, so that several scripts (bench_extract.py,
bench_temporal.py, accelerator_check.py) import it together; each script keeps its own
flags and passes the values in. Nothing in videojax/ imports it.
"""
from __future__ import annotations

import concurrent.futures
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from videojax import extract, models, sharding
from videojax import platform as platform_lib  # (not the standard library's)
from videojax.data import video

PRECISIONS = {"f32": jnp.float32, "bf16": jnp.bfloat16}


def load_average() -> str:
  """1, 5 and 15 minute load averages: other jobs' CPU use skews CPU timings."""
  return ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def machine() -> str:
  cpu = platform.processor() or "?"
  try:
    with open("/proc/cpuinfo") as f:
      cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    pass
  usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  return (f"{platform.platform()}; {cpu}; {os.cpu_count()} CPUs ({usable} usable); "
          f"load average {load_average()} at start")


# --- Backbones ---------------------------------------------------------------


def backbone(name: str, image_size: int, *, precision: str = "f32",
             weights: str = "random-init", cpu_kernels: bool | None = None, variables=None):
  """(module, variables) of backbone `name` computing in `precision` ('f32' or 'bf16').

  weights: as `models.load_backbone_variables`, or 'numpy' (`numpy_variables`).
  cpu_kernels: the spec's CPU options; None asks `platform.cpu_kernels()`, as extraction
  does. `variables` (f32, from an earlier call with the same name) skips the init.
  """
  if cpu_kernels is None:
    cpu_kernels = platform_lib.cpu_kernels()
  module = models.create_backbone(name, pooling="avg", cpu_kernels=cpu_kernels,
                                  dtype=PRECISIONS[precision])
  if variables is None and weights == "numpy":
    variables = numpy_variables(module, image_size)
  elif variables is None:
    variables = models.load_backbone_variables(name, module, weights, image_size=image_size)
  return module, variables


def numpy_variables(module, image_size: int, seed: int = 0) -> dict:
  """Variables for `module` drawn in NumPy, without compiling its init (ResNet-18's took
  18 s on 2 loaded cores): kernels He-normal over their fan-in, scales and variances 1,
  biases and means 0, anything else N(0, 0.02). For timings and numeric checks, where any
  fixed, well-scaled weights do."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(module.init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32))

  def draw(path, leaf):
    name = str(getattr(path[-1], "key", path[-1]))
    if name in ("scale", "var"):
      return np.ones(leaf.shape, np.float32)
    if name in ("bias", "mean"):
      return np.zeros(leaf.shape, np.float32)
    if name == "kernel":
      fan_in = math.prod(leaf.shape[:-1]) or 1
      return (rng.standard_normal(leaf.shape) * math.sqrt(2 / fan_in)).astype(np.float32)
    return (0.02 * rng.standard_normal(leaf.shape)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def embed_fn(name: str, module, variables, mesh) -> Callable[[np.ndarray], np.ndarray]:
  """Extraction's own jitted embed (`extract.make_embed_fn`): u8[n, s, s, 3] -> [n, d],
  a jax.Array dispatched asynchronously (time it through `np.asarray`)."""
  return extract.make_embed_fn(name, module, variables, mesh)


def frames_per_second(embed: Callable[[np.ndarray], np.ndarray], frames: np.ndarray,
                      repeats: int) -> float:
  """Frames/s of `embed(frames)`, waited for: the median of `repeats` calls after a warm-up."""
  np.asarray(embed(frames))
  times = []
  for _ in range(max(1, repeats)):
    t0 = time.perf_counter()
    np.asarray(embed(frames))
    times.append(time.perf_counter() - t0)
  return len(frames) / float(np.median(times))


def jaxpr_macs(jaxpr) -> int:
  """Multiply-adds of the convolutions and matmuls (dot_general) of a jaxpr, sub-jaxprs too."""
  import jax.extend.core as jcore

  total = 0
  for eqn in jaxpr.eqns:
    out = math.prod(eqn.outvars[0].aval.shape) if eqn.outvars else 0
    if eqn.primitive.name == "conv_general_dilated":
      kernel = eqn.invars[1].aval.shape
      spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, *spatial) positions.
      total += out * kernel[spec[1]] * math.prod(kernel[i] for i in spec[2:])
    elif eqn.primitive.name == "dot_general":
      (contracting, _), _ = eqn.params["dimension_numbers"]
      total += out * math.prod(eqn.invars[0].aval.shape[i] for i in contracting)
    for p in eqn.params.values():
      if isinstance(p, jcore.ClosedJaxpr):
        total += jaxpr_macs(p.jaxpr)
      elif isinstance(p, jcore.Jaxpr):
        total += jaxpr_macs(p)
  return total


def macs_per_frame(name: str, module, variables, image_size: int) -> float:
  """Multiply-adds per frame of the backbone, counted from its traced program.

  Every convolution contributes out elements x kernel taps x input channels per group,
  every matmul out elements x contracted size (`jaxpr_macs`); batch norms, activations and
  pooling are left out. ResNet-50 v1.5 at 224 px: 4.09 G, the published figure. (XLA's
  `compile().cost_analysis()['flops'] / 2` on the CPU gave 2 % less, 4.00 G: it is not
  used.)
  """
  frame = jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.uint8)

  def apply(variables, frames):
    return module.apply(variables, models.preprocess_frames(name, frames))

  return float(jaxpr_macs(jax.make_jaxpr(apply)(variables, frame).jaxpr))


def keras_macs_per_frame(model) -> float:
  """Multiply-adds per frame of a Keras CNN, counted from its layers: every Conv2D
  (out_h * out_w * k_h * k_w * c_in / groups * c_out), DepthwiseConv2D and Dense.
  Batch norms, activations and pooling are left out."""
  import keras

  total = 0
  for layer in model.layers:
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.Dense)):
      kernel = layer.kernel.shape
      out = layer.output.shape
      spatial = math.prod(out[1:-1]) if len(out) > 2 else 1
      if isinstance(layer, keras.layers.DepthwiseConv2D):
        total += spatial * math.prod(kernel[:2]) * out[-1]
      else:
        total += spatial * math.prod(kernel)
  return float(total)


def decode_rate(examples: Sequence, num_frames: int, image_size: int,
                num_workers: int) -> tuple[float, list, int]:
  """Decoding alone, as extraction decodes (`video.read_video_views` in a thread pool).

  Returns:
    (frames/s, the decoded (frames, frame_of, length) per clip, frames decoded).
  """
  def decode(e):
    return video.read_video_views(e.path, num_frames, image_size, (1.0,))

  t0 = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(max(1, num_workers)) as pool:
    decoded = list(pool.map(decode, examples))
  seconds = time.perf_counter() - t0
  count = sum(len(d[0]) for d in decoded)
  return count / seconds, decoded, count


def max_abs_diff(features: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
  """(max |features - reference|, max |reference|), both in float32."""
  a, b = np.asarray(features, np.float32), np.asarray(reference, np.float32)
  return float(np.max(np.abs(a - b))), float(np.max(np.abs(b)))


# --- Temporal models: the train step -----------------------------------------


def make_batch(b: int, t: int, d: int, k: int, seed: int) -> dict[str, np.ndarray]:
  """Random clips as the training pipeline gives them.

  Lengths: half the clips full (t frames), half uniform in [t/4, t]: videos
  shorter than the sampling window, as the feature pipeline pads them.

  Returns:
    {features f16[b, t, d], mask bool[b, t], label i32[b], valid bool[b]}.
  """
  rng = np.random.default_rng(seed)
  lengths = np.where(rng.random(b) < 0.5, t, rng.integers(max(1, t // 4), t + 1, b))
  return {"features": rng.standard_normal((b, t, d)).astype(np.float16),
          "mask": np.arange(t)[None, :] < lengths[:, None],
          "label": rng.integers(0, k, b).astype(np.int32),
          "valid": np.ones(b, bool)}


class Runner:
  """One implementation's train step; `step()` may return before the work ends."""
  name: str
  device: str
  params: int

  def step(self) -> None:
    raise NotImplementedError

  def sync(self) -> None:
    """Blocks until every step issued so far has finished."""


class JaxRunner(Runner):
  """The project's own jitted train step and train state (config.model.name's model)."""

  def __init__(self, config, batch: dict[str, np.ndarray], num_classes: int):
    # Here: videojax.train loads TensorFlow (tf.data), which the backbone timings never need.
    from videojax import train

    t, d = batch["features"].shape[1:]
    mesh = sharding.make_mesh(config.train.num_devices)
    sharding.check_batch_size(len(batch["label"]), mesh, "--batch")
    repl = sharding.replicated(mesh)
    self.steps = train.Steps(mesh, num_classes)
    self.state = jax.device_put(train.create_train_state(config, num_classes, t, d), repl)
    self.rng = jax.device_put(jax.random.fold_in(jax.random.key(config.train.seed), 1), repl)
    self.batch = sharding.put_batch(batch, mesh)
    self.metrics = None
    self.name = "ours (jax)"
    devices = mesh.devices.flatten()
    self.device = f"{devices[0].platform} x{len(devices)}"
    self.params = sum(x.size for x in jax.tree.leaves(self.state.params))

  def step(self):
    self.state, self.metrics = self.steps.train(self.state, self.batch, self.rng)

  def sync(self):
    jax.block_until_ready((self.state, self.metrics))


def step_rate(runner: Runner, batch_size: int, *, repeats: int, steps: int,
              warmup: int) -> dict:
  """Times one runner alone: {'first': s of the first step (compiles), 'rates': examples/s
  per repeat of `steps` steps, 'median': their median}."""
  t0 = time.perf_counter()
  runner.step()
  runner.sync()
  first = time.perf_counter() - t0
  for _ in range(max(warmup - 1, 0)):
    runner.step()
  runner.sync()
  rates = []
  for _ in range(max(1, repeats)):
    t0 = time.perf_counter()
    for _ in range(max(1, steps)):
      runner.step()
    runner.sync()
    rates.append(max(1, steps) * batch_size / (time.perf_counter() - t0))
  return {"first": first, "rates": rates, "median": statistics.median(rates)}
