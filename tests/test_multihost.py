"""Multi-host data parallelism: 2 local processes over gloo equal 1 process on the same batches.

The features are written directly as shards (no backbone), 4 train shards and 2
test shards, so each of the 2 processes reads its own 2 + 1.
"""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from configs import keras_cnn_rnn
from videojax import distributed, train
from videojax.checkpoint import Checkpoints
from videojax.data import features as F
from videojax.data import parts as parts_lib
from videojax.data.sources.groups import ucf_group

ROOT = pathlib.Path(__file__).resolve().parents[1]
CLASSES = ["a", "b", "c"]
T, D = 6, 8


def _write_features(directory: pathlib.Path, split: str, num_shards: int, per_shard: int,
                    seed: int) -> None:
  rng = np.random.default_rng(seed)
  for j in range(num_shards):
    labels = rng.integers(0, len(CLASSES), per_shard)
    lengths = rng.integers(1, T + 1, per_shard)
    feats = rng.normal(size=(per_shard, T, D)) + labels[:, None, None]
    feats[np.arange(T)[None, :] >= lengths[:, None]] = 0
    # Group gNN of clip i of shard j: two clips per group, so validation holds out whole groups.
    ids = [f"{CLASSES[l]}/v_{CLASSES[l]}_g{(j * per_shard + i) // 2:02d}_c{i % 2:02d}"
           for i, l in enumerate(labels)]
    F.write_shard(directory / F.shard_name(split, j, num_shards), features=feats,
                  lengths=lengths, labels=labels, video_ids=ids, class_names=CLASSES,
                  spec={"backbone": "test", "num_frames": T})


def _config(features_dir, **overrides):
  # The plain recipe (constant rate, no augmentation): these tests are about the machinery.
  c = keras_cnn_rnn.get_config()
  c.data.features_dir = str(features_dir)
  c.data.num_frames, c.data.val_fraction = T, 0.25
  c.model.gru.hidden = (8,)
  c.train.batch_size = 8
  c.train.num_epochs = 2
  c.train.learning_rate = 1e-2
  c.eval.batch_size = 8
  for k, v in overrides.items():
    section, key = k.split(".")
    c[section][key] = v
  return c


@pytest.fixture(scope="module")
def features(tmp_path_factory):
  d = tmp_path_factory.mktemp("mh") / "features"
  d.mkdir()
  _write_features(d, "train", 4, 10, seed=0)
  _write_features(d, "test", 2, 7, seed=1)
  return d


# Started by launch/local.sh, which sets JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID.
_WORKER = textwrap.dedent("""
    import json, os, sys
    from videojax import distributed, platform, train
    from tests.test_multihost import _config
    features_dir, workdir = sys.argv[1:3]
    pid = os.environ["JAX_PROCESS_ID"]
    assert distributed.initialize()
    platform.split_cpu_into_devices(2)
    import jax
    assert jax.process_count() == 2 and len(jax.devices()) == 4, jax.devices()
    r = train.train_and_evaluate(_config(features_dir), workdir, echo=lambda *_: None)
    json.dump(r, open(f"{workdir}/results-process{pid}.json", "w"))
""")


def _params(workdir):
  ckpts = Checkpoints(workdir / "checkpoints")
  params = ckpts.restore_raw(ckpts.latest_step())["params"]
  ckpts.close()
  return params


def test_two_processes_equal_one_process_on_the_same_global_batches(features, tmp_path):
  work2 = tmp_path / "two"
  work2.mkdir()
  env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_NUM_CPU_DEVICES": "2",
         "TF_CPP_MIN_LOG_LEVEL": "2"}
  # The launch script of the README's "Scale out", run for real.
  p = subprocess.run([str(ROOT / "launch" / "local.sh"), "--num_processes=2", "--",
                      sys.executable, "-c", _WORKER, str(features), str(work2)],
                     cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                     text=True, timeout=300)
  assert p.returncode == 0, p.stdout[-3000:]
  r0, r1 = (json.loads((work2 / f"results-process{i}.json").read_text()) for i in range(2))
  # Both processes evaluated the same replicated parameters on every test clip.
  for key in ("confusion", "test_loss", "accuracy", "num_examples", "best_step"):
    assert r0[key] == r1[key], key
  assert r0["num_examples"] == 14 and r0["num_processes"] == 2 and r0["num_devices"] == 4
  # Only process 0 writes logs and results.
  assert (work2 / "results.json").exists()
  assert len((work2 / "metrics.jsonl").read_text().splitlines()) == 2

  # One process, 4 devices, the same 2 data parts: the same global batches.
  work1 = tmp_path / "one"
  r = train.train_and_evaluate(_config(features, **{"data.num_parts": 2,
                                                    "train.num_devices": 4}),
                               str(work1), echo=lambda *_: None)
  assert r["confusion"] == r0["confusion"] and r["best_step"] == r0["best_step"]
  np.testing.assert_allclose(r["test_loss"], r0["test_loss"], rtol=1e-5)
  # Gloo and in-process all-reduce may sum in another order: 1e-5 after 6 Adam steps.
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, atol=1e-5),
               _params(work1), _params(work2))


def test_each_process_reads_its_own_shards_and_the_same_validation_groups(features):
  def load(index, count, num_parts=2):
    return parts_lib.load_parts(
        features, num_parts=num_parts, process_index=index, process_count=count,
        split_validation=lambda fs: train.split_validation(fs, 0.25, 0))
  p0, p1, single = load(0, 2), load(1, 2), load(0, 1)
  assert (p0.part_ids, p1.part_ids, single.part_ids) == ([0], [1], [0, 1])
  # Shards 0 and 2 to part 0, 1 and 3 to part 1; test shard j to part j.
  for split in ("train", "val", "test"):
    a = [v for fs in getattr(p0, split) for v in fs.video_ids]
    b = [v for fs in getattr(p1, split) for v in fs.video_ids]
    both = [v for fs in getattr(single, split) for v in fs.video_ids]
    assert not set(a) & set(b) and sorted(a + b) == sorted(both), split
    np.testing.assert_array_equal(p0.sizes[split], [len(fs) for fs in getattr(single, split)])
  assert p0.sizes["test"].tolist() == [7, 7]
  groups = {split: {ucf_group(v) for p in (p0, p1) for fs in getattr(p, split)
                    for v in fs.video_ids} for split in ("train", "val")}
  assert groups["val"] and not groups["train"] & groups["val"]
  with pytest.raises(ValueError, match="num_parts=3 must be a positive multiple of the 2"):
    load(0, 2, num_parts=3)
  with pytest.raises(F.FeatureError, match="data part 4 of 5 has no training example"):
    load(0, 1, num_parts=5)


def test_distributed_settings_come_from_flags_or_environment(monkeypatch):
  for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID",
               "SLURM_JOB_ID", "SLURM_NTASKS"):
    monkeypatch.delenv(name, raising=False)
  assert distributed.initialize() is False  # nothing configured: single process
  assert distributed.initialize("localhost:1", 1, 0) is False  # one process needs no service
  with pytest.raises(ValueError, match=r"missing \['--num_processes / \$JAX_NUM_PROCESSES'"):
    distributed.initialize("localhost:1", None, 0)
  monkeypatch.setenv("JAX_NUM_PROCESSES", "2")
  monkeypatch.setenv("JAX_PROCESS_ID", "2")
  with pytest.raises(ValueError, match=r"--process_id=2 must lie in \[0, --num_processes=2\)"):
    distributed.initialize("localhost:1")
  monkeypatch.setenv("JAX_PROCESS_ID", "x")
  with pytest.raises(ValueError, match=r"\$JAX_PROCESS_ID='x' must be an integer"):
    distributed.initialize("localhost:1")
