"""benchmarks/: each benchmark imports and lists its flags, from any working directory."""
import os
import pathlib
import subprocess
import sys

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


@pytest.mark.parametrize("script, own_flags", [
    ("bench_extract.py", ["--backbone", "--clips", "--num_workers"]),
    ("bench_temporal.py", ["--models", "--frames", "--references", "--config"]),
    # Its model and shape flags are bench_temporal's, imported from beside it.
    ("profile_step.py", ["--top", "--depth"]),
])
def test_benchmark_help_lists_its_flags_from_another_directory(tmp_path, script, own_flags):
  out = _run(script, "--help", cwd=tmp_path)
  # absl prints the usage to stdout and exits 1 after --help (as every script here does).
  assert out.returncode in (0, 1), out.stderr
  assert "Traceback" not in out.stderr, out.stderr
  for flag in [*own_flags, "--[no]debug"]:  # --debug: the script runs through videojax.cli.run.
    assert flag in out.stdout, (flag, out.stdout)
  assert list(tmp_path.iterdir()) == []  # --help writes nothing


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
