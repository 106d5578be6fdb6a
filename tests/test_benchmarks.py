"""benchmarks/: each benchmark's imports resolve, and bench_temporal runs from any directory."""
import ast
import importlib
import importlib.util
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


@pytest.mark.parametrize("script", ["bench_extract.py", "bench_temporal.py", "profile_step.py"])
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
