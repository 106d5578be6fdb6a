"""Where a temporal model's train step spends its time, layer by layer.

  python benchmarks/profile_step.py --models bilstm_attention --frames 64 --dim 1280

Runs the same jitted step as benchmarks/bench_temporal.py (`train.Steps(...).train` on a
device-resident batch), traces a few steps with `jax.profiler`, and sums the time of
every compiled op by the layer that emitted it (the op's `op_name`: forward or backward,
model path, `[loop]` inside a scan). Prints ms per device per step, largest first.

On CPU, per-op events need `XLA_FLAGS=--xla_cpu_enable_xprof_traceme=true`, which this
script sets when XLA_FLAGS does not already. Tracing adds overhead, so compare the rows
with each other, not with bench_temporal's wall-clock figures. All-reduces are listed on
their own: on several devices their time includes waiting for the slowest device.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_enable_xprof_traceme=true")

import collections  # noqa: E402
import gzip  # noqa: E402
import json  # noqa: E402
import pathlib  # noqa: E402
import re  # noqa: E402
import tempfile  # noqa: E402

import jax  # noqa: E402
from absl import flags  # noqa: E402

import bench_temporal  # noqa: E402
from videojax import cli, platform  # noqa: E402

# The model, shapes and settings are bench_temporal's flags (--models, first of --frames
# and --dim, --batch, --bilstm_*, --num_devices; --steps traced steps), so the two
# scripts measure the same step.
_TOP = flags.DEFINE_integer("top", 30, "Rows to print.")
_DEPTH = flags.DEFINE_integer("depth", 3, "Components of the op path kept: 2 groups by layer, "
                              "3 also by the operation inside it.")


def layer_of(op_name: str, depth: int) -> str:
  """'jit(train_step)/transpose(jvp(M))/bilstm_0/while/body/...' -> 'bwd M/bilstm_0 [loop]'.

  That at depth 2; `depth` path components are kept.
  """
  op = op_name.replace("jit(train_step)/", "").replace("shard_map/", "")
  direction = "bwd" if "transpose(" in op else "fwd"
  parts = re.sub(r"transpose\(|jvp\(|jit\(|\)", "", op).split("/")
  key = "/".join(parts[:depth])
  return f"{direction} {key}" + (" [loop]" if "/while" in op else "")


def main(argv):
  del argv
  platform.split_cpu_into_devices()
  bt = bench_temporal
  name, t, d = bt._MODELS.value[0], int(bt._FRAMES.value[0]), int(bt._DIM.value[0])
  config = bt.configured()
  config.model.name = name
  batch = bt.make_batch(bt._BATCH.value, t, d, bt._CLASSES.value, bt._SEED.value)
  runner = bt.JaxRunner(config, batch, bt._CLASSES.value)
  for _ in range(3):
    runner.step()
  runner.sync()
  # The op names of the compiled step: instruction name -> op_name.
  hlo = runner.steps.train.lower(runner.state, runner.batch, runner.rng).compile().as_text()
  names = {}
  for m in re.finditer(r'^\s*(?:ROOT )?%([\w.\-]+) = .*?op_name="([^"]*)"', hlo, re.M):
    names.setdefault(m.group(1), m.group(2))
  with tempfile.TemporaryDirectory() as tmp:
    with jax.profiler.trace(tmp, create_perfetto_trace=True):
      for _ in range(bt._STEPS.value):
        runner.step()
      runner.sync()
    with gzip.open(next(pathlib.Path(tmp).rglob("*.json.gz"))) as f:
      events = json.load(f)["traceEvents"]
  devices = runner.steps.mesh.devices.size  # --num_devices, not every device JAX sees
  per = devices * bt._STEPS.value * 1e3  # us -> ms per device per step
  totals = collections.Counter()
  for e in events:
    if e.get("ph") != "X":
      continue
    if e["name"].startswith("all-reduce"):
      totals["all-reduce (incl. waiting for the other devices)"] += e["dur"]
    elif e["name"] in names:
      totals[layer_of(names[e["name"]], _DEPTH.value)] += e["dur"]
  if not totals:
    raise SystemExit("no per-op events in the trace; on CPU set XLA_FLAGS="
                     "--xla_cpu_enable_xprof_traceme=true")
  print(f"{name}, b={bt._BATCH.value} t={t} d={d}, "
        f"{devices} x {jax.devices()[0].device_kind}, {bt._STEPS.value} traced steps")
  print("| ms / device / step | layer |\n|---|---|")
  for key, us in totals.most_common(_TOP.value):
    print(f"| {us / per:.1f} | {key} |")
  print(f"| {sum(totals.values()) / per:.1f} | total of all ops |")


if __name__ == "__main__":
  cli.run(main)
