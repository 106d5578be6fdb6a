"""LSTM, Bidirectional, attention pooling and self-attention against references.

References: PyTorch `nn.LSTM(bidirectional=True)` on packed sequences and
`nn.MultiheadAttention(key_padding_mask=...)`, flax `nn.RNN` / `nn.Bidirectional`
with LSTM cells, and hand computations. Then the two attention classifiers:
padding must not change their parameter gradients.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from videojax.models import create_model
from videojax.models.attention import (
    AttentionPool, SelfAttention, attention_pool, last_valid, masked_softmax)
from videojax.models.rnn import LSTM, Bidirectional

ATOL = 1e-5  # fp32 against other fp32 implementations.
B, T, D, H = 4, 6, 3, 5
LENGTHS = np.array([6, 3, 1, 2])  # Full length, mixed, and a single step.


def _data(seed=0, d=D):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(B, T, d)).astype(np.float32)
  mask = np.arange(T)[None, :] < LENGTHS[:, None]
  return x, mask


def _random_lstm(rng, d, h=H):
  """Our LSTM params, nonzero biases so a misplaced gate block shows."""
  return {
      'kernel': rng.normal(size=(d, 4 * h)).astype(np.float32),
      'recurrent_kernel': 0.5 * rng.normal(size=(h, 4 * h)).astype(np.float32),
      'bias': rng.normal(size=(4 * h,)).astype(np.float32),
  }


@functools.cache
def _bilstm_apply():
  layer = Bidirectional(LSTM(H, return_state=True))
  return jax.jit(layer.apply)


def _ours_stacked(layers, x, mask):
  """Stacked BiLSTM: outputs f32[b, t, 2h], [(state_fwd, state_bwd)] per layer."""
  states = []
  for p in layers:
    x, s = _bilstm_apply()({'params': p}, x, mask)
    states.append(s)
  return np.asarray(x), states


@pytest.mark.parametrize('num_layers', [1, 2])
def test_bilstm_matches_torch_packed(num_layers):
  torch = pytest.importorskip('torch', reason='PyTorch reference not installed')
  x, mask = _data()
  torch.manual_seed(0)
  ref = torch.nn.LSTM(D, H, num_layers=num_layers, bidirectional=True,
                      batch_first=True)
  with torch.no_grad():  # Default biases are tiny; make them matter.
    for name, p in ref.named_parameters():
      if name.startswith('bias'):
        p.normal_()
  sd = {k: v.detach().numpy() for k, v in ref.state_dict().items()}
  layers = []
  for l in range(num_layers):
    layer = {}
    for direction, suffix in (('forward', ''), ('backward', '_reverse')):
      g = lambda n: sd[f'{n}_l{l}{suffix}']  # noqa: E731
      layer[direction] = {
          'kernel': g('weight_ih').T,
          'recurrent_kernel': g('weight_hh').T,
          'bias': g('bias_ih') + g('bias_hh'),
      }
    layers.append(layer)

  packed = torch.nn.utils.rnn.pack_padded_sequence(
      torch.from_numpy(x), torch.from_numpy(LENGTHS), batch_first=True,
      enforce_sorted=False)
  with torch.no_grad():
    out, (h_n, c_n) = ref(packed)
  out, _ = torch.nn.utils.rnn.pad_packed_sequence(
      out, batch_first=True, total_length=T)
  out, h_n, c_n = out.numpy(), h_n.numpy(), c_n.numpy()

  seq, states = _ours_stacked(layers, x, mask)
  # pad_packed_sequence writes zeros at padded steps, and so do we.
  np.testing.assert_allclose(seq, out, atol=ATOL)
  assert (seq[~mask] == 0).all()
  for l, (s_fwd, s_bwd) in enumerate(states):
    # torch's h_n is [num_layers * 2, b, h]: layer l forward at 2l, reverse
    # at 2l + 1; the reverse final state is the one after step 0.
    for k, (h, c) in enumerate((s_fwd, s_bwd)):
      np.testing.assert_allclose(h, h_n[2 * l + k], atol=ATOL)
      np.testing.assert_allclose(c, c_n[2 * l + k], atol=ATOL)


def test_bilstm_gradients_match_torch_packed():
  # Autodiff through the bidirectional scan; torch's autograd is the reference.
  torch = pytest.importorskip('torch', reason='PyTorch reference not installed')
  x, mask = _data()
  rng = np.random.default_rng(3)
  w_out = rng.normal(size=(B, T, 2 * H)).astype(np.float32)
  w_h, w_c = (rng.normal(size=(2, B, H)).astype(np.float32) for _ in range(2))
  torch.manual_seed(0)
  ref = torch.nn.LSTM(D, H, bidirectional=True, batch_first=True)
  with torch.no_grad():
    for name, p in ref.named_parameters():
      if name.startswith('bias'):
        p.normal_()
  packed = torch.nn.utils.rnn.pack_padded_sequence(
      torch.from_numpy(x), torch.from_numpy(LENGTHS), batch_first=True,
      enforce_sorted=False)
  out, (h_n, c_n) = ref(packed)
  out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
  loss = ((out * torch.from_numpy(w_out)).sum() + (h_n * torch.from_numpy(w_h)).sum()
          + (c_n * torch.from_numpy(w_c)).sum())
  loss.backward()
  sd = {k: v.detach().numpy() for k, v in ref.named_parameters()}
  grad = {k: v.grad.numpy() for k, v in ref.named_parameters()}
  params = {}
  for direction, suffix in (('forward', ''), ('backward', '_reverse')):
    params[direction] = {'kernel': sd[f'weight_ih_l0{suffix}'].T,
                         'recurrent_kernel': sd[f'weight_hh_l0{suffix}'].T,
                         'bias': sd[f'bias_ih_l0{suffix}'] + sd[f'bias_hh_l0{suffix}']}
  x_garbage = np.where(mask[..., None], x, 1e30).astype(np.float32)

  def our_loss(p):
    seq, ((h_f, c_f), (h_b, c_b)) = _bilstm_apply()({'params': p}, x_garbage, mask)
    return ((seq * w_out).sum() + (jnp.stack([h_f, h_b]) * w_h).sum()
            + (jnp.stack([c_f, c_b]) * w_c).sum())

  ours = jax.grad(our_loss)(params)
  for direction, suffix in (('forward', ''), ('backward', '_reverse')):
    g = ours[direction]
    np.testing.assert_allclose(g['kernel'], grad[f'weight_ih_l0{suffix}'].T, atol=ATOL)
    np.testing.assert_allclose(g['recurrent_kernel'], grad[f'weight_hh_l0{suffix}'].T,
                               atol=ATOL)
    # torch's two biases get the same gradient; ours is their sum's.
    np.testing.assert_allclose(g['bias'], grad[f'bias_ih_l0{suffix}'], atol=ATOL)


def test_bilstm_matches_flax_bidirectional():
  x, mask = _data()
  rng = np.random.default_rng(1)
  ours = {'forward': _random_lstm(rng, D), 'backward': _random_lstm(rng, D)}

  def to_flax(p):
    # Same gate blocks (i, f, g, o); flax has one bias per gate, on h.
    blk = lambda a, g: a[..., g * H:(g + 1) * H]  # noqa: E731
    cell = {}
    for g, name in enumerate('ifgo'):
      cell[f'i{name}'] = {'kernel': blk(p['kernel'], g)}
      cell[f'h{name}'] = {'kernel': blk(p['recurrent_kernel'], g),
                          'bias': blk(p['bias'], g)}
    return {'cell': cell}

  # OptimizedLSTMCell keeps LSTMCell's param names, so this map fits both.
  cell = nn.OptimizedLSTMCell
  ref = nn.Bidirectional(nn.RNN(cell(H)), nn.RNN(cell(H)), return_carry=True)
  flax_params = {'forward_rnn': to_flax(ours['forward']),
                 'backward_rnn': to_flax(ours['backward'])}
  # nn.RNN picks the carry at step length - 1 of its scan, which wraps to -1
  # for a zero-length row; every length here is >= 1.
  (f_fwd, f_bwd), f_seq = ref.apply({'params': flax_params}, x,
                                    seq_lengths=jnp.asarray(LENGTHS))
  seq, [(s_fwd, s_bwd)] = _ours_stacked([ours], x, mask)
  f_seq = np.asarray(f_seq)
  np.testing.assert_allclose(seq[mask], f_seq[mask], atol=ATOL)
  # flax's carry is (c, h); ours is (h, c).
  for (h, c), (fc, fh) in ((s_fwd, f_fwd), (s_bwd, f_bwd)):
    np.testing.assert_allclose(h, fh, atol=ATOL)
    np.testing.assert_allclose(c, fc, atol=ATOL)


def test_lstm_init_layout_and_zero_length():
  x, mask = _data()
  mask[1] = False
  x[1] = np.nan
  # jit: op-by-op init (orthogonal's QR, ...) compiles more than one program.
  (seq, (h, c)), v = jax.jit(LSTM(H, return_state=True).init_with_output)(
      jax.random.key(0), x, mask)
  p = v['params']
  assert jax.tree.map(jnp.shape, p) == {
      'kernel': (D, 4 * H), 'recurrent_kernel': (H, 4 * H), 'bias': (4 * H,)}
  # Keras' unit_forget_bias: ones on the forget block (the 2nd), zeros else.
  np.testing.assert_array_equal(p['bias'], np.repeat([0.0, 1.0, 0.0, 0.0], H))
  assert np.isfinite(seq).all() and np.isfinite(h).all()
  np.testing.assert_array_equal(h[1], 0.0)
  np.testing.assert_array_equal(c[1], 0.0)
  lengths = mask.sum(1)
  rows = lengths > 0
  np.testing.assert_array_equal(
      h[rows], np.asarray(seq)[np.arange(B), lengths - 1][rows])
  final = jax.jit(LSTM(H, return_sequences=False).apply)(v, x, mask)
  np.testing.assert_array_equal(final, h)


def test_attention_pool_hand_checks():
  x, mask = _data(d=4)
  scores = np.random.default_rng(3).normal(size=(B, T)).astype(np.float32)
  pooled = np.asarray(attention_pool(x, scores, mask))
  for i, n in enumerate(LENGTHS):
    w = np.exp(scores[i, :n] - scores[i, :n].max())
    np.testing.assert_allclose(pooled[i], (w / w.sum()) @ x[i, :n], atol=1e-6)
  # One real step: weight exactly 1 on it, whatever its score.
  np.testing.assert_allclose(pooled[2], x[2, 0], rtol=1e-7)
  weights = np.asarray(masked_softmax(scores, mask))
  np.testing.assert_array_equal(weights[2], np.eye(T)[0])
  assert (weights[~mask] == 0).all()


def test_attention_pool_ignores_padding_and_empty_rows():
  x, mask = _data(d=4)
  mask[1] = False  # Zero-length row.
  pool = AttentionPool(hidden=8)
  params = jax.jit(pool.init)(jax.random.key(0), x, mask)
  apply = jax.jit(pool.apply)
  want = np.asarray(apply(params, x, mask))
  np.testing.assert_array_equal(want[1], 0.0)
  garbage = x.copy()
  garbage[~mask] = np.nan
  got = np.asarray(apply(params, garbage, mask))
  np.testing.assert_allclose(got, want, atol=1e-6)
  # Scores of padded steps are replaced before the softmax, so even inf ones
  # cannot leak, and gradients stay finite.
  scores = np.where(mask, 0.0, np.inf).astype(np.float32)
  np.testing.assert_array_equal(
      np.asarray(attention_pool(x, scores, mask))[1], 0.0)
  grads = jax.jit(jax.grad(lambda p: pool.apply(p, garbage, mask).sum()))(
      params)
  assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))
  last = np.asarray(last_valid(garbage, mask))
  for i, n in enumerate(mask.sum(1)):
    np.testing.assert_array_equal(last[i], x[i, n - 1] if n else 0.0)


def test_self_attention_matches_torch_key_padding_mask():
  torch = pytest.importorskip('torch', reason='PyTorch reference not installed')
  d, heads = 8, 2
  x, mask = _data(d=d)
  torch.manual_seed(0)
  ref = torch.nn.MultiheadAttention(d, heads, batch_first=True)
  with torch.no_grad():
    ref.in_proj_bias.normal_()
    ref.out_proj.bias.normal_()
    xt = torch.from_numpy(x)
    # torch's key_padding_mask is True where a key is ignored.
    want, _ = ref(xt, xt, xt, key_padding_mask=torch.from_numpy(~mask),
                  need_weights=False)
  want = want.numpy()
  w_in = ref.in_proj_weight.detach().numpy()
  b_in = ref.in_proj_bias.detach().numpy()
  hd = d // heads
  proj = {}
  for j, name in enumerate(('query', 'key', 'value')):
    proj[name] = {'kernel': w_in[j * d:(j + 1) * d].T.reshape(d, heads, hd),
                  'bias': b_in[j * d:(j + 1) * d].reshape(heads, hd)}
  proj['out'] = {
      'kernel': ref.out_proj.weight.detach().numpy().T.reshape(heads, hd, d),
      'bias': ref.out_proj.bias.detach().numpy()}
  layer = SelfAttention(heads)
  params = {'params': {'attention': proj}}
  got = np.asarray(layer.apply(params, x, mask, train=False))
  np.testing.assert_allclose(got[mask], want[mask], atol=ATOL)
  assert (got[~mask] == 0).all()
  # A row with no real keys: torch gives NaN there; ours gives zeros.
  mask[1] = False
  x[1] = np.nan
  got = np.asarray(layer.apply(params, x, mask, train=False))
  np.testing.assert_array_equal(got[1], 0.0)
  assert np.isfinite(got).all()


class _FlaxSelfAttention(nn.Module):
  """SelfAttention as it was built on flax's own layer: the reference."""
  num_heads: int
  dropout_rate: float

  @nn.compact
  def __call__(self, x, mask, *, train):
    x = jnp.where(mask[..., None], x, 0)
    y = nn.MultiHeadDotProductAttention(
        num_heads=self.num_heads, dropout_rate=self.dropout_rate, broadcast_dropout=False,
        kernel_init=nn.initializers.xavier_uniform(), name='attention',
    )(x, mask=mask[:, None, None, :], deterministic=not train)
    return jnp.where(mask[..., None], y, 0)


def test_self_attention_matches_flax_multi_head_attention():
  # Same param tree and initial values, same outputs (dropout included: the
  # same 'dropout' rng draws the same mask) and same gradients.
  d, heads = 12, 3
  x, mask = _data(d=d)
  ours, ref = SelfAttention(heads, dropout_rate=0.3), _FlaxSelfAttention(heads, 0.3)
  params = ours.init(jax.random.key(0), x, mask, train=False)
  ref_params = ref.init(jax.random.key(0), x, mask, train=False)
  assert jax.tree.structure(params) == jax.tree.structure(ref_params)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
    np.testing.assert_array_equal(a, b)
  params = jax.tree.map(  # nonzero biases, so a misplaced one shows
      lambda p: p + jax.random.normal(jax.random.key(p.size), p.shape), params)
  rngs = {'dropout': jax.random.key(7)}
  for train in (False, True):
    run = lambda m, p: m.apply(p, x, mask, train=train, rngs=rngs)  # noqa: E731
    np.testing.assert_allclose(run(ours, params), run(ref, params), atol=ATOL)
    loss = lambda m: lambda p: (run(m, p) ** 2).sum()  # noqa: E731
    # fp32 sums in another order. Entries reach 4e3; atol 1e-4 covers those that cancel to ~0.
    for a, b in zip(jax.tree.leaves(jax.grad(loss(ours))(params)),
                    jax.tree.leaves(jax.grad(loss(ref))(params))):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)
  dropped = ours.apply(params, x, mask, train=True, rngs={'dropout': jax.random.key(7)})
  assert not np.allclose(dropped, ours.apply(params, x, mask, train=False))


GRAD_LENGTHS = (5, 2)


@pytest.mark.parametrize('name,kwargs', [
    ('bilstm_attention', dict(width=16, num_heads=2)),
    ('transformer', dict(width=16, num_heads=2, num_layers=1, mlp_dim=16,
                         positions='learned', max_len=8, pooling='attention')),
])
def test_padding_gives_same_gradients_as_unpadded(name, kwargs):
  # Unpadded: each clip alone at its own length. Padded: one batch at t = 8
  # with large garbage in the padding. The summed losses are equal, so the
  # gradients must be too, up to fp32 summation order.
  model = create_model(name, 3, **kwargs)
  rng = np.random.default_rng(4)
  clips = [rng.normal(size=(n, D)).astype(np.float32) for n in GRAD_LENGTHS]
  labels = np.array([0, 2])
  t = 8
  x = 1e3 * rng.normal(size=(len(clips), t, D)).astype(np.float32)
  mask = np.arange(t)[None, :] < np.array(GRAD_LENGTHS)[:, None]
  for i, c in enumerate(clips):
    x[i, :len(c)] = c
  # Random params from the shapes alone: init would cost one more compile.
  shapes = jax.eval_shape(
      lambda: model.init(jax.random.key(0), x, mask, train=False))
  params = jax.tree.map(
      lambda s: 0.3 * rng.normal(size=s.shape).astype(np.float32), shapes)

  def grad(p, x, mask, labels):
    def loss(p):
      logits = model.apply(p, x, mask, train=False)
      return -jnp.take_along_axis(jax.nn.log_softmax(logits),
                                  labels[:, None], axis=1).sum()
    return jax.grad(loss)(p)

  @jax.jit  # One compile for all three shapes: cheaper than three.
  def padded_and_unpadded(p):
    alone = [grad(p, c[None], np.ones((1, len(c)), bool), labels[i:i + 1])
             for i, c in enumerate(clips)]
    return grad(p, x, mask, labels), jax.tree.map(jnp.add, *alone)

  padded, unpadded = padded_and_unpadded(params)
  flat_p, flat_u = jax.tree.leaves(padded), jax.tree.leaves(unpadded)
  assert max(np.abs(g).max() for g in flat_u) > 1e-3  # Not trivially 0.
  for a, b in zip(flat_p, flat_u):
    np.testing.assert_allclose(a, b, atol=1e-5)  # fp32 sums in other orders.


@pytest.mark.parametrize('name', ['bilstm_attention', 'transformer'])
def test_bad_inputs_raise(name):
  model = create_model(name, 3)
  x, mask = _data()
  with pytest.raises(ValueError, match=r'\(4, 6, 3\).*\(4, 5\)'):
    jax.eval_shape(lambda: model.init(
        jax.random.key(0), x, mask[:, :5], train=False))
  with pytest.raises(ValueError, match='num_heads'):
    jax.eval_shape(lambda: model.clone(width=30).init(
        jax.random.key(0), x, mask, train=False))


def test_layer_shape_errors_and_transformer_options():
  x, mask = _data()
  with pytest.raises(ValueError, match=r'\(4, 6, 3\).*\(4, 5\)'):
    LSTM(H).init(jax.random.key(0), x, mask[:, :5])
  with pytest.raises(ValueError, match=r'\(4, 6, 3\).*\(4, 5\)'):
    attention_pool(x, mask[:, :5].astype(np.float32), mask[:, :5])
  model = create_model('transformer', 3, positions='learned', max_len=4)
  with pytest.raises(ValueError, match='max_len 4'):
    jax.eval_shape(lambda: model.init(jax.random.key(0), x, mask, train=False))
  with pytest.raises(ValueError, match='pooling'):
    jax.eval_shape(lambda: model.clone(pooling='max').init(
        jax.random.key(0), x, mask, train=False))


@pytest.mark.parametrize('bidirectional', [False, True])
@pytest.mark.parametrize('pooling', ['mean', 'last'])
def test_lstm_classifiers_match_torch_packed(bidirectional, pooling):
  # 'lstm' / 'bilstm': two torch layers on packed sequences, pooled by hand
  # (mean of pad_packed_sequence's outputs over the real steps, or h_n of the
  # last layer), then the same linear head in numpy.
  torch = pytest.importorskip('torch', reason='PyTorch reference not installed')
  x, mask = _data()
  k = 3
  torch.manual_seed(1)
  ref = torch.nn.LSTM(D, H, num_layers=2, bidirectional=bidirectional, batch_first=True)
  with torch.no_grad():
    for name, p in ref.named_parameters():
      if name.startswith('bias'):
        p.normal_()
  sd = {n: v.detach().numpy() for n, v in ref.state_dict().items()}
  rng = np.random.default_rng(5)
  width = 2 * H if bidirectional else H
  head = {'kernel': rng.normal(size=(width, k)).astype(np.float32),
          'bias': rng.normal(size=(k,)).astype(np.float32)}
  params = {'logits': head}
  for l in range(2):
    layer = {}
    for direction, suffix in (('forward', ''), ('backward', '_reverse'))[:1 + bidirectional]:
      g = lambda n: sd[f'{n}_l{l}{suffix}']  # noqa: E731
      layer[direction] = {'kernel': g('weight_ih').T, 'recurrent_kernel': g('weight_hh').T,
                          'bias': g('bias_ih') + g('bias_hh')}
    if bidirectional:
      params[f'bilstm_{l}'] = layer
    else:
      params[f'lstm_{l}'] = layer['forward']
  model = create_model('bilstm' if bidirectional else 'lstm', k, hidden=(H, H),
                       pooling=pooling)
  got = np.asarray(jax.jit(functools.partial(model.apply, train=False))(
      {'params': params}, x, mask))

  packed = torch.nn.utils.rnn.pack_padded_sequence(
      torch.from_numpy(x), torch.from_numpy(LENGTHS), batch_first=True, enforce_sorted=False)
  with torch.no_grad():
    out, (h_n, _) = ref(packed)
  out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
  if pooling == 'mean':
    pooled = out.numpy().sum(1) / LENGTHS[:, None]
  else:  # h_n: [layers * directions, b, h]; the last layer's, forward first.
    pooled = np.concatenate(list(h_n.numpy()[-2 if bidirectional else -1:]), axis=-1)
  want = pooled @ head['kernel'] + head['bias']
  np.testing.assert_allclose(got, want, atol=ATOL)
  assert np.abs(want).max() > 0.1  # Not trivially small.
