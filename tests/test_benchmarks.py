"""benchmarks/: each benchmark's imports resolve, bench_temporal runs from any directory, and
accelerator_check's dry run writes its section."""
import ast
import datetime
import importlib
import importlib.util
import os
import pathlib
import re
import subprocess
import sys

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def _run(script: str, *args: str, cwd: pathlib.Path) -> subprocess.CompletedProcess:
  """`python benchmarks/<script> args` run from `cwd`, on the CPU, with this checkout's code."""
  env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu",
         "TF_CPP_MIN_LOG_LEVEL": "2"}
  env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True,
                        text=True, env=env, cwd=cwd, timeout=300)


def videojax_imports_resolve(path: pathlib.Path) -> list[str]:
  """What `path` imports from videojax: every module and name; AssertionError if one is missing.

  A static check (the file is parsed, not run): a renamed or deleted function shows here
  without paying a subprocess's JAX and TensorFlow start-up for each file.
  """
  found = []
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("videojax"):
      module = importlib.import_module(node.module)
      for alias in node.names:
        assert hasattr(module, alias.name) or importlib.util.find_spec(
            f"{node.module}.{alias.name}"), f"{path.name}: {node.module}.{alias.name} is gone"
        found.append(f"{node.module}.{alias.name}")
  return found


@pytest.mark.parametrize("script", ["bench_extract.py", "bench_temporal.py", "profile_step.py",
                                    "accelerator_check.py", "profile_layers.py"])
def test_benchmark_imports_resolve_and_it_runs_through_cli(script):
  text = (BENCHMARKS / script).read_text()
  assert "videojax.cli" in videojax_imports_resolve(BENCHMARKS / script)
  assert "cli.run(main)" in text and "app.run(" not in text


def test_benchmark_folder_holds_the_benchmarks_and_scripts_no_longer_does():
  for name in ("bench_extract.py", "bench_temporal.py", "profile_step.py"):
    assert (BENCHMARKS / name).is_file(), name
    assert not (ROOT / "scripts" / name).exists(), name
    # Another module decides the malloc now; a benchmark must not re-execute itself.
    assert "restart_with_mimalloc" not in (BENCHMARKS / name).read_text(), name
  assert "BENCHMARKS.md" in (BENCHMARKS / "README.md").read_text()


def test_bench_temporal_runs_from_another_directory(tmp_path):
  """Its default --config is the repository's configs/default.py wherever it is run from."""
  out = _run("bench_temporal.py", "--models=gru", "--frames=4", "--dim=8", "--batch=8",
             "--num_devices=2", "--repeats=1", "--steps=1", "--warmup=1", "--references=",
             "--out=table.md", cwd=tmp_path)
  assert out.returncode == 0, out.stderr[-3000:]
  table = (tmp_path / "table.md").read_text()
  assert "| gru | 4 | 8 | ours (jax) | cpu x2 |" in table, table
  assert "gru t=4 d=8: no reference to compare with" in table, table


ACCELERATOR_SECTION = "## Accelerator readiness (`benchmarks/accelerator_check.py`)"


def test_accelerator_check_dry_run_appends_a_checked_section(tmp_path):
  """The whole check on the CPU, tiny sizes: CPU check, timings, a section added in place.
  bf16's tolerance is 0, so its check fails: exit 1, one line naming it (one run, not two:
  each costs a ResNet-18 compile)."""
  out = tmp_path / "BENCH.md"
  out.write_text(f"# Benchmarks\n\n{ACCELERATOR_SECTION}\n\nIntro.\n\n## Later\n\nText.\n")
  run = _run("accelerator_check.py", "--dry_run", f"--out={out}", "--backbones=resnet18",
             "--models=meanpool", "--bf16_tol=0", cwd=tmp_path)
  assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
  last = run.stderr.strip().splitlines()[-1]
  assert re.match(r"error: tolerance check failed: resnet18 bf16: features differ from the "
                  r"CPU backend's: max abs diff \S+ > 0 ", last), last
  text = out.read_text()
  assert text.startswith(f"# Benchmarks\n\n{ACCELERATOR_SECTION}\n\nIntro.\n\n### ")
  assert text.endswith("\n\n## Later\n\nText.\n"), text  # Inserted at its section's end.
  head = re.search(r"^### (\d{4}-\d\d-\d\d) \d\d:\d\d UTC: (\d+) x cpu \(cpu, dry run\), "
                   r"jax (\S+), commit (\S+)$", text, re.M)
  assert head, text
  assert head[1] == datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
  assert head[3] == jax.__version__ and re.fullmatch(r"[0-9a-f]{7,}(\+changes)?|\?", head[4])
  for precision, verdict in (("bf16", "> \\S+ .*: FAILED"), ("f32", "<= \\S+ .*: ok")):
    assert re.search(rf"^\| resnet18 {precision} \| 32 px, batch \d+, model only \| [\d,.]+ "
                     rf"frames/s \| max abs diff \S+ {verdict} \|$", text, re.M), text
  assert "- FAILED: resnet18 bf16" in text
  assert re.search(r"^\| meanpool train step \| b 8, t 4, d 16, [\d,]+ params \| [\d,]+ "
                   r"examples/s \(.*first step .* s\) \| \|$", text, re.M), text
  assert sorted(p.name for p in tmp_path.iterdir()) == ["BENCH.md"]  # No temp file left.


def test_accelerator_check_without_an_accelerator_says_how_to_install_one(tmp_path):
  run = _run("accelerator_check.py", f"--out={tmp_path / 'x.md'}", cwd=tmp_path)
  assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
  assert run.stderr.strip().splitlines()[-1].startswith("error: no accelerator found"), run.stderr
  assert "pip install -e '.[cuda12]'" in run.stderr and not (tmp_path / "x.md").exists()


def test_bench_extract_vs_keras_refuses_a_backbone_keras_lacks(tmp_path):
  run = _run("bench_extract.py", "--vs_keras", "--backbone=efficientnet_lite0", cwd=tmp_path)
  assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
  assert run.stderr.strip().splitlines()[-1] == (
      "error: --vs_keras: Keras has no twin of 'efficientnet_lite0'; accepted --backbone: "
      "resnet50"), run.stderr
