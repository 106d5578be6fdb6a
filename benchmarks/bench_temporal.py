"""Times the jitted train step of the temporal models against Keras 3 and PyTorch.

  python benchmarks/bench_temporal.py --frames 32,64 --dim 1280,2048 --out bench.md

For each (model, t, d) it times one optimizer step (forward, backward, Adam
update) on a device-resident batch of b clips with a realistic mix of lengths:
ours is `videojax.train.Steps(...).train`, the jitted step training runs (state
donated), on a state from `videojax.train.create_train_state`; the references
build the same architecture, same widths and same masking, in Keras 3
(`tf.function` step, with and without XLA) and in PyTorch (packed sequences,
fused Adam). Repeats of the implementations are interleaved, so load from
other jobs on the machine falls on all of them alike. It prints a Markdown
table: median examples/s, and ours over the fastest reference (>= 1 meets the
target). Runs on whatever device JAX sees first; torch follows onto a GPU
when it has CUDA, Keras stays on the CPU (tensorflow-cpu, and the training
pipeline hides GPUs from TensorFlow).

On a machine shared with other jobs, pin the whole run to idle cores
(`taskset -c 0,1 python benchmarks/bench_temporal.py ...`): torch's OpenMP pool
(one spinning thread per core) slows down far more than XLA's or
TensorFlow's pools when a core is taken by someone else.

The logic lives here rather than in videojax/ because it is a one-off
measurement, not part of training.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import pathlib  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from videojax import cli, train  # noqa: E402
from videojax import platform as platform_lib  # noqa: E402 (not the standard library's)

# This folder's shared helpers (the script's own folder is first on sys.path).
from bench_lib import JaxRunner, Runner, load_average, machine, make_batch  # noqa: E402

# The repository's default config by absolute path, so that the benchmark runs from any
# working directory (scripts/ take `configs/...` relative to the repository root).
_CONFIG = config_flags.DEFINE_config_file(
    "config", str(pathlib.Path(__file__).resolve().parents[1] / "configs" / "default.py"),
    "Training config: learning rate, seed and the gru kwargs come from it.")
_MODELS = flags.DEFINE_list("models", ["gru", "bilstm_attention"], "Models to time.")
_BATCH = flags.DEFINE_integer("batch", 64, "Clips per step, b.")
_FRAMES = flags.DEFINE_list("frames", ["32"], "Frames per clip, t (a list).")
_DIM = flags.DEFINE_list("dim", ["1280"], "Feature width, d (a list).")
_CLASSES = flags.DEFINE_integer("num_classes", 101, "Classes, k (UCF-101: 101).")
_REPEATS = flags.DEFINE_integer("repeats", 10, "Timed repeats; the median is reported.")
_STEPS = flags.DEFINE_integer("steps", 5, "Train steps per timed repeat.")
_WARMUP = flags.DEFINE_integer(
    "warmup", 3, "Untimed steps first, at least 1 (the first compiles; its time is reported).")
_REFERENCES = flags.DEFINE_list("references", ["keras", "torch"],
                                "Reference libraries: keras, torch.")
_KERAS_XLA = flags.DEFINE_enum(
    "keras_jit_compile", "both", ["both", "on", "off"],
    "Keras step with XLA (jit_compile=True), without, or both as separate rows.")
_OUT = flags.DEFINE_string("out", None, "Also write the Markdown report here.")
_NUM_DEVICES = flags.DEFINE_integer(
    "num_devices", 0, "JAX devices to shard the batch over (0: all, as scripts/train.py "
    "does; on a CPU host that is one XLA CPU device per core, while the references use "
    "their own threads over the same cores).")
_BILSTM_WIDTH = flags.DEFINE_integer("bilstm_width", 256, "bilstm_attention width.")
_BILSTM_LAYERS = flags.DEFINE_integer("bilstm_layers", 1, "bilstm_attention BiLSTM layers.")
_BILSTM_HEADS = flags.DEFINE_integer("bilstm_heads", 4, "bilstm_attention attention heads.")
_BILSTM_DROPOUT = flags.DEFINE_float("bilstm_dropout", 0.1, "bilstm_attention dropout.")
_TORCH_THREADS = flags.DEFINE_integer(
    "torch_threads", 0, "torch.set_num_threads(N) when N > 0; 0 keeps torch's default.")
_SEED = flags.DEFINE_integer("seed", 0, "Data seed.")

KNOWN_MODELS = ("gru", "bilstm_attention")
KNOWN_REFERENCES = ("keras", "torch")


# --- Keras 3 -----------------------------------------------------------------


def keras_model(name: str, kw: dict, num_classes: int):
  """The Keras 3 twin of `videojax.models.create_model(name, ...)`."""
  import keras
  from keras import layers, ops

  def zero_padding(x, mask):
    return ops.where(ops.expand_dims(mask, -1), x, 0.0)

  class GRUClassifier(keras.Model):
    """GRU(16, seqs) -> GRU(8) -> Dropout -> Dense(8, relu) -> Dense(k), masked."""

    def __init__(self):
      super().__init__()
      n = len(kw["hidden"])
      self.grus = [layers.GRU(w, return_sequences=i < n - 1, reset_after=True)
                   for i, w in enumerate(kw["hidden"])]
      self.drop = layers.Dropout(kw["dropout"])
      self.dense = layers.Dense(kw["dense"], activation="relu")
      self.logits = layers.Dense(num_classes)

    def call(self, inputs, training=False):
      x, mask = inputs
      x = zero_padding(x, mask)
      for gru in self.grus:
        x = gru(x, mask=mask, training=training)
      return self.logits(self.dense(self.drop(x, training=training)))

  class BiLSTMAttentionClassifier(keras.Model):
    """Dense+LN -> BiLSTMs -> LN(x + MHSA(x)) -> attention pool -> MLP, masked."""

    def __init__(self):
      super().__init__()
      w, p = kw["width"], kw["dropout"]
      self.proj = layers.Dense(w)
      self.proj_norm = layers.LayerNormalization(epsilon=1e-6)
      self.lstms = [layers.Bidirectional(layers.LSTM(w // 2, return_sequences=True))
                    for _ in range(kw["num_layers"])]
      self.attention = layers.MultiHeadAttention(
          kw["num_heads"], key_dim=w // kw["num_heads"], dropout=p)
      self.attention_norm = layers.LayerNormalization(epsilon=1e-6)
      self.pool_hidden = layers.Dense(w, activation="tanh")
      self.pool_score = layers.Dense(1)
      self.dense = layers.Dense(w, activation="relu")
      self.logits = layers.Dense(num_classes)
      self.drop = layers.Dropout(p)

    def call(self, inputs, training=False):
      x, mask = inputs
      t = ops.shape(mask)[1]
      x = self.proj(zero_padding(x, mask))
      x = self.drop(zero_padding(self.proj_norm(x), mask), training=training)
      for lstm in self.lstms:
        x = self.drop(lstm(x, mask=mask, training=training), training=training)
      keys = ops.broadcast_to(mask[:, None, :], (ops.shape(mask)[0], t, t))
      a = self.attention(x, x, attention_mask=keys, training=training)
      a = zero_padding(a, mask)
      x = self.attention_norm(x + self.drop(a, training=training))
      x = zero_padding(x, mask)
      scores = self.pool_score(self.pool_hidden(x))[..., 0]
      weights = ops.softmax(ops.where(mask, scores, -3.0e38), axis=-1)
      weights = ops.where(mask, weights, 0.0)
      x = ops.einsum("bt,btd->bd", weights, x)
      x = self.drop(self.dense(x), training=training)
      return self.logits(x)

  return {"gru": GRUClassifier, "bilstm_attention": BiLSTMAttentionClassifier}[name]()


class KerasRunner(Runner):
  """A Keras 3 model trained by a `tf.function` step (Keras' own fit step, minus
  its metrics and callbacks), with or without XLA."""

  def __init__(self, name: str, kw: dict, batch: dict[str, np.ndarray], num_classes: int,
               lr: float, jit_compile: bool):
    import keras
    import tensorflow as tf

    self.tf = tf
    self.model = keras_model(name, kw, num_classes)
    features = tf.constant(batch["features"].astype(np.float32))
    mask, label = tf.constant(batch["mask"]), tf.constant(batch["label"])
    self.model((features, mask))
    optimizer = keras.optimizers.Adam(lr, epsilon=1e-8)
    optimizer.build(self.model.trainable_variables)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=jit_compile)
    def step(features, mask, label):
      with tf.GradientTape() as tape:
        loss = loss_fn(label, self.model((features, mask), training=True))
      grads = tape.gradient(loss, self.model.trainable_variables)
      optimizer.apply(grads, self.model.trainable_variables)
      return loss

    self._step = lambda: step(features, mask, label)
    self.loss = None
    self.name = f"keras ({'XLA' if jit_compile else 'tf.function'})"
    self.device = "gpu" if tf.config.get_visible_devices("GPU") else "cpu"
    self.params = self.model.count_params()

  def step(self):
    self.loss = self._step()

  def sync(self):
    if self.loss is not None:
      self.loss.numpy()


# --- PyTorch -----------------------------------------------------------------


def torch_model(name: str, kw: dict, d: int, num_classes: int):
  """The PyTorch twin of `videojax.models.create_model(name, ...)`."""
  import torch
  from torch import nn
  from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

  def pack(x, lengths):
    return pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)

  def zero_padding(x, mask):
    return torch.where(mask[..., None], x, 0.0)

  class GRUClassifier(nn.Module):
    """Packed GRUs (16 -> 8, the last one's final state) -> Dropout -> MLP."""

    def __init__(self):
      super().__init__()
      widths = [d, *kw["hidden"]]
      self.grus = nn.ModuleList(nn.GRU(i, o, batch_first=True)
                                for i, o in zip(widths, widths[1:]))
      self.drop = nn.Dropout(kw["dropout"])
      self.dense = nn.Linear(widths[-1], kw["dense"])
      self.logits = nn.Linear(kw["dense"], num_classes)

    def forward(self, x, mask, lengths):
      packed = pack(zero_padding(x, mask), lengths)
      for gru in self.grus[:-1]:
        packed, _ = gru(packed)
      _, h = self.grus[-1](packed)  # h_n comes back in the batch's own order
      return self.logits(torch.relu(self.dense(self.drop(h[-1]))))

  class BiLSTMAttentionClassifier(nn.Module):
    """Linear+LN -> packed BiLSTMs -> LN(x + MHA(x)) -> attention pool -> MLP."""

    def __init__(self):
      super().__init__()
      w, p = kw["width"], kw["dropout"]
      self.proj = nn.Linear(d, w)
      self.proj_norm = nn.LayerNorm(w, eps=1e-6)
      self.lstms = nn.ModuleList(nn.LSTM(w, w // 2, batch_first=True, bidirectional=True)
                                 for _ in range(kw["num_layers"]))
      self.attention = nn.MultiheadAttention(w, kw["num_heads"], dropout=p, batch_first=True)
      self.attention_norm = nn.LayerNorm(w, eps=1e-6)
      self.pool_hidden = nn.Linear(w, w)
      self.pool_score = nn.Linear(w, 1)
      self.dense = nn.Linear(w, w)
      self.logits = nn.Linear(w, num_classes)
      self.drop = nn.Dropout(p)

    def forward(self, x, mask, lengths):
      t = x.shape[1]
      x = self.proj_norm(self.proj(zero_padding(x, mask)))
      x = self.drop(zero_padding(x, mask))
      for lstm in self.lstms:
        y, _ = lstm(pack(x, lengths))
        x = self.drop(pad_packed_sequence(y, batch_first=True, total_length=t)[0])
      a, _ = self.attention(x, x, x, key_padding_mask=~mask, need_weights=False)
      x = self.attention_norm(x + self.drop(zero_padding(a, mask)))
      x = zero_padding(x, mask)
      scores = self.pool_score(torch.tanh(self.pool_hidden(x)))[..., 0]
      scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
      weights = torch.where(mask, torch.softmax(scores, dim=-1), 0.0)
      x = torch.einsum("bt,btd->bd", weights, x)
      return self.logits(self.drop(torch.relu(self.dense(x))))

  return {"gru": GRUClassifier, "bilstm_attention": BiLSTMAttentionClassifier}[name]()


class TorchRunner(Runner):
  """A PyTorch model trained eagerly with fused Adam."""

  def __init__(self, name: str, kw: dict, batch: dict[str, np.ndarray], num_classes: int,
               lr: float, device: str):
    import torch

    self.torch = torch
    d = batch["features"].shape[-1]
    self.model = torch_model(name, kw, d, num_classes).to(device).train()
    self.features = torch.from_numpy(batch["features"].astype(np.float32)).to(device)
    self.mask = torch.from_numpy(batch["mask"]).to(device)
    self.label = torch.from_numpy(batch["label"]).long().to(device)
    # pack_padded_sequence wants the lengths on the CPU.
    self.lengths = torch.from_numpy(batch["mask"].sum(1)).long()
    self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, eps=1e-8, fused=True)
    self.name = "torch (eager)"
    self.device = device
    self.params = sum(p.numel() for p in self.model.parameters())

  def step(self):
    self.optimizer.zero_grad(set_to_none=True)
    logits = self.model(self.features, self.mask, self.lengths)
    self.torch.nn.functional.cross_entropy(logits, self.label).backward()
    self.optimizer.step()

  def sync(self):
    if self.device == "cuda":
      self.torch.cuda.synchronize()


# --- Timing and the report ---------------------------------------------------


def available_references(notes: list[str]) -> list[str]:
  """The --references that can run here; each one left out gets a note."""
  refs = []
  for lib in _REFERENCES.value:
    if lib == "keras" and os.environ["KERAS_BACKEND"] != "tensorflow":
      notes.append(f"keras skipped: KERAS_BACKEND={os.environ['KERAS_BACKEND']}, and the "
                   "Keras step here is a tf.function")
      continue
    try:
      __import__(lib)
    except ImportError as e:
      notes.append(f"{lib} skipped: not importable ({e})")
      continue
    refs.append(lib)
  return refs


def make_runners(name: str, config, batch, num_classes: int, references: list[str],
                 notes: list[str], where: str) -> list[Runner]:
  """Ours first, then the references; one that fails to build is noted and left out."""
  kw = train.model_kwargs(config, batch["features"].shape[-1])
  lr = config.train.learning_rate
  runners: list[Runner] = [JaxRunner(config, batch, num_classes)]
  builders = []
  if "keras" in references:
    for jit in {"both": [False, True], "on": [True], "off": [False]}[_KERAS_XLA.value]:
      builders.append((f"keras jit_compile={jit}",
                       lambda jit=jit: KerasRunner(name, kw, batch, num_classes, lr, jit)))
  if "torch" in references:
    import torch
    device = "cuda" if jax.default_backend() == "gpu" and torch.cuda.is_available() else "cpu"
    builders.append(("torch", lambda: TorchRunner(name, kw, batch, num_classes, lr, device)))
  for label, build in builders:
    try:
      runners.append(build())
    except Exception as e:  # noqa: BLE001  A broken reference must not stop the others.
      notes.append(f"{where}: {label} failed to build and is left out: "
                   f"{type(e).__name__}: {e}")
  return runners


def time_runners(runners: list[Runner], batch_size: int, notes: list[str],
                 where: str) -> list[dict]:
  """Warm-up, then interleaved repeats; per runner its examples/s per repeat."""
  results = []
  for r in runners:
    try:
      t0 = time.perf_counter()
      r.step()
      r.sync()
      first = time.perf_counter() - t0
      for _ in range(max(_WARMUP.value - 1, 0)):
        r.step()
      r.sync()
      results.append({"runner": r, "first": first, "rates": []})
    except Exception as e:  # noqa: BLE001  A broken reference must not stop the others.
      notes.append(f"{where}: {r.name} failed and is left out: {type(e).__name__}: {e}")
  for _ in range(_REPEATS.value):
    for res in results:
      r = res["runner"]
      t0 = time.perf_counter()
      for _ in range(_STEPS.value):
        r.step()
      r.sync()
      res["rates"].append(_STEPS.value * batch_size / (time.perf_counter() - t0))
  return results


def versions(references: list[str]) -> str:
  import flax
  import optax
  import tensorflow as tf
  out = [f"python {platform.python_version()}", f"jax {jax.__version__}",
         f"flax {flax.__version__}", f"optax {optax.__version__}", f"tensorflow {tf.__version__}"]
  if "keras" in references:
    import keras
    out.append(f"keras {keras.__version__} (backend {keras.backend.backend()})")
  if "torch" in references:
    import torch
    out.append(f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads)")
  return ", ".join(out)


def header(config, batch: dict[str, np.ndarray], references: list[str]) -> list[str]:
  kw_gru = config.model.gru.to_dict()
  kw_bilstm = config.model.bilstm_attention.to_dict()
  devices = jax.devices()
  lengths = batch["mask"].sum(1)
  return [
      "# Temporal models: train-step speed",
      "",
      f"- command: `{shlex.join([os.path.basename(sys.executable), *sys.argv])}`",
      f"- machine: {machine()}",
      f"- jax devices: {len(devices)} x {devices[0].device_kind} ({jax.default_backend()}); "
      f"ours uses {_NUM_DEVICES.value or len(devices)}",
      f"- versions: {versions(references)}",
      f"- malloc: LD_PRELOAD={os.environ.get('LD_PRELOAD') or '(none: glibc)'}, the same for "
      "every implementation (one process)",
      f"- batch b={_BATCH.value}, k={_CLASSES.value} classes; lengths per clip: half full, "
      f"half uniform in [t/4, t] (for the first t: mean {lengths.mean():.1f}, "
      f"min {lengths.min()})",
      f"- timing: {_WARMUP.value} untimed warm-up step(s), then {_REPEATS.value} repeats of "
      f"{_STEPS.value} steps, implementations interleaved; examples/s of each repeat, median "
      "(min-max); 'first step' includes tracing and compilation",
      f"- gru: {kw_gru}; bilstm_attention: {kw_bilstm}",
      f"- optimizer: Adam lr {config.train.learning_rate} everywhere (ours: the training "
      f"config's optax.adamw, weight_decay {config.train.weight_decay})",
      "",
      "| model | t | d | implementation | device | params | first step (s) | ms/step "
      "| examples/s (min-max) | ours / fastest ref |",
      "|---|---|---|---|---|---|---|---|---|---|",
  ]


def rows(name: str, t: int, d: int, results: list[dict]) -> tuple[list[str], str]:
  """Table rows and a one-line verdict for one (model, t, d)."""
  med = [statistics.median(res["rates"]) for res in results]
  ours = med[0] if results and results[0]["runner"].name.startswith("ours") else None
  refs = [(m, res["runner"].name) for m, res in zip(med, results)
          if not res["runner"].name.startswith("ours")]
  best = max(refs) if refs else None
  lines = []
  for m, res in zip(med, results):
    r = res["runner"]
    ratio = f"**{ours / best[0]:.2f}**" if r.name.startswith("ours") and ours and best else ""
    lines.append(
        f"| {name} | {t} | {d} | {r.name} | {r.device} | {r.params:,} | {res['first']:.2f} "
        f"| {1000 * _BATCH.value / m:.1f} | {m:,.0f} ({min(res['rates']):,.0f}-"
        f"{max(res['rates']):,.0f}) | {ratio} |")
  if ours and best:
    verdict = (f"{name} t={t} d={d}: ours {ours / best[0]:.2f}x the fastest reference "
               f"({best[1]}) -> {'meets' if ours >= best[0] else 'misses'} the target")
  else:
    verdict = f"{name} t={t} d={d}: no reference to compare with"
  return lines, verdict


FAIRNESS = [
    "- Same architecture, widths, parameter shapes (see params) and masking in all three; "
    "ours runs the real training step, which also casts f16 features to f32 and "
    "standardises them, computes accuracy, and uses optax.adamw (weight decay 0 = Adam): "
    "work the references skip. The references get f32 features already on the device.",
    "- Masking: ours scans all t steps and freezes the state on padding; Keras does the same "
    "(its masked RNN loop); torch packs the sequences (pack_padded_sequence, "
    "enforce_sorted=False), so it skips the padded steps and pays for sorting.",
    "- torch.nn.LSTM keeps two biases per gate (b_ih, b_hh), ours and Keras one: torch's "
    "bilstm_attention has 4h more params per direction and layer; same compute.",
    "- Keras trains through a tf.function step (GradientTape + optimizer.apply), leaner "
    "than train_on_batch; torch runs eagerly (no torch.compile) with fused Adam.",
    "- Keras MultiHeadAttention also masks padded queries (Keras mask propagation); their "
    "rows are zeroed afterwards in every implementation, so results and cost match.",
    "- CPU threads: ours and Keras use their default pools (one thread per usable core); "
    "torch uses torch.get_num_threads() (above). JAX has no thread-count knob, so to "
    "compare at N cores pin the whole run with taskset. With a load average above the "
    "CPU count, treat the numbers as provisional.",
]


def configured():
  """--config with this script's batch, device count and bilstm_attention flags applied."""
  config = _CONFIG.value
  config.train.batch_size = _BATCH.value
  config.train.num_devices = _NUM_DEVICES.value
  config.model.bilstm_attention.update(dict(
      width=_BILSTM_WIDTH.value, num_layers=_BILSTM_LAYERS.value,
      num_heads=_BILSTM_HEADS.value, dropout=_BILSTM_DROPOUT.value))
  return config


def main(argv):
  del argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  platform_lib.split_cpu_into_devices()  # As scripts/train.py does.
  for m in _MODELS.value:
    if m not in KNOWN_MODELS:
      raise app.UsageError(f"--models: unknown {m!r}; accepted: {', '.join(KNOWN_MODELS)}")
  for r in _REFERENCES.value:
    if r not in KNOWN_REFERENCES:
      raise app.UsageError(
          f"--references: unknown {r!r}; accepted: {', '.join(KNOWN_REFERENCES)}")
  try:
    frames, dims = [int(x) for x in _FRAMES.value], [int(x) for x in _DIM.value]
  except ValueError as e:
    raise app.UsageError(f"--frames and --dim take integers: {e}") from e
  if min(_REPEATS.value, _STEPS.value, _BATCH.value, *frames, *dims) < 1:
    raise app.UsageError("--repeats, --steps, --batch, --frames and --dim must be >= 1")

  config = configured()

  notes: list[str] = []
  references = available_references(notes)
  if "torch" in references and _TORCH_THREADS.value > 0:
    import torch
    torch.set_num_threads(_TORCH_THREADS.value)
  for n in notes:
    print(n)
  print(f"jax backend {jax.default_backend()}, devices {jax.devices()}", flush=True)

  table = header(config, make_batch(_BATCH.value, frames[0], dims[0], _CLASSES.value,
                                    _SEED.value), references)
  verdicts = []
  for name in _MODELS.value:
    config.model.name = name
    for t in frames:
      for d in dims:
        where = f"{name} t={t} d={d}"
        print(f"timing {where} ...", flush=True)
        batch = make_batch(_BATCH.value, t, d, _CLASSES.value, _SEED.value)
        runners = make_runners(name, config, batch, _CLASSES.value, references, notes, where)
        ours_platform = runners[0].device.split()[0]
        for r in runners[1:]:
          if {"cuda": "gpu"}.get(r.device, r.device) != ours_platform:
            notes.append(f"{where}: {r.name} runs on {r.device}, ours on {ours_platform}: "
                         "not a like-for-like comparison")
        lines, verdict = rows(name, t, d,
                              time_runners(runners, _BATCH.value, notes, where))
        print("\n".join(lines), flush=True)
        table += lines
        verdicts.append(verdict)
        del runners
  report = "\n".join(
      table + ["", "Ours / fastest ref: median examples/s, ours over the fastest reference; "
               ">= 1 meets the target.", ""]
      + [f"- {v}" for v in verdicts] + ["", f"Load average at the end: {load_average()}.",
                                         "", "Fairness:", ""] + FAIRNESS
      + ([""] + [f"- note: {n}" for n in notes] if notes else [])) + "\n"
  print("\n" + report)
  if _OUT.value:
    with open(_OUT.value, "w") as f:
      f.write(report)
    print(f"written to {_OUT.value}")


if __name__ == "__main__":
  cli.run(main)
