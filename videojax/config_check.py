"""Checks a whole experiment config before a stage writes anything.

  config_check.validate(config, "extract")   # top of extract.extract_features
  config_check.validate(config, "train")     # top of train.train_and_evaluate

Every bad key is collected and reported in one ConfigError, so a user fixes
them all in one go, and nothing (spec.json, a workdir) is written by a run whose
config is wrong. Checks that need the data (the features' num_frames, a model
that fits the features) stay where the data is read.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from typing import Any

import ml_collections

STAGES = ("extract", "train")
POOLINGS = ("avg", "grid")
# config.extract.frames: what extraction stores per frame: a backbone's features, or the
# frame itself (resized, in [0, 1], flattened) for models that learn from raw frames.
FRAMES = ("features", "pixels")
COMPUTE_DTYPES = ("float32", "bfloat16")
LOG_EVERY_STEPS = 50  # config.log.every_steps where a config has no log section
_MISSING = object()
# Keys of older configs, and what replaced them.
REMOVED_KEYS = {
    "extract.num_frames": "set config.data.num_frames, the one sequence length (extraction "
                          "samples that many frames, training reads them)",
    "train.normalize_features": "set config.train.feature_norm: 'standardize' for True, "
                                "'none' for False (or 'l2', 'power')",
}


class ConfigError(ValueError):
  """Config values out of range or unknown names; the message lists every bad key."""


def _is_int(v: Any) -> bool:
  return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class _Checker:
  """Collects `config.<key>=<value>: <what is allowed>` for every bad key."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.problems: list[str] = []

  def get(self, key: str, default: Any = _MISSING) -> Any:
    """config.<key> ('train.batch_size'); `default` (or _MISSING) where a section lacks it."""
    node = self.config
    for part in key.split("."):
      if not hasattr(node, "get"):
        return default
      node = node.get(part, _MISSING)
      if node is _MISSING:
        return default
    return node

  def bad(self, key: str, value: Any, allowed: str) -> None:
    self.problems.append(f"config.{key}={value!r}: {allowed}")

  def check(self, key: str, ok: Callable[[Any], bool], allowed: str) -> Any:
    """Records `key` unless ok(value); a missing key is reported too. Returns the value."""
    value = self.get(key)
    if value is _MISSING:
      self.problems.append(f"config.{key} is missing: add it (see configs/default.py)")
    elif not ok(value):
      self.bad(key, value, allowed)
    return value

  def name(self, key: str, names: Iterable[str], default: Any = _MISSING) -> bool:
    """Checks that config.<key> is one of `names`; True if it is."""
    names = tuple(names)
    if default is not _MISSING and self.get(key, _MISSING) is _MISSING:
      return default in names
    value = self.check(key, lambda v: v in names, f"one of {', '.join(names)}")
    return value in names

  def positive_int(self, key: str) -> None:
    self.check(key, lambda v: _is_int(v) and v >= 1, "an integer >= 1")

  def non_negative_int(self, key: str, default: Any = _MISSING) -> None:
    if default is not _MISSING and self.get(key, _MISSING) is _MISSING:
      return
    self.check(key, lambda v: _is_int(v) and v >= 0, "an integer >= 0")

  def path_set(self, key: str) -> None:
    self.check(key, lambda v: isinstance(v, str) and v, "set it: --config.%s=PATH" % key)


def _batch_size(c: _Checker, key: str, devices: int, parts: int) -> None:
  """A positive multiple of the devices and of the data parts (each gets whole examples)."""
  step = math.lcm(devices, parts)
  what = f"the {devices} device(s)" + (f" and the {parts} data parts" if parts > 1 else "")
  c.check(key, lambda v: _is_int(v) and v >= 1 and v % step == 0,
          f"a positive multiple of {what}, e.g. {step}")


def _device_count(c: _Checker, key: str, available: int) -> int:
  """config.<key> (0: all `available`) checked; the device count a mesh will have."""
  import jax  # Only here: importing this module stays light.
  n = c.get(key, 0)
  if not (_is_int(n) and 0 <= n <= available):
    c.bad(key, n, f"0 (all) to {available}, the devices there are")
    return available
  if n and key.startswith("train.") and jax.process_count() > 1:
    c.bad(key, n, "0 (all devices) in a multi-host run")
    return available
  return n or available


def _check_data(c: _Checker) -> None:
  from videojax.data import sources  # Only here: keeps this module light.
  for old, new in REMOVED_KEYS.items():
    if c.get(old) is not _MISSING:
      c.problems.append(f"config.{old} was removed: {new}")
  c.name("data.layout", sources.LAYOUTS, default="ucf101")


def _check_extract(c: _Checker) -> None:
  import jax
  from videojax import models
  from videojax.data import video

  for key in ("data.root", "data.features_dir"):
    c.path_set(key)
  c.name("extract.frames", FRAMES, default=FRAMES[0])
  if c.get("extract.frames", FRAMES[0]) == "pixels":  # backbone, weights, seed: not read
    c.check("extract.pooling", lambda v: v == "avg",
            "extract.frames=pixels stores whole frames and pools nothing; set "
            "config.extract.pooling=avg (its default) or use a backbone's grid features")
  else:
    if c.name("extract.backbone", models.BACKBONE_NAMES) and c.get("extract.weights_layout", ""):
      backbone = c.get("extract.backbone")
      layouts = models.BACKBONES[backbone].layouts
      file_given = c.get("extract.weights", "") not in ("imagenet", "random-init")
      c.check("extract.weights_layout", lambda v: v in layouts and file_given,
              f"unset, or for a weights file one of {', '.join(layouts)}" if layouts else
              f"unset: {backbone} reads its layout from the weights file")
    if not c.name("extract.pooling", POOLINGS) and c.problems[-1].startswith(
        "config.extract.pooling="):
      c.problems[-1] += " (for whole feature maps use grid with grid_size = image_size / 32)"
  c.name("extract.crop", video.CROPS, default="center")
  if c.get("extract.crop_fraction", _MISSING) is not _MISSING:  # Older configs: 1.0.
    c.check("extract.crop_fraction", lambda v: _is_number(v) and 0 < v <= 1,
            "a fraction 0 < f <= 1 of the short side (0.875: torchvision's 224 of 256)")
  for key in ("data.num_frames", "extract.image_size", "extract.grid_size",
              "extract.batch_size", "extract.shard_size", "extract.num_workers"):
    c.positive_int(key)
  c.check("extract.temporal_scales",
          lambda v: isinstance(v, (tuple, list)) and len(v) > 0
          and all(_is_number(s) and s > 0 for s in v),
          "one or more positive scales, e.g. (1.0,) or (1.0, 0.85, 1.15)")
  _device_count(c, "extract.num_devices", jax.local_device_count())


def _check_train(c: _Checker) -> None:
  import jax
  from videojax import checkpoint, models, normalization

  c.path_set("data.features_dir")
  c.positive_int("data.num_frames")
  c.check("data.val_fraction", lambda v: _is_number(v) and 0 <= v < 1, "a fraction in [0, 1)")
  if not (_is_int(c.get("data.val_seed", 0)) and c.get("data.val_seed", 0) >= 0):
    c.bad("data.val_seed", c.get("data.val_seed"), "an integer >= 0")
  val_list = c.get("data.val_list", "")
  if val_list and not (isinstance(val_list, str) and os.path.isfile(val_list)
                       and os.access(val_list, os.R_OK)):
    c.bad("data.val_list", val_list, "a readable text file of training video_ids, one per "
          "line, or '' to hold out groups (data.val_fraction)")
  processes = jax.process_count()
  parts = c.get("data.num_parts", 0)
  if not (_is_int(parts) and parts >= 0 and parts % processes == 0):
    c.bad("data.num_parts", parts, f"0 (one part per process) or a positive multiple of the "
          f"{processes} process(es)")
    parts = processes
  parts = parts or processes
  if c.get("data.in_memory", _MISSING) is not _MISSING:
    c.check("data.in_memory", lambda v: str(v).lower() in ("auto", "true", "false"),
            "auto, true or false")
  if c.get("data.shuffle_buffer_mb", _MISSING) is not _MISSING:
    c.check("data.shuffle_buffer_mb", lambda v: _is_number(v) and v >= 0,
            "a number of MB >= 0 (0: shuffle over all shards)")
  if c.get("data.prefetch_batches", _MISSING) is not _MISSING:
    c.positive_int("data.prefetch_batches")

  c.name("model.name", models.MODEL_NAMES)
  devices = _device_count(c, "train.num_devices", jax.device_count())
  _batch_size(c, "train.batch_size", devices, parts)
  _batch_size(c, "eval.batch_size", devices, parts)
  c.positive_int("train.num_epochs")
  c.check("train.learning_rate", lambda v: _is_number(v) and v > 0, "a finite number > 0")
  c.check("train.weight_decay", lambda v: _is_number(v) and v >= 0, "a finite number >= 0")
  if c.get("train.label_smoothing", _MISSING) is not _MISSING:
    c.check("train.label_smoothing", lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)")
  c.non_negative_int("train.checkpoint_every_steps", default=0)
  c.name("train.best_metric", checkpoint.METRICS, default=checkpoint.METRICS[0])
  c.name("train.best_mode", checkpoint.MODES, default=checkpoint.MODES[0])
  c.name("train.feature_norm", normalization.FEATURE_NORMS, default="standardize")
  _check_model(c)
  _check_recipe(c)
  c.non_negative_int("log.every_steps", default=LOG_EVERY_STEPS)
  if c.get("log.wandb_project", _MISSING) is not _MISSING:
    c.check("log.wandb_project", lambda v: isinstance(v, str),
            "a Weights & Biases project name, or '' for none")


def _check_model(c: _Checker) -> None:
  """The kwargs of the new baseline and recurrent models, when config.model.name picks one."""
  from videojax.models import temporal

  name = c.get("model.name", None)
  if name not in ("linear_probe", "lstm", "bilstm") or c.get(f"model.{name}", None) is None:
    return
  if c.get(f"model.{name}.dropout", _MISSING) is not _MISSING:
    c.check(f"model.{name}.dropout", lambda v: _is_number(v) and 0 <= v < 1,
            "a number in [0, 1)")
  if name == "linear_probe":
    return
  if c.get(f"model.{name}.hidden", _MISSING) is not _MISSING:
    c.check(f"model.{name}.hidden",
            lambda v: isinstance(v, (tuple, list)) and len(v) > 0
            and all(_is_int(w) and w >= 1 for w in v),
            "one or more LSTM widths >= 1, e.g. (128,)")
  if c.get(f"model.{name}.pooling", _MISSING) is not _MISSING:
    c.name(f"model.{name}.pooling", temporal.LSTM_POOLINGS)


def _check_recipe(c: _Checker) -> None:
  """The training recipe's switches (videojax/optim.py); a missing key is the switch off."""
  from videojax import optim

  def optional(key: str, ok: Callable[[Any], bool], allowed: str) -> None:
    if c.get(key, _MISSING) is not _MISSING:
      c.check(key, ok, allowed)

  c.name("train.schedule", optim.SCHEDULES, default="constant")
  optional("train.warmup_epochs", lambda v: _is_number(v) and v >= 0,
           "a number of epochs >= 0 (at most half the run is used)")
  optional("train.grad_clip_norm", lambda v: _is_number(v) and v >= 0,
           "a finite number >= 0 (0: no clipping)")
  optional("train.grad_accum_steps", lambda v: _is_int(v) and v >= 1,
           "an integer >= 1 (1: no accumulation)")
  optional("train.frame_dropout", lambda v: _is_number(v) and 0 <= v < 1, "a number in [0, 1)")
  optional("train.temporal_crop", lambda v: _is_number(v) and 0 <= v <= 1,
           "0 (off) or the least fraction of a clip's frames kept, in (0, 1]")
  optional("train.temporal_stride", lambda v: _is_int(v) and v >= 1,
           "an integer >= 1, the largest random stride (1: off)")
  c.name("train.compute_dtype", COMPUTE_DTYPES, default="float32")
  c.non_negative_int("train.early_stopping_patience", default=0)


def validate(config: ml_collections.ConfigDict, stage: str) -> None:
  """Checks every key of `config` that `stage` reads; writes nothing.

  Args:
    config: the experiment config (configs/default.py and overrides).
    stage: 'extract' (data.*, extract.*) or 'train' (data.*, model.*, train.*, eval.*).

  Raises:
    ConfigError: one message listing every bad key, its value and what is allowed,
      e.g. "config.train.batch_size=0: a positive multiple of the 8 device(s), e.g. 8".
    ValueError: an unknown stage (a bug of the caller).
  """
  if stage not in STAGES:
    raise ValueError(f"stage={stage!r}; accepted: {', '.join(STAGES)}")
  c = _Checker(config)
  _check_data(c)
  (_check_extract if stage == "extract" else _check_train)(c)
  if c.problems:
    raise ConfigError(f"{len(c.problems)} bad config value(s): " + "; ".join(c.problems))
