"""Times each CPU trick of the models against the standard path, whole step and op alone.

  python benchmarks/bench_kernels.py --repeats 7
  python benchmarks/bench_kernels.py --tricks depthwise --steps backbones

Tricks (the standard path each is timed against):
  pointwise    1x1 convolutions as matmuls       vs nn.Conv(f, (1, 1))
  depthwise    depthwise conv as k^2 shifted sums vs XLA's grouped convolution
  attention    hand-written multi-head attention vs nn.MultiHeadDotProductAttention
  scan_order   custom VJPs of the bidirectional scan's two gathers vs autodiff
  linear_rec   LSTM recurrent-kernel gradient after the loop (custom VJP) vs autodiff
  reverse      custom VJP of reverse_within_length vs autodiff

Each trick is timed on the realistic steps that use it (the jitted train step of
configs/default.py's gru, bilstm_attention and transformer at b 32, t 20,
d 1280 on every local device, as scripts/train.py runs it; the backbone forward
of efficientnet_lite0 / resnet18 at 224 px, batch 16, as extraction runs it) and
on its op alone (forward and backward where it trains). The two variants are
compiled separately and timed in turn, `--repeats` times each, so load from other
jobs on the machine falls on both alike; it prints per variant the median and
range of the seconds per call, and the ratio of the medians (> 1: the trick is
faster).

The standard path is put in place by swapping module attributes for the time of
a variant (see `STANDARD`), so this script measures the code of the commit it
runs at; it is a measurement, not part of training.
"""
import contextlib
import functools
import statistics
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags, logging

from videojax import cli, models, platform, sharding, train
from videojax.models import attention as attention_lib
from videojax.models import efficientnet, resnet, scan

_TRICKS = flags.DEFINE_list(
    "tricks", ["pointwise", "depthwise", "attention", "scan_order", "linear_rec", "reverse"],
    "Tricks to time.")
_STEPS = flags.DEFINE_list("steps", ["realistic", "op"], "realistic and/or op.")
_REPEATS = flags.DEFINE_integer("repeats", 7, "Timed calls per variant (interleaved).")
_CALLS = flags.DEFINE_integer("calls", 0, "Calls per timed repeat (0: about 0.5 s worth).")
_NUM_DEVICES = flags.DEFINE_integer("num_devices", 0, "Devices of the train step (0: all).")


# --- The standard paths --------------------------------------------------------------------


def _conv_1x1(features, strides=1, dtype=jnp.float32, kernel_init=nn.initializers.lecun_normal(),
              name=None):
  return nn.Conv(features, (1, 1), (strides, strides), padding="VALID", use_bias=False,
                 dtype=dtype, kernel_init=kernel_init, name=name)


def _patch_attention():
  """A maker of flax's layer, named as ours (so the same param tree), with our call."""
  def make(num_heads, dropout_rate, kernel_init, name=None):
    mha = nn.MultiHeadDotProductAttention(num_heads=num_heads, dropout_rate=dropout_rate,
                                          kernel_init=kernel_init, name=name)

    def call(x, mask, deterministic):
      return mha(x, mask=nn.make_attention_mask(jnp.ones(mask.shape, bool), mask),
                 deterministic=deterministic)
    return call
  return make


def _linear_rec_autodiff(cell_fn, carry, xs, mask_tm, recurrent_kernel):
  return scan._loop(cell_fn, carry, xs, mask_tm, (recurrent_kernel,))


# trick -> [(module, attribute, standard value)].
STANDARD = {
    "pointwise": [(efficientnet, "PointwiseConv", _conv_1x1), (resnet, "PointwiseConv", _conv_1x1)],
    "depthwise": [(efficientnet, "depthwise_conv",
                   functools.partial(efficientnet.depthwise_conv, impl="conv"))],
    "attention": [(attention_lib, "_MultiHeadAttention", _patch_attention())],
    "scan_order": [(scan, "to_scan_order", scan.to_scan_order.fun),
                   (scan, "from_scan_order", scan.from_scan_order.fun)],
    "linear_rec": [(scan, "_linear_recurrence_loop", _linear_rec_autodiff)],
    "reverse": [(scan, "reverse_within_length", scan.reverse_within_length.fun)],
}


@contextlib.contextmanager
def standard(trick: str):
  """The standard path in place of `trick` while inside."""
  saved = [(m, a, getattr(m, a)) for m, a, _ in STANDARD[trick]]
  try:
    for m, a, v in STANDARD[trick]:
      setattr(m, a, v)
    yield
  finally:
    for m, a, v in saved:
      setattr(m, a, v)


# --- What is timed: each a function () -> a zero-argument call that blocks ------------------


def train_step(model: str):
  """The jitted train step of configs/default.py's `model`, b 32, t 20, d 1280."""
  from configs import default
  config = default.get_config()
  config.model.name = model
  config.train.num_devices = _NUM_DEVICES.value
  b, t, d, k = config.train.batch_size, 20, 1280, 101
  rng = np.random.default_rng(0)
  lengths = np.where(rng.random(b) < 0.5, t, rng.integers(t // 4, t + 1, b))
  batch = {"features": rng.standard_normal((b, t, d)).astype(np.float16),
           "mask": np.arange(t)[None, :] < lengths[:, None],
           "label": rng.integers(0, k, b).astype(np.int32), "valid": np.ones(b, bool)}
  mesh = sharding.make_mesh(config.train.num_devices)
  repl = sharding.replicated(mesh)
  steps = train.Steps(mesh, k)
  state = [jax.device_put(train.create_train_state(config, k, t, d), repl)]
  key = jax.device_put(jax.random.key(0), repl)
  batch = sharding.put_batch(batch, mesh)

  def call():
    state[0], metrics = steps.train(state[0], batch, key)
    jax.block_until_ready(metrics)
  return call


def backbone_forward(name: str):
  """The jitted forward of backbone `name` at 224 px, batch 16, random init, on all devices."""
  module = models.create_backbone(name)
  frames = np.random.default_rng(0).integers(0, 256, (16, 224, 224, 3), np.uint8)
  x = models.preprocess_frames(name, jnp.asarray(frames))
  variables = jax.jit(module.init)(jax.random.key(0), x[:1])
  mesh = sharding.make_mesh(0)
  data = sharding.batch_sharded(mesh)
  x = jax.device_put(x, data)
  f = jax.jit(module.apply, out_shardings=data)
  return lambda: jax.block_until_ready(f(variables, x))


def _grad_call(module, *inputs, **kw):
  variables = module.init(jax.random.key(0), *inputs, **kw)
  loss = lambda v, *xs: jnp.sum(module.apply(v, *xs, **kw, rngs={"dropout": jax.random.key(1)}))
  f = jax.jit(jax.grad(loss, argnums=(0, 1)))
  return lambda: jax.block_until_ready(f(variables, *inputs))


def _mask(b, t):
  lengths = np.random.default_rng(0).integers(t // 4, t + 1, b)
  return jnp.asarray(np.arange(t)[None, :] < lengths[:, None])


def op_pointwise():
  """1x1 conv f32[16, 56, 56, 24] -> 144 channels (Lite0's second stage at 224 px), forward."""
  x = jax.random.normal(jax.random.key(0), (16, 56, 56, 24))
  module = efficientnet.PointwiseConv(144)
  variables = module.init(jax.random.key(1), x)
  f = jax.jit(module.apply)
  return lambda: jax.block_until_ready(f(variables, x))


def op_depthwise():
  """Depthwise 3x3 conv on f32[16, 112, 112, 96], stride 2 (Lite0 at 224 px), forward."""
  x = jax.random.normal(jax.random.key(0), (16, 112, 112, 96))
  module = efficientnet.DepthwiseConv(3, 2)
  variables = module.init(jax.random.key(1), x)
  f = jax.jit(module.apply)
  return lambda: jax.block_until_ready(f(variables, x))


def op_attention():
  """SelfAttention (4 heads) on f32[32, 20, 64], forward and backward, dropout off."""
  x = jax.random.normal(jax.random.key(0), (32, 20, 64))
  return _grad_call(attention_lib.SelfAttention(4), x, _mask(32, 20), train=False)


def _bilstm():
  from videojax.models.rnn import LSTM, Bidirectional
  x = jax.random.normal(jax.random.key(0), (32, 20, 64))
  return _grad_call(Bidirectional(LSTM(32)), x, _mask(32, 20))


def op_reverse():
  """reverse_within_length of f32[32, 20, 64], forward and backward."""
  x = jax.random.normal(jax.random.key(0), (32, 20, 64))
  lengths = _mask(32, 20).sum(1)
  f = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(scan.reverse_within_length(x, lengths)))))
  return lambda: jax.block_until_ready(f(x))


# trick -> [(label, factory)] of the realistic steps that use it, and its op alone.
REALISTIC = {
    "pointwise": [("efficientnet_lite0 forward", functools.partial(backbone_forward,
                                                                   "efficientnet_lite0")),
                  ("resnet18 forward", functools.partial(backbone_forward, "resnet18"))],
    "depthwise": [("efficientnet_lite0 forward", functools.partial(backbone_forward,
                                                                   "efficientnet_lite0"))],
    "attention": [("bilstm_attention train step", functools.partial(train_step,
                                                                    "bilstm_attention")),
                  ("transformer train step", functools.partial(train_step, "transformer"))],
    "scan_order": [("bilstm_attention train step", functools.partial(train_step,
                                                                     "bilstm_attention"))],
    "linear_rec": [("bilstm_attention train step", functools.partial(train_step,
                                                                     "bilstm_attention"))],
    # No model of the configs reads a sequence backward through masked_scan; the GRU's
    # step is the nearest (it runs the same scan forward).
    "reverse": [("gru train step", functools.partial(train_step, "gru"))],
}
OP = {
    "pointwise": ("1x1 conv [16,56,56,24]->144 fwd", op_pointwise),
    "depthwise": ("depthwise 3x3/2 [16,112,112,96] fwd", op_depthwise),
    "attention": ("SelfAttention [32,20,64] fwd+bwd", op_attention),
    "scan_order": ("BiLSTM(32) [32,20,64] fwd+bwd", _bilstm),
    "linear_rec": ("BiLSTM(32) [32,20,64] fwd+bwd", _bilstm),
    "reverse": ("reverse_within_length [32,20,64] fwd+bwd", op_reverse),
}


def compare(trick: str, label: str, factory) -> str:
  """Times `factory()`'s call with the trick and with the standard path, interleaved."""
  calls = {"trick": factory()}
  with standard(trick):
    calls["standard"] = factory()  # Traced and compiled here, under the standard path.
  for c in calls.values():  # Warm-up: compile, then one more call.
    c(), c()
  n = _CALLS.value
  if not n:
    t0 = time.perf_counter()
    calls["trick"]()
    n = max(1, int(0.5 / max(time.perf_counter() - t0, 1e-6)))
  times = {k: [] for k in calls}
  for _ in range(_REPEATS.value):
    for k, c in calls.items():
      t0 = time.perf_counter()
      for _ in range(n):
        c()
      times[k].append((time.perf_counter() - t0) / n)
  med = {k: statistics.median(v) for k, v in times.items()}
  cell = lambda k: (f"{med[k] * 1e3:.2f} ({min(times[k]) * 1e3:.2f}-"
                    f"{max(times[k]) * 1e3:.2f})")
  return (f"| {trick} | {label} | {cell('trick')} | {cell('standard')} | "
          f"{med['standard'] / med['trick']:.2f} |")


def main(argv):
  del argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  platform.split_cpu_into_devices()  # As scripts/train.py does.
  for t in _TRICKS.value:
    if t not in STANDARD:
      raise app.UsageError(f"--tricks: unknown {t!r}; accepted: {', '.join(STANDARD)}")
  print(f"jax {jax.__version__}, devices {jax.devices()}, repeats {_REPEATS.value}", flush=True)
  print("| trick | step | trick ms (range) | standard ms (range) | standard / trick |")
  print("|---|---|---|---|---|", flush=True)
  for trick in _TRICKS.value:
    todo = (REALISTIC[trick] if "realistic" in _STEPS.value else []) + (
        [OP[trick]] if "op" in _STEPS.value else [])
    for label, factory in todo:
      print(compare(trick, label, factory), flush=True)


if __name__ == "__main__":
  sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
  cli.run(main)
