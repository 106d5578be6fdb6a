"""Padding, batch and order invariances of the temporal classifiers."""

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videojax.models import MODEL_NAMES, create_model
from videojax.models.temporal import masked_mean

ATOL = 1e-6  # fp32; padding must not change results beyond rounding.
B, T, D, K = 3, 6, 8, 4
LENGTHS = np.array([6, 4, 2])
T_LONG = T + 4  # One padded length for every test: each new shape compiles.
# Per-frame input of models that read a map per frame (`reads_maps`: the ConvLSTMs).
MAP_SHAPE = (4, 4, 3)


def _clip(model, t=T, lengths=LENGTHS, pad_value=0.0, seed=0):
  """Inputs f32[b, t, ...] for `model`, equal to the base clip on valid frames.

  Features f32[b, t, d], or maps f32[b, t, h, w, c] (MAP_SHAPE) for models that read them.
  """
  step = MAP_SHAPE if getattr(model, "reads_maps", False) else (D,)
  base = np.random.default_rng(seed).normal(size=(B, T) + step)
  base = base.astype(np.float32)
  x = np.full((B, t) + step, pad_value, np.float32)
  mask = np.arange(t)[None, :] < np.asarray(lengths)[:, None]
  x[:, :T] = base
  x[~mask] = pad_value
  return x, mask


@functools.cache
def _model_and_params(name):
  """Model and params, cached: every compile on CPU costs seconds."""
  model = create_model(name, K)
  x, mask = _clip(model)
  params = jax.jit(functools.partial(model.init, train=False))(
      jax.random.key(0), x, mask)
  return model, params


@functools.cache
def _jitted_apply(model):
  return jax.jit(functools.partial(model.apply, train=False))


def _logits(model, params, x, mask):
  return np.asarray(_jitted_apply(model)(params, x, mask))


@pytest.fixture(params=MODEL_NAMES)
def model_and_params(request):
  return _model_and_params(request.param)


def test_longer_padding_changes_nothing(model_and_params):
  model, params = model_and_params
  want = _logits(model, params, *_clip(model))
  got = _logits(model, params, *_clip(model, t=T_LONG))
  np.testing.assert_allclose(got, want, atol=ATOL)


def test_garbage_padding_changes_nothing(model_and_params):
  model, params = model_and_params
  want = _logits(model, params, *_clip(model))
  x, mask = _clip(model, t=T_LONG)
  x[~mask] = 1e6 * np.random.default_rng(1).normal(size=x[~mask].shape)
  np.testing.assert_allclose(_logits(model, params, x, mask), want, atol=ATOL)
  x[~mask] = np.nan
  np.testing.assert_allclose(_logits(model, params, x, mask), want, atol=ATOL)


def test_examples_are_independent(model_and_params):
  model, params = model_and_params
  x, mask = _clip(model)
  want = _logits(model, params, x, mask)[1]
  other, _ = _clip(model, seed=7)
  x2 = other.copy()
  x2[1] = x[1]
  mask2 = np.ones_like(mask)  # Other rows now full length, row 1 unchanged.
  mask2[1] = mask[1]
  got = _logits(model, params, x2, mask2)
  np.testing.assert_allclose(got[1], want, atol=ATOL)
  np.testing.assert_allclose(_logits(model, params, x[1:2], mask[1:2])[0],
                             want, atol=ATOL)


# bilstm_attention and transformer: test_lstm_attention pins the stronger form (each clip
# alone against the padded batch, attention pooling and learned positions); their forward
# pass under this padding is pinned for every model by test_longer_padding_changes_nothing.
@pytest.mark.parametrize(
    "name", [n for n in MODEL_NAMES if n not in ("bilstm_attention", "transformer")])
def test_padding_gives_same_gradients(name):
  model, params = _model_and_params(name)
  labels = jnp.array([0, 3, 1])

  def loss(p, x, mask):
    logits = model.apply(p, x, mask, train=False)
    return -jnp.take_along_axis(jax.nn.log_softmax(logits), labels[:, None],
                                axis=1).sum()

  grad = jax.jit(jax.grad(loss))
  g_short = grad(params, *_clip(model))
  x, mask = _clip(model, t=T_LONG)
  x[~mask] = 1e3 * np.random.default_rng(2).normal(size=x[~mask].shape)
  g_long = grad(params, x, mask)
  flat_short, _ = jax.tree.flatten(g_short)
  flat_long, _ = jax.tree.flatten(g_long)
  assert any(np.abs(g).max() > 1e-4 for g in flat_short)  # Not trivially 0.
  for a, b in zip(flat_short, flat_long):
    np.testing.assert_allclose(a, b, atol=1e-5)  # Sums of many fp32 terms.


def test_zero_length_gives_finite_logits(model_and_params):
  model, params = model_and_params
  x, mask = _clip(model, lengths=[6, 0, 2], pad_value=np.nan)
  logits = _logits(model, params, x, mask)
  assert np.isfinite(logits).all()


def test_dropout_only_in_training(model_and_params):
  model, params = model_and_params
  model = model.clone(dropout=0.5)
  x, mask = _clip(model)
  eval_logits = _logits(model, params, x, mask)
  train_apply = jax.jit(lambda key: model.apply(
      params, x, mask, train=True, rngs={'dropout': key}))
  a = train_apply(jax.random.key(1))
  b = train_apply(jax.random.key(2))
  assert np.abs(np.asarray(a - b)).max() > 1e-4
  assert np.abs(np.asarray(a) - eval_logits).max() > 1e-4


def _reverse_valid(x, mask):
  out = x.copy()
  for i, n in enumerate(mask.sum(1)):
    out[i, :n] = x[i, :n][::-1]
  return out


def test_gru_is_order_sensitive():
  model, params = _model_and_params('gru')
  x, mask = _clip(model)
  diff = _logits(model, params, x, mask) - _logits(
      model, params, _reverse_valid(x, mask), mask)
  # Rows with >1 frame must change; 1e-4 is far above fp32 rounding.
  assert np.abs(diff).max(axis=1).min() > 1e-4


def test_meanpool_is_order_invariant():
  model, params = _model_and_params('meanpool')
  x, mask = _clip(model)
  rng = np.random.default_rng(3)
  shuffled = x.copy()
  for i, n in enumerate(LENGTHS):
    shuffled[i, :n] = x[i, rng.permutation(n)]
  for y in (_reverse_valid(x, mask), shuffled):
    # Exact in math; summing in another order may differ by an ulp.
    np.testing.assert_allclose(_logits(model, params, y, mask),
                               _logits(model, params, x, mask), atol=ATOL)


def test_masked_mean():
  x = jnp.array([[[1.0], [3.0], [100.0]], [[5.0], [7.0], [9.0]]])
  mask = jnp.array([[True, True, False], [False, False, False]])
  np.testing.assert_array_equal(masked_mean(x, mask), [[2.0], [0.0]])


@pytest.mark.parametrize('name', MODEL_NAMES)
def test_bad_shapes_raise_at_trace_time(name):
  model, params = _model_and_params(name)
  x, mask = _clip(model)
  with pytest.raises(ValueError, match=re.escape(str(x.shape)) + r'.*\(3, 5\)'):
    jax.eval_shape(lambda: model.apply(params, x, mask[:, :5], train=False))
  with pytest.raises(ValueError, match=r'\(3, 6\)'):
    jax.eval_shape(lambda: model.apply(params, x[..., 0], mask, train=False))


def test_create_model_errors():
  with pytest.raises(ValueError, match='gru.*meanpool'):
    create_model('rnn', K)
  with pytest.raises(ValueError, match='hiden'):
    create_model('gru', K, hiden=(4,))
  # JSON configs give lists; the module must still hash (jit, apply).
  model = create_model('gru', K, hidden=[4, 2])
  assert model.hidden == (4, 2) and hash(model) is not None


def test_linear_probe_is_mean_then_dense():
  # numpy reference: masked mean of the real frames, then x W + b with the
  # model's own params; fp32 against fp64, so 1e-5.
  model, params = _model_and_params('linear_probe')
  x, mask = _clip(model, t=T_LONG)
  x[~mask] = 1e6  # Padding must not count.
  p = params['params']
  assert set(p) == {'logits'}  # One layer: a linear model of the mean.
  mean = np.stack([x[i, :n].astype(np.float64).mean(0) for i, n in enumerate(LENGTHS)])
  want = mean @ np.asarray(p['logits']['kernel']) + np.asarray(p['logits']['bias'])
  np.testing.assert_allclose(_logits(model, params, x, mask), want, atol=1e-5)
