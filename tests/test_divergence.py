"""A diverging run stops at the first NaN/inf step with one line; nothing non-finite is saved."""
import subprocess

import pytest

from tests.test_checkpoint import _digest, _script_config, _steps_on_disk, _train_script
from tests.test_multihost import _config, _write_features
from videojax import config_check, runs, train
from videojax.checkpoint import Checkpoints, check_finite

QUIET = dict(echo=lambda *_: None)


@pytest.fixture(scope="module")
def features(tmp_path_factory):
  d = tmp_path_factory.mktemp("div") / "features"
  d.mkdir()
  _write_features(d, "train", 4, 10, seed=0)
  _write_features(d, "test", 2, 7, seed=1)
  return d


def test_a_nan_learning_rate_is_refused_before_anything_is_written(features, tmp_path):
  work = tmp_path / "run"
  with pytest.raises(config_check.ConfigError,
                     match=r"config.train.learning_rate=nan: a finite number > 0"):
    train.train_and_evaluate(_config(features, **{"train.learning_rate": float("nan")}),
                             str(work), **QUIET)
  assert not work.exists()


def test_a_diverging_script_exits_1_with_one_line_keeping_finite_steps(features, tmp_path):
  work = tmp_path / "run"
  config = _script_config(tmp_path, features, {"train.checkpoint_every_steps": 1})
  proc = _train_script(config, work, "--config.train.learning_rate=1e30",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode == 1, out + err
  assert "Traceback" not in err, err[-3000:]
  lines = [x for x in err.splitlines() if x.startswith("error: ")]
  assert len(lines) == 1 and lines[0].startswith("error: training diverged at step "), err
  assert "lower train.learning_rate (now 1e+30)" in lines[0]
  assert not (work / "results.json").exists()
  ckpts = Checkpoints(work / "checkpoints")
  for s in _steps_on_disk(work):
    check_finite(ckpts.restore_raw(s), f"step {s}")
  ckpts.close()


def test_a_huge_learning_rate_stops_where_the_loss_overflows_keeping_finite_steps(features,
                                                                                   tmp_path):
  work = tmp_path / "run"
  config = _config(features, **{"train.learning_rate": 1e30, "train.checkpoint_every_steps": 1})
  with pytest.raises(train.TrainingDiverged, match=r"^training diverged at step (\d+): .*"
                                                   r"lower train.learning_rate \(now 1e\+30\)"
                     ) as e:
    train.train_and_evaluate(config, str(work), **QUIET)
  step = int(e.value.args[0].split("step ")[1].split(":")[0])
  assert "\n" not in str(e.value)
  saved = _steps_on_disk(work)
  # Every saved step precedes the diverged one, holds finite numbers and is whole.
  assert saved and max(saved) == step - 1
  assert f"the last finite checkpoint, {work.absolute()}/checkpoints/{step - 1}, is kept" \
      in str(e.value)
  ckpts = Checkpoints(work / "checkpoints")
  for s in saved:
    check_finite(ckpts.restore_raw(s), f"step {s}")
  ckpts.close()
  if (work / "metrics.jsonl").exists():
    assert not {"NaN", "Infinity"} & set((work / "metrics.jsonl").read_text().split())
  before = _digest(work / "checkpoints")
  run = runs.load_run(work)  # evaluate/predict take the last finite step
  assert run.step == step - 1 and _digest(work / "checkpoints") == before
