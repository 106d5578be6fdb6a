"""Models are pure and mesh-free: nothing under videojax/models/ imports the modules
that know of devices, data or training (the step decides the layout; STYLE.md habit 13).
No upward imports from data/: it imports no top-level videojax module but the leaves
errors, files, platform and progress."""
import ast
import pathlib
import subprocess
import sys

import videojax

MODELS = pathlib.Path(videojax.__file__).parent / "models"
DATA = pathlib.Path(videojax.__file__).parent / "data"
# Top-level videojax modules that data/ may import: leaves that import nothing of videojax.
DATA_MAY_IMPORT = ("videojax.errors", "videojax.files", "videojax.platform", "videojax.progress")
FORBIDDEN = ("videojax.sharding", "videojax.data", "videojax.train")


def _imports(path: pathlib.Path) -> set[str]:
  """The absolute module names a file imports (`from a import b` gives a and a.b)."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      names.update(a.name for a in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names.add(node.module)
      names.update(f"{node.module}.{a.name}" for a in node.names)
  return names


def _forbidden(names: set[str]) -> list[str]:
  return sorted(n for n in names for f in FORBIDDEN if n == f or n.startswith(f + "."))


def test_the_check_finds_a_forbidden_import(tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("import jax\nfrom videojax import sharding\nfrom videojax.data import parts\n")
  assert _forbidden(_imports(bad)) == ["videojax.data", "videojax.data.parts",
                                       "videojax.sharding"]


def test_models_import_nothing_of_sharding_data_or_train():
  files = sorted(MODELS.glob("*.py"))
  assert len(files) > 5
  found = {f.name: _forbidden(_imports(f)) for f in files}
  assert not {k: v for k, v in found.items() if v}, found
  # No relative imports either (they could reach the same modules unseen by the check).
  assert not [f.name for f in files for n in ast.walk(ast.parse(f.read_text()))
              if isinstance(n, ast.ImportFrom) and n.level]


def test_importing_the_models_loads_none_of_them_and_tensorflow_loads_where_used():
  """The whole package as Python loads it, transitive imports included (one process).

  TensorFlow (3-5 s to load) comes with the first tf.data pipeline or TensorBoard writer, so
  a script refuses a bad config or flag at once: the scripts' modules do not load it.
  """
  code = ("import sys, videojax.models; "
          f"print([m for m in sys.modules if m.startswith({FORBIDDEN!r})]); "
          "import videojax.train, videojax.extract, videojax.cli, videojax.tools.evaluate, "
          "videojax.tools.predict; "
          "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras'}))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       timeout=300)
  assert out.stdout.split("\n")[:2] == ["[]", "[]"], out.stdout + out.stderr
