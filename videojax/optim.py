"""The optimizer of a training run, from config.train: AdamW, its schedule, clipping, accumulation.

  tx = optim.make_optimizer(config.train, steps_per_epoch)

Steps and updates. A train step (TrainState.step, checkpoints, metrics.jsonl,
an epoch of `steps_per_epoch` batches) is one micro-batch. With
train.grad_accum_steps = k > 1 the optimizer (optax.MultiSteps) averages the
gradients of k consecutive steps and changes the parameters on every k-th step
only; in between it returns zero updates. The accumulated gradient is part of the
optimizer state, so a checkpoint taken mid-accumulation resumes exactly. The
learning-rate schedule counts optimizer updates, so it runs over
num_epochs * steps_per_epoch // k of them; a remainder of fewer than k steps at the
end of training is accumulated and never applied.
"""
from __future__ import annotations

from collections.abc import Callable

import ml_collections
import optax

SCHEDULES = ("constant", "warmup_cosine")
# The recipe's switches and their off values: with all of them off, training is what it
# was before they existed, bit for bit (tests/test_recipe.py).
DEFAULTS = {"schedule": "constant", "warmup_epochs": 0.0, "grad_clip_norm": 0.0,
            "grad_accum_steps": 1, "frame_dropout": 0.0, "temporal_crop": 0.0,
            "temporal_stride": 1,
            "compute_dtype": "float32", "early_stopping_patience": 0}


def recipe(train_config: ml_collections.ConfigDict) -> dict:
  """The recipe switches of `train_config` (config.train), defaults for the keys it lacks."""
  return {k: train_config.get(k, v) for k, v in DEFAULTS.items()}


def num_updates(train_config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
  """Optimizer updates in the whole run: train steps / train.grad_accum_steps."""
  k = recipe(train_config)["grad_accum_steps"]
  return max(train_config.num_epochs * steps_per_epoch // k, 1)


def learning_rate(train_config: ml_collections.ConfigDict,
                  steps_per_epoch: int) -> float | optax.Schedule:
  """train.learning_rate, or a schedule of it over optimizer updates.

  constant: the number itself. warmup_cosine: linear from 0 to train.learning_rate over
  train.warmup_epochs (at most half the run), then cosine decay to 0 at the end of train.num_epochs
  (optax.warmup_cosine_decay_schedule).
  """
  r = recipe(train_config)
  if r["schedule"] == "constant":
    return train_config.learning_rate
  if r["schedule"] != "warmup_cosine":
    raise ValueError(f"config.train.schedule={r['schedule']!r}; accepted: {', '.join(SCHEDULES)}")
  total = num_updates(train_config, steps_per_epoch)
  # At most half the run: a short run (a quick try, a test) still warms up and decays.
  warmup = min(round(r["warmup_epochs"] * steps_per_epoch / r["grad_accum_steps"]), total // 2)
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=train_config.learning_rate, warmup_steps=warmup,
      decay_steps=total, end_value=0.0)


def learning_rate_of_step(train_config: ml_collections.ConfigDict,
                          steps_per_epoch: int) -> Callable[[int], float]:
  """step -> the learning rate that train step `step` (0-based) applies, for logging.

  The schedule counts optimizer updates: with grad_accum_steps = k, step s belongs
  to update s // k (`learning_rate`).
  """
  lr = learning_rate(train_config, steps_per_epoch)
  k = recipe(train_config)["grad_accum_steps"]
  return lambda step: float(lr(step // k)) if callable(lr) else float(lr)


def make_optimizer(train_config: ml_collections.ConfigDict,
                   steps_per_epoch: int) -> optax.GradientTransformation:
  """AdamW (decoupled weight decay) with the schedule, clipping and accumulation of config.train.

  Args:
    train_config: config.train (learning_rate, weight_decay, num_epochs and the
      switches of `DEFAULTS`).
    steps_per_epoch: train steps (batches) per epoch.

  With every switch off this is optax.adamw(learning_rate, weight_decay=weight_decay).
  """
  r = recipe(train_config)
  tx = optax.adamw(learning_rate(train_config, steps_per_epoch),
                   weight_decay=train_config.weight_decay)
  if r["grad_clip_norm"] > 0:
    # Clip the (accumulated) gradient before Adam sees it.
    tx = optax.chain(optax.clip_by_global_norm(r["grad_clip_norm"]), tx)
  if r["grad_accum_steps"] > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=r["grad_accum_steps"]).gradient_transformation()
  return tx
