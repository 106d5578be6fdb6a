"""Metrics from a confusion matrix, cross-checked with scikit-learn."""
import numpy as np
from sklearn import metrics

from videojax import evaluation


def test_summary_matches_sklearn():
  rng = np.random.default_rng(0)
  y_true = rng.integers(0, 4, 200)
  y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 4, 200))
  conf = metrics.confusion_matrix(y_true, y_pred, labels=range(5))  # class 4 has no examples
  s = evaluation.summarize(conf, list("abcde"))
  assert abs(s["accuracy"] - metrics.accuracy_score(y_true, y_pred)) < 1e-12
  recall = metrics.recall_score(y_true, y_pred, labels=range(4), average=None)
  np.testing.assert_allclose([s["per_class_accuracy"][c] for c in "abcd"], recall, atol=1e-12)
  assert s["per_class_accuracy"]["e"] is None and s["num_examples"] == 200
  mask = np.isin(y_true, [1, 3])
  assert abs(evaluation.subset_accuracy(conf, [1, 3])
             - metrics.accuracy_score(y_true[mask], y_pred[mask])) < 1e-12


def test_confusion_csv(tmp_path):
  evaluation.write_confusion_csv(tmp_path / "c.csv", np.array([[3, 1], [0, 2]]), ["x", "y"])
  assert (tmp_path / "c.csv").read_text().splitlines()[1:] == ["x,3,1", "y,0,2"]
