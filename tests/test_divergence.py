"""A diverging run stops at the first NaN/inf step with one line; nothing non-finite is saved."""
import subprocess

import pytest

from tests.test_checkpoint import _digest, _script_config, _steps_on_disk, _train_script
from tests.test_multihost import _config, _write_features
from videojax import runs, train
from videojax.checkpoint import Checkpoints, check_finite

QUIET = dict(echo=lambda *_: None)


@pytest.fixture(scope="module")
def features(tmp_path_factory):
  d = tmp_path_factory.mktemp("div") / "features"
  d.mkdir()
  _write_features(d, "train", 4, 10, seed=0)
  _write_features(d, "test", 2, 7, seed=1)
  return d


def test_a_nan_learning_rate_stops_the_script_at_step_1_saving_nothing(features, tmp_path):
  work = tmp_path / "run"
  config = _script_config(tmp_path, features, {"train.checkpoint_every_steps": 1})
  proc = _train_script(config, work, "--config.train.learning_rate=nan",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  out, err = proc.communicate(timeout=300)
  assert proc.returncode != 0, out + err
  # A NaN learning rate makes the first update NaN: the run stops before any save.
  assert ("TrainingDiverged: training diverged at step 1: the loss, a gradient or the updated "
          "parameters are NaN/inf; lower train.learning_rate (now nan)") in err, err[-3000:]
  assert "no checkpoint was saved" in err
  assert _steps_on_disk(work) == [] and not (work / "results.json").exists()
  assert not (work / "metrics.jsonl").exists()  # no epoch ended


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
