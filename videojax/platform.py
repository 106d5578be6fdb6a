"""Platform choices of a process, in one place, each applied only when a script calls it.

Importing this module (or any other videojax module) changes nothing: no environment
variable, no JAX setting, no device visibility, no flag. The scripts that run models
call, first thing, before their imports load TensorFlow,

  platform.quiet_start(sys.argv)      # no third-party start-up banners unless --verbosity

and first thing in their main (before JAX initialises its backends),

  platform.split_cpu_into_devices()   # one XLA CPU device per core; GPUs/TPUs unaffected

and the library calls `keep_tensorflow_off_accelerators()` where it builds a tf.data
pipeline or a TensorBoard writer, the only places TensorFlow is used.

Three CPU choices are kept, each worth more than 1.3x on the default backbone: the device
split (1.9x backbone frames/s on 2 cores) and, where extraction builds a backbone,
`cpu_kernels()`: EfficientNet-Lite's depthwise convolutions as shifted sums (5.0x
Lite0 frames/s on 2 cores; the same params and function) and `backbone_compiler_options()`,
XLA's own (Eigen) convolutions instead of YNNPACK's (1.32x Lite0 at 224 px, 1.17x at 112,
1.10x ResNet-50; features within 2.2e-6 relative). Models read no platform
setting: the caller passes the choice (`models.create_backbone(cpu_kernels=...)`).
Everything else runs the standard path (flax/XLA convolutions and attention,
autodiff): the other CPU tricks (1x1 convolutions as matmuls, hand-written
attention, custom VJPs of the scan, preloading mimalloc, unrolling Threefry) were
measured below 1.3x on a realistic step and deleted (BENCHMARKS.md, "CPU tricks").
"""
from __future__ import annotations

import os
from collections.abc import Sequence

# What keeps third-party start-up lines off stderr (quiet_start); a variable already set wins.
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",  # TensorFlow's C++ INFO and WARNING lines.
    # TensorFlow's "oneDNN custom operations are on" banner is logged as its library loads,
    # before TF_CPP_MIN_LOG_LEVEL is read; only turning the ops off silences it. They
    # change TensorFlow's own float kernels only, and videojax runs none: tf.data moves
    # numpy arrays, tf.summary writes scalars. JAX's numerics are untouched.
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "TPU_STDERR_LOG_LEVEL": "2",  # libtpu: errors only on stderr (its log files keep the rest).
}


def verbosity_asked(argv: Sequence[str]) -> bool:
  """Whether `argv` sets absl's --verbosity (-v) to INFO (0) or more, or to what is no number."""
  for i, arg in enumerate(argv):
    name, eq, value = arg.partition("=")
    if name not in ("--verbosity", "-verbosity", "--v", "-v"):
      continue
    if not eq:
      value = argv[i + 1] if i + 1 < len(argv) else ""
    try:
      return int(value) >= 0
    except ValueError:
      return True
  return False


def quiet_start(argv: Sequence[str] = ()) -> bool:
  """Keeps TensorFlow's and libtpu's start-up lines off stderr (QUIET_ENV), unless
  `argv` asks for absl's INFO logs (--verbosity=0 or more, `verbosity_asked`).

  Call it first thing in a script, before an import loads TensorFlow: its C++ logging
  reads the environment once, as it loads. Variables the user already set are kept.

  Returns:
    Whether the quiet settings were applied.
  """
  if verbosity_asked(argv):
    return False
  for name, value in QUIET_ENV.items():
    os.environ.setdefault(name, value)
  return True


def split_cpu_into_devices(max_devices: int = 8) -> int:
  """Makes one XLA CPU device per core (a power of two, at most `max_devices`).

  XLA runs each device's program on its own thread, and its CPU kernels keep
  few cores busy, so a batch split over per-core CPU devices runs in parallel:
  measured 1.9x backbone frames/s on 2 cores (BENCHMARKS.md). A power of two
  keeps the configs' batch sizes divisible. Call it before JAX initialises its
  backends (the first device query or computation), so first in a script's main;
  afterwards it has no effect. An explicit setting wins: $JAX_NUM_CPU_DEVICES or
  `jax.config.update("jax_num_cpu_devices", n)`. GPUs and TPUs are unaffected.

  Returns:
    The number of CPU devices asked for.
  """
  import jax  # Here, not at import: importing this module must stay free of effects.

  if jax.config.jax_num_cpu_devices > 0:
    return jax.config.jax_num_cpu_devices
  cores = min(os.cpu_count() or 1, max_devices)
  count = 1 << (cores.bit_length() - 1)
  jax.config.update("jax_num_cpu_devices", count)
  return count


def keep_tensorflow_off_accelerators() -> None:
  """Hides the GPUs from TensorFlow, so that tf.data and TensorBoard never take them from JAX.

  Called where videojax builds a tf.data pipeline or a TensorBoard writer; calling it
  again changes nothing. TensorFlow's own device setup decides the moment: it must
  run before TensorFlow's first op in the process.

  Raises:
    RuntimeError: TensorFlow sees a GPU and has already initialised its devices (some
      code used TensorFlow before); the message says what to do.
  """
  import tensorflow as tf  # Here: importing videojax must not load TensorFlow's devices.

  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError as e:  # Only raised when there is a GPU to hide.
    raise RuntimeError(
        "TensorFlow already initialised its GPUs, so tf.data would share them with JAX: "
        "call videojax.platform.keep_tensorflow_off_accelerators() before the first "
        f"TensorFlow op of the process ({e})") from e


def cpu_kernels() -> bool:
  """Whether extraction runs backbones with their CPU options (`BackboneSpec.cpu_options`).

  True when JAX's default backend is the CPU, unless $VIDEOJAX_CPU_KERNELS is 0: the
  one switch. On GPUs and TPUs the standard path runs (cuDNN and XLA have depthwise
  kernels of their own).
  """
  import jax  # Here, not at import: importing this module must stay free of effects.
  return jax.default_backend() == "cpu" and os.environ.get("VIDEOJAX_CPU_KERNELS", "1") != "0"


# XLA:CPU (jaxlib 0.10) sends convolutions to YNNPACK; its Eigen convolutions run the
# backbones faster on x86 (BENCHMARKS.md, "Per-layer profile": YNNPACK loses on 1x1
# convolutions over large maps). Dots stay on YNNPACK. The option is jaxlib 0.10's name
# (pyproject pins jax ~= 0.10.2): change them together.
CPU_BACKBONE_COMPILER_OPTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


def backbone_compiler_options() -> dict[str, str]:
  """XLA compile options for a backbone's jitted embedding: CPU_BACKBONE_COMPILER_OPTIONS
  where `cpu_kernels()` holds (the CPU, $VIDEOJAX_CPU_KERNELS not 0), else none."""
  return dict(CPU_BACKBONE_COMPILER_OPTIONS) if cpu_kernels() else {}
