"""videojax.writers: TensorBoard scalars and hparams, the optional Weights & Biases writer."""
import json
import sys
import types

import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

from videojax import writers
from videojax.errors import UserError


def _events(directory):
  """[(step, tag, summary value)] of every event file of directory/tensorboard."""
  return [(e.step, v.tag, v) for path in sorted((directory / "tensorboard").iterdir())
          for e in tf.compat.v1.train.summary_iterator(str(path)) for v in e.summary.value]


def test_epoch_records_go_to_jsonl_and_tensorboard_step_records_to_tensorboard_only(tmp_path):
  hparams = {"train.learning_rate": 0.01, "model.name": "bilstm", "data.sizes": [1, 2],
             "train.resume": True, "log.wandb_project": None}
  w = writers.MetricWriter(tmp_path, echo=lambda *_: None, hparams=hparams)
  w.write_scalars(2, {"loss": 1.5, "learning_rate": 0.25})
  w.write(4, {"train_loss": 1.25})
  w.close()
  assert [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [
      {"step": 4, "train_loss": 1.25}]
  scalars = {(step, tag): float(tf.make_ndarray(v.tensor)) for step, tag, v in _events(tmp_path)
             if v.metadata.plugin_data.plugin_name == "scalars"}
  assert scalars == {(2, "loss"): 1.5, (2, "learning_rate"): 0.25, (4, "train_loss"): 1.25}
  (start,) = [plugin_data_pb2.HParamsPluginData.FromString(v.metadata.plugin_data.content)
              for _, tag, v in _events(tmp_path) if tag == "_hparams_/session_start_info"]
  got = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
         for k, v in start.session_start_info.hparams.items()}
  assert got == {"train.learning_rate": 0.01, "model.name": "bilstm", "data.sizes": "[1, 2]",
                 "train.resume": True, "log.wandb_project": "null"}


def test_wandb_gets_the_config_and_every_record_when_asked(tmp_path, monkeypatch):
  calls = []

  class Run:
    def log(self, metrics, step):
      calls.append(("log", step, metrics))

    def finish(self):
      calls.append(("finish",))

  def init(**kwargs):
    calls.append(("init", kwargs))
    return Run()

  monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))
  ids = []
  for _ in range(2):  # A resumed run continues the same wandb run.
    w = writers.MetricWriter(tmp_path / "run", echo=lambda *_: None, wandb_project="p",
                             hparams={"model.name": "bilstm"})
    w.write_scalars(2, {"loss": 1.5})
    w.write(4, {"train_loss": 1.25})
    w.close()
    ids.append(calls[0][1]["id"])
    assert calls[0][1]["project"] == "p" and calls[0][1]["config"] == {"model.name": "bilstm"}
    assert calls[1:] == [("log", 2, {"loss": 1.5}), ("log", 4, {"train_loss": 1.25}),
                         ("finish",)]
    calls.clear()
  assert ids[0] == ids[1]


def test_asking_for_wandb_without_it_is_one_line(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
  with pytest.raises(UserError, match=r"^config.log.wandb_project='p' needs the wandb package: "
                                      r"pip install wandb") as e:
    writers.MetricWriter(tmp_path, echo=lambda *_: None, wandb_project="p")
  assert "\n" not in str(e.value)
