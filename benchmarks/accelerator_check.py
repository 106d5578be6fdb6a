"""Is this GPU (or TPU) ready, and how fast is it? One command, about 5 minutes.

  python benchmarks/accelerator_check.py --install   # pip install -e '.[cuda12]' first
  python benchmarks/accelerator_check.py             # appends a dated section to BENCHMARKS.md
  python benchmarks/accelerator_check.py --dry_run --out /tmp/check.md   # CPU, tiny sizes

On the first accelerator JAX sees it:
  1. checks the features of each backbone (ResNet-50, EfficientNet-Lite0) in f32 and bf16
     against the same weights run on the CPU backend in this process (f32 at
     precision 'highest'): max |device - CPU| must stay within --f32_tol or --bf16_tol
     times max |CPU feature|;
  2. times each backbone alone, frames/s of extraction's jitted embed (`bench_lib`, as
     bench_extract.py's "model only"), in bf16 and f32 (f32 at JAX's default precision,
     which is what extraction runs: TF32 convolutions on NVIDIA Ampere and later);
  3. times the train step of each temporal model (`bench_lib.JaxRunner`, as
     bench_temporal.py: configs/default.py's model settings, batch --batch of t x d);
  4. appends a dated section (device, jax version, date, commit, every figure) to
     BENCHMARKS.md, or to --out: a new file written beside it, then renamed over it.

Timings stop being taken once --budget_s has passed (the checks always run); what was
skipped is listed. A failed check exits with status 1 after the section is written, naming
the backbone, the precision and the max abs diff. --dry_run runs it all on the CPU with
tiny sizes (device = CPU), for tests and a first try; it writes to --out only.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import datetime  # noqa: E402
import pathlib  # noqa: E402
import shlex  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags, logging  # noqa: E402

# This folder's shared helpers (the script's own folder is first on sys.path).
import bench_lib  # noqa: E402
from configs import default as default_config  # noqa: E402
from videojax import cli, sharding  # noqa: E402
from videojax import platform as platform_lib  # noqa: E402 (not the standard library's)
from videojax.errors import UserError  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECTION = "## Accelerator readiness (`benchmarks/accelerator_check.py`)"
INSTALL = [sys.executable, "-m", "pip", "install", "-e", ".[cuda12]"]

_DRY_RUN = flags.DEFINE_bool("dry_run", False, "On the CPU, tiny sizes, 1 repeat; needs --out.")
_INSTALL = flags.DEFINE_bool("install", False,
                             "First run `pip install -e '.[cuda12]'` in the checkout, then "
                             "the check in a new process (so it imports the new jax).")
_OUT = flags.DEFINE_string("out", "", "Markdown file to append to (default: the checkout's "
                           "BENCHMARKS.md; --dry_run requires it).")
_BACKBONES = flags.DEFINE_list("backbones", ["resnet50", "efficientnet_lite0"], "Backbones.")
_PRECISIONS = flags.DEFINE_list("precisions", ["bf16", "f32"], "Backbone compute dtypes.")
_MODELS = flags.DEFINE_list(
    "models", ["gru", "lstm", "bilstm", "bilstm_attention", "transformer", "meanpool"],
    "Temporal models whose train step is timed.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Frame side (default 224; dry run 32).")
_FRAMES_PER_CALL = flags.DEFINE_integer("batch_size", None,
                                        "Frames per backbone call (default 256; dry run 4).")
_CHECK_FRAMES = flags.DEFINE_integer("check_frames", None,
                                     "Frames compared with the CPU (default 8; dry run 2).")
_REPEATS = flags.DEFINE_integer("repeats", None, "Timed repeats, median (default 10; dry run 1).")
_BATCH = flags.DEFINE_integer("batch", None, "Clips per train step (default 64; dry run 8).")
_T = flags.DEFINE_integer("frames", None, "Frames per clip t (default 32; dry run 4).")
_DIM = flags.DEFINE_integer("dim", None, "Feature width d (default 1280; dry run 16).")
_STEPS = flags.DEFINE_integer("steps", None, "Train steps per repeat (default 5; dry run 1).")
_F32_TOL = flags.DEFINE_float("f32_tol", 1e-3, "f32 check: max abs diff allowed, as a "
                              "fraction of the CPU features' max abs value.")
_BF16_TOL = flags.DEFINE_float("bf16_tol", 0.1, "bf16 check: the same, against f32 on the CPU.")
_BUDGET = flags.DEFINE_float("budget_s", 300, "Seconds after which timings are skipped.")

# (full run, dry run) defaults of the size flags.
SIZES = {"image_size": (224, 32), "batch_size": (256, 4), "check_frames": (8, 2),
         "repeats": (10, 1), "batch": (64, 8), "frames": (32, 4), "dim": (1280, 16),
         "steps": (5, 1)}


def size(name: str) -> int:
  value = flags.FLAGS[name].value
  return SIZES[name][_DRY_RUN.value] if value is None else value


def tolerance(precision: str) -> float:
  return {"f32": _F32_TOL.value, "bf16": _BF16_TOL.value}[precision]


def commit() -> str:
  """The checkout's short commit, '+changes' when the tree differs from it; '?' without git."""
  try:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                          capture_output=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           text=True, capture_output=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "?"
  return head + ("+changes" if dirty else "")


def append_section(path: pathlib.Path, section: str) -> None:
  """Adds `section` at the end of SECTION in `path` (SECTION is created at the end when
  missing), atomically: the new text goes to a file beside it, renamed over it."""
  text = path.read_text() if path.exists() else ""
  lines = text.splitlines()
  if SECTION not in lines:
    lines += ([""] if lines else []) + [
        SECTION, "",
        "Written by the script, one section per run (newest last): on an accelerator, features "
        "checked against the CPU backend, backbone frames/s (model only) and temporal train "
        "steps. See benchmarks/README.md.",
    ]
  start = lines.index(SECTION)
  end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
  while end > start + 1 and not lines[end - 1].strip():
    end -= 1
  lines[end:end] = ["", *section.rstrip("\n").splitlines()] + ([""] if end < len(lines) else [])
  tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
  tmp.write_text("\n".join(lines) + "\n")
  os.replace(tmp, path)


def cpu_mesh() -> jax.sharding.Mesh:
  """One CPU device, where the reference features are computed."""
  try:
    cpu = jax.devices("cpu")[:1]
  except RuntimeError as e:
    raise UserError(f"the check needs JAX's CPU backend beside the accelerator, and "
                    f"JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS')!r} leaves it out: unset "
                    "JAX_PLATFORMS or add cpu to it (e.g. cuda,cpu)") from e
  return jax.sharding.Mesh(np.array(cpu), (sharding.DATA_AXIS,))


def check_and_time_backbones(deadline: float, rows: list[str], failures: list[str],
                             skipped: list[str]) -> None:
  """Per backbone and precision: the CPU check, then model-only frames/s."""
  mesh = sharding.make_mesh(0, local=True)
  n_dev = mesh.devices.size
  side = size("image_size")
  rng = np.random.default_rng(0)
  per_call = -(-size("batch_size") // n_dev) * n_dev
  frames = rng.integers(0, 256, (per_call, side, side, 3), dtype=np.uint8)
  check = rng.integers(0, 256, (-(-size("check_frames") // n_dev) * n_dev, side, side, 3),
                       dtype=np.uint8)
  for name in _BACKBONES.value:
    # The reference: the standard module (no CPU options), f32, on one CPU device.
    ref_module, variables = bench_lib.backbone(name, side, weights="numpy",
                                               cpu_kernels=False)
    with jax.default_matmul_precision("highest"):
      reference = bench_lib.embed_fn(name, ref_module, variables, cpu_mesh())(check)
    for precision in _PRECISIONS.value:
      module, _ = bench_lib.backbone(name, side, precision=precision, variables=variables)
      embed = bench_lib.embed_fn(name, module, variables, mesh)
      if precision == "f32" and jax.default_backend() != "cpu":
        # Tight: the device at full f32 precision, as the CPU (whose default it is anyway,
        # so a dry run compiles one program less).
        with jax.default_matmul_precision("highest"):
          got = embed(check)
      else:
        got = embed(check)
      diff, scale = bench_lib.max_abs_diff(got, reference)
      allowed = tolerance(precision) * scale
      ok = diff <= allowed  # False for NaN too.
      verdict = (f"max abs diff {diff:.2e} {'<=' if ok else '>'} {allowed:.2e} "
                 f"({tolerance(precision):g} x max abs {scale:.3g}): {'ok' if ok else 'FAILED'}")
      if not ok:
        failures.append(f"{name} {precision}: features differ from the CPU backend's: "
                        f"max abs diff {diff:.3g} > {allowed:.3g} ({tolerance(precision):g} "
                        f"x max abs {scale:.3g})")
      what = f"{name} {precision}"
      setting = f"{side} px, batch {per_call}, model only"
      if time.monotonic() > deadline:
        skipped.append(f"{what} timing")
        rows.append(f"| {what} | {setting} | skipped (over --budget_s) | {verdict} |")
        continue
      print(f"timing {what} ...", flush=True)
      fps = bench_lib.frames_per_second(embed, frames, size("repeats"))
      rows.append(f"| {what} | {setting} | {fps:,.1f} frames/s | {verdict} |")


def time_temporal(deadline: float, rows: list[str], skipped: list[str]) -> None:
  """The train step of each --models model, configs/default.py's settings."""
  b, t, d, k = size("batch"), size("frames"), size("dim"), 101
  config = default_config.get_config()
  config.train.batch_size, config.train.num_devices = b, 0
  batch = bench_lib.make_batch(b, t, d, k, seed=0)
  for name in _MODELS.value:
    if time.monotonic() > deadline:
      skipped.append(f"{name} train step")
      continue
    print(f"timing {name} train step ...", flush=True)
    config.model.name = name
    runner = bench_lib.JaxRunner(config, batch, k)
    res = bench_lib.step_rate(runner, b, repeats=size("repeats"), steps=size("steps"),
                              warmup=2)
    rows.append(f"| {name} train step | b {b}, t {t}, d {d}, {runner.params:,} params | "
                f"{res['median']:,.0f} examples/s ({1000 * b / res['median']:.1f} ms/step; "
                f"first step {res['first']:.1f} s) | |")
    del runner


def install() -> int:
  """pip install -e '.[cuda12]', then this check again in a new process; its status."""
  print("running:", shlex.join(INSTALL), flush=True)
  if subprocess.run(INSTALL, cwd=ROOT).returncode:
    raise UserError(f"`{shlex.join(INSTALL)}` failed in {ROOT} (see pip's output above)")
  argv = [a for a in sys.argv if a not in ("--install", "--install=true", "--install=True")]
  return subprocess.run([sys.executable, *argv]).returncode


def main(argv):
  del argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if _INSTALL.value:
    sys.exit(install())
  start, host = time.monotonic(), bench_lib.machine()
  if _DRY_RUN.value:
    if not _OUT.value:
      raise UserError("--dry_run writes to --out only (its CPU figures do not belong in "
                      "BENCHMARKS.md); pass --out FILE")
    platform_lib.split_cpu_into_devices()
  elif jax.default_backend() == "cpu":
    raise UserError(
        f"no accelerator found: jax {jax.__version__} sees only {jax.devices()[0].device_kind}."
        " On an NVIDIA GPU install the CUDA extra, `pip install -e '.[cuda12]'` (or rerun with "
        "--install); on a TPU VM `pip install -e '.[tpu]'`. --dry_run runs the check on the CPU.")
  out = pathlib.Path(_OUT.value) if _OUT.value else ROOT / "BENCHMARKS.md"
  for p in _PRECISIONS.value:
    if p not in bench_lib.PRECISIONS:
      raise UserError(f"--precisions: unknown {p!r}; accepted: {', '.join(bench_lib.PRECISIONS)}")
  devices = jax.local_devices()
  print(f"jax {jax.__version__}: {len(devices)} x {devices[0].device_kind} "
        f"({jax.default_backend()})", flush=True)

  deadline = start + _BUDGET.value
  rows: list[str] = []
  failures: list[str] = []
  skipped: list[str] = []
  check_and_time_backbones(deadline, rows, failures, skipped)
  time_temporal(deadline, rows, skipped)

  now = datetime.datetime.now(datetime.timezone.utc)
  section = "\n".join([
      f"### {now:%Y-%m-%d %H:%M} UTC: {len(devices)} x {devices[0].device_kind} "
      f"({jax.default_backend()}{', dry run' if _DRY_RUN.value else ''}), jax {jax.__version__}, "
      f"commit {commit()}",
      "",
      f"- command: `{shlex.join([os.path.basename(sys.executable), *sys.argv])}`",
      f"- host: {host}; {time.monotonic() - start:.0f} s in all "
      f"(budget {_BUDGET.value:g} s); load average {bench_lib.load_average()} at the end",
      f"- backbones: random weights (He-normal, `bench_lib.numpy_variables`), avg pooling, median of {size('repeats')} timed call(s); "
      "f32 timed at JAX's default precision, checked at 'highest'; checks against f32 on the "
      "CPU backend, tolerance a fraction of the CPU features' max abs value",
      "",
      "| what | setting | figure | check against the CPU backend |",
      "|---|---|---|---|",
      *rows,
      *([""] + [f"- skipped (over --budget_s): {', '.join(skipped)}"] if skipped else []),
      *([""] + [f"- FAILED: {f}" for f in failures] if failures else []),
  ])
  append_section(out, section)
  print("\n" + section + f"\n\nappended to {out}", flush=True)
  if failures:
    raise UserError("tolerance check failed: " + "; ".join(failures))


if __name__ == "__main__":
  cli.run(main)
