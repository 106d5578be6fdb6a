"""Training and evaluation of a temporal model on extracted features.

`train_and_evaluate(config, workdir)` is the whole job: load the feature shards,
hold out validation groups, train with pure jitted steps sharded over a device
mesh, checkpoint the latest and the best epoch, then evaluate the best on test.
"""
from __future__ import annotations

import functools
import json
import pathlib
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct
from flax.training import train_state
from jax.sharding import PartitionSpec as P

from videojax import (augment, config_check, files, metrics, models, optim, provenance, runs,
                      sharding)
from videojax.checkpoint import Checkpoints, check_meta
from videojax.data import features as features_lib
from videojax.errors import UserError
from videojax.data import parts as parts_lib
from videojax.data import pipeline
from videojax.data.validation import split_validation  # noqa: F401  (also train.split_validation)
from videojax.files import write_json_atomic
from videojax.models import widths
from videojax.normalization import normalize
from videojax.progress import Progress
from videojax.workdir_lock import WorkdirLock
from videojax.writers import MetricWriter

Metrics = dict[str, jax.Array]


class TrainingDiverged(UserError, RuntimeError):
  """The loss, a gradient or the updated parameters are NaN/inf; the message is one line."""


class TrainState(train_state.TrainState):
  """Flax's TrainState plus the fixed feature normalisation (videojax.normalization).

  feature_mean, feature_std: f32[d], from the valid frames of the training
  split; zeros and ones unless config.train.feature_norm is 'standardize'.
  feature_norm: config.train.feature_norm; static, not saved (the run's meta holds it).
  """
  feature_mean: jax.Array
  feature_std: jax.Array
  feature_norm: str = struct.field(pytree_node=False, default="standardize")


def feature_statistics(parts: features_lib.FeatureSet | Sequence[features_lib.FeatureSet],
                       chunk: int = 1024,
                       max_chunk_bytes: int = 256 * 2**20) -> tuple[np.ndarray, np.ndarray]:
  """Mean and std f32[d] over the valid frames of `parts`, across all hosts.

  Why: frozen-backbone features (random-init ones especially) share a large
  positive offset and tiny spread; unscaled, the GRU cannot even fit the
  training set. One pass over the examples (read from the shards where they are
  streamed), `chunk` at a time but no more than `max_chunk_bytes` of float64,
  into float64 sums of size d.
  """
  parts = [parts] if isinstance(parts, features_lib.FeatureSet) else list(parts)
  t, d = parts[0].num_frames, parts[0].feature_dim
  chunk = max(1, min(chunk, max_chunk_bytes // max(t * d * 8, 1)))
  total = np.zeros((2, d), np.float64)
  count = 0
  for x, lengths in _chunks(parts, chunk):
    x = x[pipeline.lengths_to_mask(lengths, t)].astype(np.float64)
    total[0] += x.sum(0)
    total[1] += np.square(x, out=x).sum(0)  # In place: no second float64 copy of the chunk.
    count += len(x)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    total = multihost_utils.process_allgather(total).sum(0)
    count = int(multihost_utils.process_allgather(np.array(count)).sum())
  mean = total[0] / max(count, 1)
  std = np.sqrt(np.maximum(total[1] / max(count, 1) - mean**2, 0.0))
  return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


def _chunks(parts: Sequence[features_lib.FeatureSet], chunk: int):
  """(features f16[c, t, d], lengths i32[c]) of the concatenated parts, `chunk` rows at a time."""
  pending, have = [], 0
  for fs in parts:
    start = 0
    while start < len(fs):
      stop = min(start + chunk - have, len(fs))
      pending.append((fs.features[start:stop], fs.lengths[start:stop]))
      have, start = have + stop - start, stop
      if have == chunk:
        yield np.concatenate([p[0] for p in pending]), np.concatenate([p[1] for p in pending])
        pending, have = [], 0
  if pending:
    yield np.concatenate([p[0] for p in pending]), np.concatenate([p[1] for p in pending])


def normalized_features(state: TrainState, batch: Mapping[str, jax.Array]) -> jax.Array:
  """The batch's features f32[b, t, d] under the state's feature_norm (training-split statistics)."""
  return normalize(batch["features"], batch["mask"], state.feature_norm, state.feature_mean,
                   state.feature_std)


def feature_norm(config: ml_collections.ConfigDict) -> str:
  """config.train.feature_norm; 'standardize' where a config has no such key."""
  return config.train.get("feature_norm", "standardize")


def model_kwargs(config: ml_collections.ConfigDict, feature_dim: int) -> dict:
  """The keyword arguments of `config.model.name`, from `config.model.<name>`.

  A width of 0 becomes one scaled to `feature_dim`, d (`models.widths`).
  """
  name = config.model.name
  if name not in models.MODEL_NAMES:
    raise ValueError(f"config.model.name={name!r}; accepted: {', '.join(models.MODEL_NAMES)}")
  sub = config.model.get(name)
  kwargs = json.loads(json.dumps(sub.to_dict() if sub is not None else {}))
  return widths.resolve(name, kwargs, feature_dim)


def model_frame_shape(config: ml_collections.ConfigDict, spec: dict,
                      feature_dim: int) -> tuple[int, ...]:
  """The shape of one frame config.model.name reads from these features: (d,) or (h, w, c).

  A model that reads maps gets the layout the features' spec records (grid cells,
  raw frames); see `models.model_frame_shape`.

  Raises:
    ValueError: a model that reads maps on features with no layout (one line, naming
      the keys to extract with), or features of the removed 'pixels' backbone.
  """
  return models.model_frame_shape(config.model.name,
                                  models.feature_frame_shape(spec, feature_dim))


def create_train_state(config: ml_collections.ConfigDict, num_classes: int, num_frames: int,
                       feature_dim: int, mean: np.ndarray | None = None,
                       std: np.ndarray | None = None,
                       frame_shape: tuple[int, ...] | None = None,
                       steps_per_epoch: int = 1) -> TrainState:
  """Initial parameters and optimizer state (deterministic in config.train.seed).

  `frame_shape` is what the model reads per frame (`model_frame_shape`; default
  (feature_dim,)): the state's apply_fn takes features f32[b, t, feature_dim] and
  unflattens them to f32[b, t, *frame_shape]. The optimizer is
  `optim.make_optimizer(config.train, steps_per_epoch)`; steps_per_epoch only
  matters to a learning-rate schedule (config.train.schedule).
  """
  model = models.create_model(config.model.name, num_classes, **model_kwargs(config, feature_dim))
  frame_shape = tuple(frame_shape or (feature_dim,))
  rng = jax.random.fold_in(jax.random.key(config.train.seed), 0)
  # Jitted: eager init of a scanned RNN dispatches op by op (13 s for the GRU on 2 cores).
  init = jax.jit(functools.partial(model.init, train=False))
  params = init(rng, jnp.zeros((1, num_frames, *frame_shape), jnp.float32),
                jnp.ones((1, num_frames), bool))["params"]
  tx = optim.make_optimizer(config.train, steps_per_epoch)
  return TrainState.create(
      apply_fn=models.apply_to_flat(model, frame_shape), params=params, tx=tx,
      feature_mean=jnp.zeros(feature_dim) if mean is None else jnp.asarray(mean),
      feature_std=jnp.ones(feature_dim) if std is None else jnp.asarray(std),
      feature_norm=feature_norm(config))


def train_step(state: TrainState, batch: Mapping[str, jax.Array], rng: jax.Array,
               label_smoothing: float = 0.0, axis_name: str | None = None,
               frame_dropout: float = 0.0, temporal_crop: float = 0.0,
               temporal_stride: int = 1, compute_dtype: str = "float32") -> tuple[TrainState, Metrics]:
  """One optimizer step on a batch {features f16[b,t,d], mask bool[b,t], label i32[b]}.

  The loss is cross-entropy against one-hot labels smoothed by `label_smoothing`
  (0: plain); eval_step always reports the unsmoothed loss.

  frame_dropout, temporal_crop, temporal_stride: temporal augmentation of the batch (`augment.augment`),
    drawn from `rng` and the step; 0: off.
  compute_dtype: "float32", or "bfloat16": the model runs on bf16 copies of the
    parameters and inputs; the loss, the gradients, the parameters and the optimizer
    state stay f32 (eval_step always runs in f32).

  axis_name: None, for a whole batch on one device (or under plain jit). Inside
    `jax.shard_map` over that axis (as `Steps` runs it): the batch is this device's
    rows, each device differentiates the mean loss of its rows, and the gradient, loss
    and accuracy are averaged over the axis once, after the model, as under pmap. The
    rows are equal in number on every device, so these are the global batch's means.
    Dropout masks are the rows of the whole batch's masks (`sharding.rows_of_global_draws`).

  Returns:
    The new state and {loss f32[], accuracy f32[], grad_norm f32[], finite bool[]}:
    grad_norm is the global norm of this step's gradient (before clipping); finite is
    false when the loss or a new parameter is NaN/inf (see train_and_evaluate).
  """
  dropout_rng = jax.random.fold_in(rng, state.step)
  if frame_dropout or temporal_crop or temporal_stride > 1:
    augment_rng = jax.random.fold_in(dropout_rng, _AUGMENT_STREAM)
    if axis_name is not None:
      augment_rng = sharding.rows_of_global_draws(augment_rng, axis_name)
    features, mask = augment.augment(batch["features"], batch["mask"], augment_rng,
                                     frame_dropout=frame_dropout, temporal_crop=temporal_crop,
                                     temporal_stride=temporal_stride)
    batch = {**batch, "features": features, "mask": mask}
  if axis_name is not None:
    dropout_rng = sharding.rows_of_global_draws(dropout_rng, axis_name)

  def loss_fn(params):
    x = normalized_features(state, batch)
    if compute_dtype != "float32":
      params, x = jax.tree.map(lambda a: a.astype(compute_dtype), (params, x))
    logits = state.apply_fn({"params": params}, x, batch["mask"], train=True,
                            rngs={"dropout": dropout_rng})
    logits = logits.astype(jnp.float32)
    targets = optax.smooth_labels(jax.nn.one_hot(batch["label"], logits.shape[-1]),
                                  label_smoothing)
    loss = optax.softmax_cross_entropy(logits, targets).mean()
    return loss, logits

  (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  accuracy = jnp.mean(jnp.argmax(logits, -1) == batch["label"])
  if axis_name is not None:
    loss, accuracy, grads = jax.lax.pmean((loss, accuracy, grads), axis_name)
  new = state.apply_gradients(grads=grads)
  grad_norm = optax.tree.norm(grads)
  # The host stops at the first false flag and never saves a state it has not checked.
  # NaN/inf gradients make NaN parameters through Adam, and so does a NaN learning rate
  # with finite gradients: the loss and the new parameters cover all three (one read).
  finite = jnp.isfinite(loss) & _all_finite(new.params)
  return new, {"loss": loss, "accuracy": accuracy, "grad_norm": grad_norm, "finite": finite}


_AUGMENT_STREAM = 0x617567  # Folded into the step's key: augmentation draws apart from dropout's.


def _all_finite(tree: Any) -> jax.Array:
  """bool[]: every element of every floating array of `tree` is finite."""
  return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(tree)
                            if jnp.issubdtype(x.dtype, jnp.inexact)] or [jnp.bool_(True)]))


def eval_step(state: TrainState, batch: Mapping[str, jax.Array], num_classes: int,
              axis_name: str | None = None) -> Metrics:
  """Sums over the valid examples of a batch: loss, count, confusion i32[k, k], calibration.

  top5: examples whose label is among the 5 largest logits (ties to the lower class,
  as `metrics.top_k_accuracy`); only with num_classes >= 5.
  calibration: f32[3, M], per bin of top-1 confidence (`metrics.calibration_bin`), the
  count, the summed confidence and the correct predictions (`metrics.ece_from_bins`).
  axis_name: as for `train_step`; the sums are then over every device's rows.
  """
  logits = state.apply_fn({"params": state.params}, normalized_features(state, batch),
                          batch["mask"], train=False)
  valid = batch["valid"]
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"])
  top = jnp.argmax(logits, -1)
  pred = jax.nn.one_hot(top, num_classes, dtype=jnp.int32)
  true = jax.nn.one_hot(batch["label"], num_classes, dtype=jnp.int32) * valid[:, None]
  confidence = jax.nn.softmax(logits).max(-1)
  in_bin = jax.nn.one_hot(metrics.calibration_bin(confidence), metrics.ECE_BINS) * valid[:, None]
  correct = (top == batch["label"]).astype(jnp.float32)
  sums = {"loss": jnp.sum(jnp.where(valid, loss, 0.0)), "count": jnp.sum(valid),
          "confusion": true.T @ pred,
          "calibration": jnp.stack([jnp.ones_like(confidence), confidence, correct]) @ in_bin}
  if num_classes >= 5:
    in_top5 = jnp.any(jax.lax.top_k(logits, 5)[1] == batch["label"][:, None], axis=-1)
    sums["top5"] = jnp.sum(in_top5 & valid)
  return sums if axis_name is None else jax.lax.psum(sums, axis_name)


class Steps:
  """The jitted steps of one run: data parallel over `mesh`, decided here and only here.

  Each step is one `jax.shard_map` over the mesh's 'data' axis inside `jax.jit`: the
  state (params) replicated, P(), the batch split by rows, P('data'). Each device runs
  the model on its own rows and the gradient is averaged once per step (`train_step`'s
  axis_name), as pmap did; models know nothing of devices. For recurrent models this is
  what pays: under jit's partitioner alone, a weight's gradient is summed across devices
  at every time step of a scan's backward loop (tests/test_train_step.py). The same code
  runs on one device, where the map is trivial.
  """

  def __init__(self, mesh, num_classes: int, label_smoothing: float = 0.0, **train_kwargs):
    """train_kwargs: train_step's frame_dropout, temporal_crop, temporal_stride, compute_dtype."""
    repl, data = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    self.mesh = mesh
    self.train = jax.jit(
        _per_device(mesh, train_step, num_outputs=2, label_smoothing=label_smoothing,
                    **train_kwargs),
        in_shardings=(repl, data, repl), out_shardings=(repl, repl), donate_argnums=0)
    self.eval = jax.jit(
        _per_device(mesh, eval_step, num_classes=num_classes),
        in_shardings=(repl, data), out_shardings=repl)


def _per_device(mesh, step, num_outputs: int = 1, **kwargs):
  """step(state, batch, *rest, **kwargs, axis_name=...) run on each device's rows of the batch.

  State and the rest (an rng) are replicated, P(); the batch is split over 'data'; the
  outputs are equal on every device (the step reduces them over the axis), P().

  check_vma=False, as under pmap: inside, every array is a plain per-device array, so
  autodiff adds no collective of its own (the gradient is per device until the step's
  pmean), and a model need not mark its own arrays (a scan's zero initial carry) as
  varying over an axis it knows nothing of.
  """
  @functools.wraps(step)
  def run(state, batch, *rest):
    return jax.shard_map(
        functools.partial(step, **kwargs, axis_name=sharding.DATA_AXIS), mesh=mesh,
        in_specs=(P(), P(sharding.DATA_AXIS)) + (P(),) * len(rest),
        out_specs=(P(),) * num_outputs if num_outputs > 1 else P(), check_vma=False)(state, batch, *rest)
  return run


def evaluate_split(steps: Steps, state: TrainState, parts: list[features_lib.FeatureSet],
                   batch_size: int, sizes: np.ndarray) -> dict[str, Any]:
  """Loss, confusion, ECE and top-5 accuracy (None under 5 classes) over every example
  of a split, each counted exactly once.

  Args:
    parts: this process's parts of the split.
    batch_size: the global batch; each part fills batch_size / len(sizes) rows.
    sizes: the size of every part of the run; all processes step together
      until the largest is done.
  """
  k = len(parts[0].class_names)
  per_part = batch_size // len(sizes)
  confusion, loss, count, top5 = np.zeros((k, k), np.int64), 0.0, 0, 0
  calibration = np.zeros((3, metrics.ECE_BINS), np.float64)
  num_batches = pipeline.num_eval_batches(int(max(sizes)), per_part)
  for batch in pipeline.eval_batches(parts, per_part, num_batches):
    m = jax.device_get(steps.eval(state, sharding.put_batch(batch, steps.mesh)))
    confusion += m["confusion"]
    loss += float(m["loss"])
    count += int(m["count"])
    calibration += m["calibration"]
    top5 += int(m.get("top5", 0))
  assert count == sum(sizes), (count, sizes)
  return {"confusion": confusion, "loss": loss / max(count, 1),
          "ece": metrics.ece_from_bins(calibration),
          "top5_accuracy": top5 / max(count, 1) if k >= 5 else None}


def step_record(window: list[Metrics], step: int, since: tuple[int, float], lr_of_step,
                batch_size: int) -> dict[str, float]:
  """The per-step record written every config.log.every_steps steps, at `step` (0-based).

  Means of train_step's loss, accuracy and grad_norm over the steps of `window`, the
  learning rate step `step` applied, and steps/s, examples/s since `since`, the
  (step, time.monotonic()) of the previous record (epoch-end evaluation included).
  """
  got = jax.device_get(window)
  record = {k: float(np.mean([w[k] for w in got])) for k in got[0]}
  seconds = time.monotonic() - since[1]
  steps_per_sec = (step + 1 - since[0]) / seconds if seconds > 0 else 0.0
  return {**record, "learning_rate": lr_of_step(step), "steps_per_sec": steps_per_sec,
          "examples_per_sec": steps_per_sec * batch_size}


def num_parts(config: ml_collections.ConfigDict) -> int:
  """config.data.num_parts, where 0 means one data part per process."""
  return config.data.get("num_parts", 0) or jax.process_count()


def run_meta(config: ml_collections.ConfigDict, fs: features_lib.FeatureSet | parts_lib.Parts,
             workdir: str | pathlib.Path | None = None) -> dict:
  """What a checkpoint belongs to; compared on resume and read by predict.

  With `workdir`, the features dir is also recorded relative to it (runs.features_dir_meta).
  """
  return {
      "class_names": list(fs.class_names), "model": config.model.name,
      "model_kwargs": model_kwargs(config, fs.feature_dim), "feature_spec": fs.spec,
      "feature_spec_hash": features_lib.spec_hash(fs.spec),
      "num_frames": fs.num_frames, "feature_dim": fs.feature_dim,
      "features_dir": str(pathlib.Path(config.data.features_dir).absolute()),
      **(runs.features_dir_meta(config.data.features_dir, workdir) if workdir else {}),
      "train_seed": config.train.seed, "batch_size": config.train.batch_size,
      "learning_rate": config.train.learning_rate,
      # As before feature_norm existed: a checkpoint of then resumes as standardize / none.
      "normalize_features": feature_norm(config) == "standardize",
      "label_smoothing": config.train.get("label_smoothing", 0.0),
      "num_parts": num_parts(config),
      **_recipe_meta(config),
      # Only the norms that came with the key: absent means standardize, with the saved
      # statistics (zeros and ones for none), which is how load_run reads it.
      **({"feature_norm": feature_norm(config)}
         if feature_norm(config) not in ("standardize", "none") else {}),
  }


def _recipe_meta(config: ml_collections.ConfigDict) -> dict:
  """The recipe switches that change the optimizer state or the steps, where not off.

  Only those: a checkpoint of a run with every switch off has the meta it had before
  they existed, and resumes as it did.
  """
  r = optim.recipe(config.train)
  meta = {k: v for k, v in r.items()
          if k != "early_stopping_patience" and v != optim.DEFAULTS[k]}
  if r["schedule"] != "constant":  # The schedule's length.
    meta["schedule_num_epochs"] = config.train.num_epochs
  return meta


_RESUME_KEYS = ("class_names", "model", "model_kwargs", "feature_spec_hash", "num_frames",
                "feature_dim", "train_seed", "batch_size", "learning_rate",
                "normalize_features", "label_smoothing", "num_parts", "schedule",
                "warmup_epochs", "schedule_num_epochs", "grad_clip_norm", "grad_accum_steps",
                "frame_dropout", "temporal_crop", "temporal_stride", "compute_dtype",
                "feature_norm")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       echo=print) -> dict[str, Any]:
  """Trains `config.model` on the features in `config.data.features_dir`.

  Writes to `workdir`: config.json and environment.json (`provenance`), checkpoints/
  (the latest step and the best by config.train.best_metric / best_mode),
  metrics.jsonl (a line per epoch), tensorboard/ (those, a record every
  config.log.every_steps steps, the test metrics and the config as hparams; see
  `writers`), results.json and confusion.csv (test split, best checkpoint). Resumes from the
  newest whole checkpoint in `workdir` with the same data order (a damaged
  newer step is moved aside with a warning).

  Training runs config.train.num_epochs epochs, or stops earlier with
  config.train.early_stopping_patience (`early_stop_reason`); the optimizer and the
  step follow the recipe switches of config.train (`optim.recipe`), logged at start.

  Returns:
    The test results: accuracy (top-1), top5_accuracy (None under 5 classes),
    per-class accuracy, confusion, calibration (test_ece), timing, which step
    was evaluated (best_step, best_metric, best_value), how training ended
    (last_step, stopped_early, stop_reason) and the recipe.

  Raises:
    FeatureError: missing, incomplete or inconsistent feature shards.
    CheckpointMismatch: `workdir` holds a run of another configuration.
    ConfigError: config values out of range (videojax.config_check), all in one message.
    WorkdirInUse: another train.py runs in `workdir`.
    TrainingDiverged: a NaN/inf loss, gradient or parameter (nothing of it is saved).
    DiskFull: no space for a checkpoint or a log line (the earlier ones are kept).
  """
  start_time = time.time()
  workdir = files.path(workdir)  # Local, or a URL (gs://...).
  # Both before anything is written: a bad config or features dir leaves no workdir.
  config_check.validate(config, "train")
  data = load_data(config, echo)
  # The processes of one multi-host run share the workdir: process 0 holds the lock for all.
  if jax.process_index() != 0:
    return _train_and_evaluate(config, workdir, data, echo, start_time)
  with WorkdirLock(workdir):
    return _train_and_evaluate(config, workdir, data, echo, start_time)


def load_data(config: ml_collections.ConfigDict, echo=print) -> parts_lib.Parts:
  """This process's parts of the train, validation and test splits (`parts.load_parts`)."""
  return parts_lib.load_parts(
      config.data.features_dir, num_parts=num_parts(config), process_index=jax.process_index(),
      process_count=jax.process_count(), num_frames=config.data.num_frames,
      in_memory={"true": True, "false": False}.get(
          str(config.data.get("in_memory", "auto")).lower(), "auto"),
      shuffle_buffer_mb=config.data.get("shuffle_buffer_mb", 0),
      split_validation=functools.partial(split_validation, fraction=config.data.val_fraction,
                                         seed=config.data.get("val_seed", 0),
                                         val_list=config.data.get("val_list", ""), echo=echo))


def _check_finite(step: int, finite: jax.Array, config: ml_collections.ConfigDict,
                  ckpts: Checkpoints) -> None:
  """Raises TrainingDiverged if the flag of `step` is false, once saves in flight are whole."""
  if bool(finite):
    return
  ckpts.wait()
  last = ckpts.latest_step()
  raise TrainingDiverged(
      f"training diverged at step {step}: the loss, a gradient or the updated parameters are "
      f"NaN/inf; lower train.learning_rate (now {config.train.learning_rate}), or check "
      f"train.weight_decay, train.label_smoothing and the features "
      f"(train.feature_norm, data.features_dir); "
      + (f"the last finite checkpoint, {ckpts.directory}/{last}, is kept"
         if last else "no checkpoint was saved"))


def early_stop_reason(ckpts: Checkpoints, step: int, steps_per_epoch: int,
                      patience: int) -> str | None:
  """Why training stops at `step`, or None to go on.

  It stops at an epoch end when the best step by the validation metric
  (config.train.best_metric / best_mode, ties to the later step, as `Checkpoints`
  keeps it) is `patience` epochs or more behind; never when patience is 0 or no
  step has a validation metric.
  """
  if not patience or not step or step % steps_per_epoch:
    return None
  best = ckpts.best_step()
  if best is None or ckpts.score(best) is None or step - best < patience * steps_per_epoch:
    return None
  return (f"early stopping at step {step} (epoch {step // steps_per_epoch}): "
          f"{ckpts.metric} has not improved for {patience} epochs since step {best}")


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: pathlib.Path,
                        data: parts_lib.Parts, echo, start_time: float) -> dict[str, Any]:
  """train_and_evaluate, once the config is checked, the data loaded and the workdir locked."""
  best_metric = config.train.get("best_metric", "val_accuracy")
  best_mode = config.train.get("best_mode", "max")
  smoothing = config.train.get("label_smoothing", 0.0)
  frame_shape = model_frame_shape(config, data.spec, data.feature_dim)
  num_classes = len(data.class_names)

  recipe = optim.recipe(config.train)
  echo("recipe: " + ", ".join(f"{k}={v}" for k, v in recipe.items()))
  mesh = sharding.make_mesh(config.train.num_devices)
  steps = Steps(mesh, num_classes, smoothing, frame_dropout=recipe["frame_dropout"],
                temporal_crop=recipe["temporal_crop"], temporal_stride=recipe["temporal_stride"],
                compute_dtype=recipe["compute_dtype"])
  repl = sharding.replicated(mesh)
  stats = (feature_statistics(data.train)
           if feature_norm(config) == "standardize" else (None, None))
  per_part = config.train.batch_size // data.num_parts
  sizes = data.sizes["train"]
  spe = pipeline.steps_per_epoch(int(sizes.min()), per_part)
  state = sharding.replicate(
      create_train_state(config, num_classes, data.num_frames, data.feature_dim, *stats,
                         frame_shape=frame_shape, steps_per_epoch=spe), mesh)
  rng = jax.jit(lambda: jax.random.fold_in(jax.random.key(config.train.seed), 1),
                out_shardings=repl)()

  meta = run_meta(config, data, workdir)
  if jax.process_index() == 0:  # What predict needs travels with the workdir.
    runs.keep_backbone(config.data.features_dir, workdir)
  ckpts = Checkpoints(workdir / "checkpoints", best_metric, best_mode,
                      warn=lambda m: echo(f"Warning: {m}"))
  start_step, restored = ckpts.resume(
      state, lambda found: check_meta(meta, found, str(ckpts.directory), _RESUME_KEYS))
  if start_step:
    state = restored
    echo(f"Resumed from {ckpts.directory}/{start_step}")

  if sizes.max() > 1.1 * sizes.min():
    echo(f"Warning: the {data.num_parts} data parts hold {sizes.min()} to {sizes.max()} "
         "training examples; an epoch is as long as the smallest allows. Extract with an "
         f"extract.shard_size that gives the train split a multiple of {data.num_parts} shards.")
  total_steps = config.train.num_epochs * spe
  every = config.train.get("checkpoint_every_steps", 0)
  log = config.get("log") or {}
  log_every = log.get("every_steps", config_check.LOG_EVERY_STEPS)
  if jax.process_index() == 0:
    provenance.write_run_files(workdir, config, start_step=start_step)
  writer = MetricWriter(workdir, echo=echo, start_step=start_step,
                        wandb_project=log.get("wandb_project", ""),
                        hparams=provenance.flat_config(config))
  lr_of_step = optim.learning_rate_of_step(config.train, spe)
  batches = pipeline.train_batches(data.train, per_part, seed=config.train.seed,
                                   start_step=start_step, epoch_steps=spe,
                                   part_ids=data.part_ids, shard_sizes=data.shard_sizes,
                                   window_shards=data.window_shards,
                                   prefetch=config.data.get("prefetch_batches",
                                                            pipeline.PREFETCH_BATCHES))
  epoch_metrics = []
  # A resumed run that had stopped early stays stopped.
  stop_reason = early_stop_reason(ckpts, start_step, spe, recipe["early_stopping_patience"])
  end_step = start_step if stop_reason else total_steps
  bar = Progress(total_steps, f"train {config.model.name}", "step", initial=start_step,
                 enabled=jax.process_index() == 0)
  window, since = [], (start_step, time.monotonic())  # the steps since the last step record
  last = None  # (step, finite flag) not yet looked at
  data_wait = 0.0  # Seconds this epoch's steps waited for their batch.
  for step in range(start_step, end_step):
    tick = time.perf_counter()
    batch = next(batches)
    data_wait += time.perf_counter() - tick
    state, m = steps.train(state, sharding.put_batch(batch, mesh), rng)
    # The previous step's flag: reading it waits for that step only, not for this one.
    if last:
      _check_finite(*last, config, ckpts)
    last = (step + 1, m.pop("finite"))
    epoch_metrics.append(m)
    window.append(m)
    if log_every and (step + 1) % log_every == 0:
      _check_finite(*last, config, ckpts)
      counters = step_record(window, step, since, lr_of_step, config.train.batch_size)
      window, since = [], (step + 1, time.monotonic())
      writer.write_scalars(step + 1, counters)
      bar.update(1, postfix=f"loss {counters['loss']:.4f}, "
                 f"{counters['examples_per_sec']:.1f} examples/s")
    else:
      bar.update(1)
    if (step + 1) % spe and step + 1 != total_steps:
      if every and (step + 1) % every == 0:  # Mid-epoch: latest only, for resumption.
        _check_finite(*last, config, ckpts)
        ckpts.save(step + 1, state, meta)
      continue
    _check_finite(*last, config, ckpts)
    summary = {f"train_{k}": float(np.mean(v)) for k, v in
               jax.device_get(jax.tree.map(lambda *x: jnp.stack(x), *epoch_metrics)).items()}
    summary["data_wait_s"], epoch_metrics, data_wait = data_wait, [], 0.0
    ckpt_metrics = None
    if sum(data.sizes["val"]):
      val = evaluate_split(steps, state, data.val, config.eval.batch_size, data.sizes["val"])
      summary.update(val_loss=val["loss"],
                     val_accuracy=metrics.summarize(val["confusion"],
                                                       data.class_names)["accuracy"],
                     val_ece=val["ece"])
      ckpt_metrics = {"val_accuracy": summary["val_accuracy"], "val_loss": summary["val_loss"],
                      "val_ece": val["ece"]}
    summary["epoch"] = (step + 1) / spe
    writer.write(step + 1, summary)
    ckpts.save(step + 1, state, meta, ckpt_metrics)
    stop_reason = early_stop_reason(ckpts, step + 1, spe, recipe["early_stopping_patience"])
    if stop_reason and step + 1 < total_steps:
      end_step = step + 1
      break
  bar.close()
  if end_step < total_steps:
    echo(f"Stopped: {stop_reason}")
  else:
    stop_reason = f"trained all {total_steps} steps"
  ckpts.wait()
  train_seconds = time.time() - start_time

  best = ckpts.best_step()
  state = ckpts.restore(best, state)
  test = evaluate_split(steps, state, data.test, config.eval.batch_size, data.sizes["test"])
  results = metrics.summarize(test["confusion"], data.class_names)
  # Side by side with test: a gap between them flags a leak. The best step's validation
  # metrics were measured when it was saved; evaluating the same state again gives them.
  results.update(ckpts.metrics(best) or {})
  results.update(top5_accuracy=test["top5_accuracy"], test_loss=test["loss"],
                 test_ece=test["ece"], best_step=int(best), best_metric=ckpts.metric,
                 best_mode=ckpts.mode, best_value=ckpts.score(best), total_steps=total_steps,
                 last_step=end_step, stopped_early=end_step < total_steps,
                 stop_reason=stop_reason, recipe=recipe,
                 model=config.model.name, seconds=time.time() - start_time,
                 train_seconds=train_seconds, num_devices=int(mesh.devices.size),
                 num_train=int(sum(data.sizes["train"])), num_val=int(sum(data.sizes["val"])),
                 num_processes=jax.process_count(), num_parts=data.num_parts,
                 checkpoint=str(ckpts.directory / str(best)))
  # At the step evaluated, beside its validation metrics.
  writer.write_scalars(int(best), {f"test_{k}": v for k, v in (
      ("accuracy", results["accuracy"]), ("top5_accuracy", results["top5_accuracy"]),
      ("loss", results["test_loss"]), ("ece", results["test_ece"])) if v is not None})
  if jax.process_index() == 0:
    write_json_atomic(workdir / "results.json", results)
    metrics.write_confusion_csv(workdir / "confusion.csv", test["confusion"],
                                   data.class_names)
    # The validation number shown is the one that chose the step (config.train.best_metric).
    chosen = "best step" if ckpts.score(best) is not None else "latest step"
    val_text = (f"{ckpts.metric.replace('_', ' ')} {results[ckpts.metric]:.4f} ({chosen} {best})"
                if ckpts.metric in results else f"no validation split (step {best})")
    echo(f"{config.model.name}: {val_text}, test accuracy {results['accuracy']:.4f} on "
         f"{results['num_examples']} clips; results in {workdir}")
  writer.close()
  ckpts.close()
  return results
