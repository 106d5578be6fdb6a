"""examples/quickstart.py runs, cell by cell as a script, at its tiny size (QUICKSTART_SIZE=tiny)."""
import json
import pathlib
import runpy

ROOT = pathlib.Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.py"


def test_quickstart_goes_from_videos_to_a_plot(tmp_path, monkeypatch):
  monkeypatch.setenv("QUICKSTART_SIZE", "tiny")
  monkeypatch.setenv("QUICKSTART_WORKDIR", str(tmp_path))
  monkeypatch.delenv("QUICKSTART_VIDEOS", raising=False)
  assert QUICKSTART.read_text().count("\n# %%") >= 10  # Notebook cells.
  ns = runpy.run_path(str(QUICKSTART), run_name="__main__")
  assert len(ns["classes"]) == 9 and not ns["report"]["failed"]
  run = tmp_path / "gru"
  assert json.loads((run / "results.json").read_text())["best_step"] == ns["results"]["best_step"]
  # The evaluation saw every test clip once; the prediction is a distribution over the classes.
  assert ns["metrics"]["num_examples"] == ns["results"]["num_examples"] > 0
  assert len(ns["top"]) == 3 and ns["top"][0][0] in ns["classes"]
  assert 0 < sum(p for _, p in ns["top"]) <= 1 + 1e-6
  assert (run / "eval" / "confusion.png").is_file()
  assert (tmp_path / "quickstart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
