"""The README's runnable shell blocks run, on tiny data (tests/readme_runner.py).

A block marked `<!-- runnable -->` that stops working (a renamed flag or script, a
missing output) fails here.
"""
import pathlib
import subprocess
import sys

import pytest

from tests import readme_runner

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_marked_blocks_are_found_and_a_stray_marker_is_an_error():
  text = ("intro\n<!-- runnable -->\n```bash\necho one \\\n  two\n```\n"
          "```bash\necho not marked\n```\n<!-- runnable -->\n```sh\necho three\n```\n")
  assert readme_runner.runnable_blocks(text) == ["echo one \\\n  two", "echo three"]
  with pytest.raises(ValueError, match="line 1: <!-- runnable --> must come right before"):
    readme_runner.runnable_blocks("<!-- runnable -->\n```python\nprint()\n```\n")
  # The tour of the README: extract, train, then evaluate, predict and report.
  blocks = readme_runner.runnable_blocks((ROOT / "README.md").read_text())
  scripts = [w for b in blocks for w in b.split() if w.startswith("scripts/")]
  assert scripts == ["scripts/extract_features.py", "scripts/train.py", "scripts/evaluate.py",
                     "scripts/predict.py", "scripts/report.py"]


def test_readme_runnable_blocks_run_on_tiny_data():
  p = subprocess.run([sys.executable, str(ROOT / "tests" / "readme_runner.py")], cwd=ROOT,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
  assert p.returncode == 0, p.stdout[-5000:]
  # Every script ran to the end and said what it wrote.
  assert p.stdout.count("] python scripts/") == 5, p.stdout[-5000:]
  for line in ("Done: 2 shard(s) written, 0 already complete, 0 clip(s) failed.",
               "test accuracy", "results in runs/my_gru/eval", "some_clip.mp4\n",
               "run report: runs/my_gru/report.md and runs/my_gru/report.html"):
    assert line in p.stdout, (line, p.stdout[-5000:])
