"""Metrics from a confusion matrix and from probabilities, cross-checked with scikit-learn."""
import numpy as np
import pytest
from sklearn import metrics

from videojax import metrics as metrics_lib


def test_summary_matches_sklearn():
  rng = np.random.default_rng(0)
  y_true = rng.integers(0, 4, 200)
  y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 4, 200))
  conf = metrics.confusion_matrix(y_true, y_pred, labels=range(5))  # class 4 has no examples
  s = metrics_lib.summarize(conf, list("abcde"))
  assert abs(s["accuracy"] - metrics.accuracy_score(y_true, y_pred)) < 1e-12
  recall = metrics.recall_score(y_true, y_pred, labels=range(4), average=None)
  np.testing.assert_allclose([s["per_class_accuracy"][c] for c in "abcd"], recall, atol=1e-12)
  assert s["per_class_accuracy"]["e"] is None and s["num_examples"] == 200
  mask = np.isin(y_true, [1, 3])
  assert abs(metrics_lib.subset_accuracy(conf, [1, 3])
             - metrics.accuracy_score(y_true[mask], y_pred[mask])) < 1e-12


def test_confusion_csv(tmp_path):
  metrics_lib.write_confusion_csv(tmp_path / "c.csv", np.array([[3, 1], [0, 2]]), ["x", "y"])
  assert (tmp_path / "c.csv").read_text().splitlines()[1:] == ["x,3,1", "y,0,2"]


# Probability metrics against scikit-learn. Tolerance 1e-12: both compute the same
# ratios of integer counts (or of midrank sums) in float64; only the summation order differs.
TOL = 1e-12


def _probs(n=300, k=7, seed=0, quantize=None, absent=(5,)):
  """Probabilities f64[n, k] that lean toward the label, and labels with `absent` classes unused."""
  rng = np.random.default_rng(seed)
  present = [c for c in range(k) if c not in absent]
  labels = rng.choice(present, n)
  logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[labels]
  if quantize:  # Few distinct scores: many ties, within rows and within columns.
    logits = np.round(logits * quantize) / quantize
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  return probs, labels


@pytest.mark.parametrize("quantize", [None, 1])
def test_top_k_matches_sklearn_with_ties_to_the_lower_index(quantize):
  probs, labels = _probs(quantize=quantize)
  k = probs.shape[1]
  if quantize:
    assert (np.sort(probs, 1)[:, -1] == np.sort(probs, 1)[:, -2]).any()  # ties at the top
  assert metrics_lib.top_k_accuracy(probs, labels, 1) == np.mean(probs.argmax(1) == labels)
  for j in (1, 2, 5, k - 1):
    # sklearn breaks ties toward the higher index; on reversed columns that is our lower one.
    want = metrics.top_k_accuracy_score(k - 1 - labels, probs[:, ::-1], k=j, labels=range(k))
    assert abs(metrics_lib.top_k_accuracy(probs, labels, j) - want) < TOL
  assert metrics_lib.top_k_accuracy(probs, labels, k) == 1.0
  with pytest.raises(ValueError, match="1 <= k <= 7"):
    metrics_lib.top_k_accuracy(probs, labels, 8)


def test_precision_recall_f1_match_sklearn_zero_division_0():
  probs, labels = _probs(quantize=1, absent=(5, 6))
  probs[:, 4] = 0  # class 4: has examples, never predicted (precision 0/0 -> 0)
  probs[labels == 0, 6] = 1.0  # class 6: predicted, never present (recall undefined)
  pred = probs.argmax(1)
  conf = metrics_lib.confusion_matrix(labels, pred, 7)
  np.testing.assert_array_equal(conf, metrics.confusion_matrix(labels, pred, labels=range(7)))
  p, r, f = metrics_lib.precision_recall_f1(conf)
  present = [0, 1, 2, 3, 4]
  sp, sr, sf, _ = metrics.precision_recall_fscore_support(labels, pred, labels=range(7),
                                                          zero_division=0)
  np.testing.assert_allclose(p, sp, atol=TOL)
  np.testing.assert_allclose(r[present], sr[present], atol=TOL)
  np.testing.assert_allclose(f[present], sf[present], atol=TOL)
  assert p[4] == 0 and p[6] == 0 and np.isnan(r[5:]).all() and np.isnan(f[5:]).all()
  m = metrics_lib.classification_metrics(probs, labels, list("abcdefg"))
  for key, fn in [("macro_precision", metrics.precision_score),
                  ("macro_recall", metrics.recall_score), ("macro_f1", metrics.f1_score)]:
    want = fn(labels, pred, labels=present, average="macro", zero_division=0)
    assert abs(m[key] - want) < TOL, key
  assert m["classes_in_split"] == 5 and m["per_class"][5]["recall"] is None
  assert m["per_class"][6] == {"class": "g", "support": 0, "predicted": int((pred == 6).sum()),
                               "accuracy": None, "precision": 0.0, "recall": None, "f1": None,
                               "roc_auc": None}


@pytest.mark.parametrize("quantize", [None, 2])
def test_roc_auc_matches_sklearn_one_vs_rest(quantize):
  probs, labels = _probs(quantize=quantize, absent=(5,))
  auc = metrics_lib.roc_auc_ovr(probs, labels)
  present = [c for c in range(7) if c != 5]
  for c in present:
    assert abs(auc[c] - metrics.roc_auc_score(labels == c, probs[:, c])) < TOL
  assert np.isnan(auc[5])  # no positives: undefined, left out of the macro mean
  m = metrics_lib.classification_metrics(probs, labels, list("abcdefg"))
  assert abs(m["macro_roc_auc"] - np.mean([metrics.roc_auc_score(labels == c, probs[:, c])
                                           for c in present])) < TOL
  assert m["classes_with_auc"] == 6 and m["per_class"][5]["roc_auc"] is None
  # Every class present: sklearn's own multi-class one-vs-rest macro average.
  probs, labels = _probs(quantize=quantize, absent=())
  want = metrics.roc_auc_score(labels, probs, multi_class="ovr", average="macro")
  assert abs(metrics_lib.classification_metrics(probs, labels, list("abcdefg"))["macro_roc_auc"]
             - want) < TOL


def test_roc_auc_of_a_class_without_negatives_is_none():
  labels = np.array([1, 1, 1])
  probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
  m = metrics_lib.classification_metrics(probs, labels, ["a", "b"])
  assert m["macro_roc_auc"] is None and m["classes_with_auc"] == 0
  assert m["top5_accuracy"] is None and m["top1_accuracy"] == 1 / 3  # tie [0.5, 0.5] -> class 0
  assert m["per_class"][0]["precision"] == 0 and m["per_class"][1]["precision"] == 1


def test_classification_metrics_matches_summarize_and_refuses_bad_input():
  probs, labels = _probs()
  m = metrics_lib.classification_metrics(probs, labels, list("abcdefg"))
  s = metrics_lib.summarize(m["confusion"], list("abcdefg"))
  assert m["top1_accuracy"] == s["accuracy"]
  assert [r["accuracy"] for r in m["per_class"]] == list(s["per_class_accuracy"].values())
  with pytest.raises(ValueError, match=r"labels must be integers in \[0, 7\)"):
    metrics_lib.classification_metrics(probs, labels + 1, list("abcdefg"))
  with pytest.raises(ValueError, match="6 class names for probabilities of 7 classes"):
    metrics_lib.classification_metrics(probs, labels, list("abcdef"))
  with pytest.raises(ValueError, match="no examples"):
    metrics_lib.top_k_accuracy(probs[:0], labels[:0], 1)


def test_per_class_csv_leaves_undefined_values_blank(tmp_path):
  m = metrics_lib.classification_metrics(np.array([[0.9, 0.1], [0.3, 0.7]]), np.array([0, 0]),
                                        ["x", "y"])
  metrics_lib.write_per_class_csv(tmp_path / "p.csv", m["per_class"])
  assert (tmp_path / "p.csv").read_text().splitlines() == [
      "class,support,predicted,accuracy,precision,recall,f1,roc_auc",
      "x,2,1,0.5,1.0,0.5,0.6666666666666666,", "y,0,1,,0.0,,,"]


# Expected calibration error: 15 equal-width bins ((m-1)/15, m/15] of top-1 confidence.

def test_ece_by_hand():
  # Confidences .9 and .88 share bin 14 ((13/15, 14/15]); .7 is in bin 11, .62 in bin 10.
  probs = np.array([[0.9, 0.1], [0.88, 0.12], [0.3, 0.7], [0.62, 0.38]])
  labels = np.array([0, 1, 1, 1])  # right, wrong, right, wrong
  # (|1 - (.9 + .88)| + |1 - .7| + |0 - .62|) / 4
  assert metrics_lib.expected_calibration_error(probs, labels) == pytest.approx(0.425, abs=1e-12)
  bins = metrics_lib.calibration_bins(probs, labels)
  assert bins.shape == (3, 15)
  np.testing.assert_allclose(bins[:, 13], [2, 1.78, 1])
  np.testing.assert_allclose(bins[0], np.bincount([13, 13, 10, 9], minlength=15))
  # Always right at confidence 1: calibrated.
  assert metrics_lib.expected_calibration_error(np.eye(3), np.arange(3)) == 0.0
  # Bin edges: m/15 closes bin m; 1.0 is in the last bin.
  edges = np.array([1 / 15, 2 / 15 + 1e-9, 1.0, 0.0])
  assert metrics_lib.calibration_bin(edges).tolist() == [0, 2, 14, 0]


@pytest.mark.parametrize("quantize", [False, True])
def test_ece_matches_the_definition_loop(quantize):
  # A direct reading of Guo et al.'s formula: interval membership, per-bin means.
  rng = np.random.default_rng(3)
  probs = rng.dirichlet(np.full(5, 0.5), size=300)
  if quantize:  # Confidences on the bin edges.
    probs = np.round(probs * 15) / 15
    probs[:, 0] += 1 - probs.sum(1)
    probs = np.abs(probs)
  labels = rng.integers(0, 5, 300)
  conf, correct = probs.max(1), probs.argmax(1) == labels
  want = 0.0
  for m in range(1, 16):
    in_bin = (conf > (m - 1) / 15) & (conf <= m / 15) if m > 1 else conf <= 1 / 15
    if in_bin.any():
      want += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
  got = metrics_lib.expected_calibration_error(probs, labels)
  # Float edges: c * 15 may round across an edge that c / m-comparison does not; rare,
  # and each such example moves ECE by at most 1/n. Without quantising, exact to 1e-12.
  assert got == pytest.approx(want, abs=1e-12 if not quantize else 2 / 300)
  assert metrics_lib.classification_metrics(probs, labels, list("abcde"))["ece"] == got
