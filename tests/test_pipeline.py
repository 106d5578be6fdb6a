"""tf.data pipelines: masks from lengths, exact epochs, resumable order, padded eval."""
import itertools

import numpy as np

from videojax.data import pipeline
from videojax.data.features import FeatureSet


def _fs(n=10, t=5, d=2):
  lengths = (np.arange(n) % t + 1).astype(np.int32)
  feats = np.repeat(np.arange(n, dtype=np.float16)[:, None, None], t, 1).repeat(d, 2)
  return FeatureSet(features=feats, lengths=lengths, labels=np.arange(n) % 3,
                    video_ids=[str(i) for i in range(n)], class_names=["a", "b", "c"],
                    spec={}, failed=[])


def test_train_batches_shapes_masks_and_epochs_without_repeats():
  fs = _fs()
  it = pipeline.train_batches(fs, 4, seed=0)
  epoch = [next(it) for _ in range(pipeline.steps_per_epoch(10, 4))]
  b = epoch[0]
  assert b["features"].shape == (4, 5, 2) and b["features"].dtype == np.float16
  assert b["mask"].dtype == bool and b["valid"].all()
  ids = np.concatenate([x["features"][:, 0, 0] for x in epoch]).astype(int)
  assert len(set(ids)) == 8  # 2 full batches, no example twice in an epoch
  for x in epoch:
    np.testing.assert_array_equal(x["mask"].sum(1), fs.lengths[x["features"][:, 0, 0].astype(int)])
    np.testing.assert_array_equal(x["label"], fs.labels[x["features"][:, 0, 0].astype(int)])


def test_order_depends_on_seed_and_epoch():
  fs = _fs()
  def ids(seed, n):
    return [tuple(b["features"][:, 0, 0]) for b in itertools.islice(
        pipeline.train_batches(fs, 4, seed=seed), n)]
  first = ids(0, 4)
  assert first == ids(0, 4)
  assert first != ids(1, 4)
  assert first[:2] != first[2:4]  # a new permutation each epoch


def test_resuming_at_a_step_gives_the_same_batches():
  fs = _fs()
  full = list(itertools.islice(pipeline.train_batches(fs, 3, seed=7), 9))
  resumed = list(itertools.islice(pipeline.train_batches(fs, 3, seed=7, start_step=5), 4))
  for a, b in zip(full[5:], resumed):
    np.testing.assert_array_equal(a["features"], b["features"])


def test_eval_counts_every_example_once_and_marks_padding_invalid():
  fs = _fs(n=10)
  batches = list(pipeline.eval_batches(fs, 4))
  assert len(batches) == pipeline.num_eval_batches(10, 4) == 3
  valid = np.concatenate([b["valid"] for b in batches])
  ids = np.concatenate([b["features"][:, 0, 0] for b in batches]).astype(int)
  assert valid.sum() == 10
  np.testing.assert_array_equal(np.sort(ids[valid]), np.arange(10))
  last = batches[-1]
  assert not last["mask"][~last["valid"]].any()


def test_batch_larger_than_dataset_names_the_key():
  import pytest
  with pytest.raises(ValueError, match="train.batch_size=32 exceeds the 10"):
    pipeline.train_batches(_fs(), 32, seed=0)
