"""Feature extraction: videos -> frozen backbone -> compressed HDF5 shards.

The clips of a split are cut into shards of `config.extract.shard_size`. Each
shard is decoded by a pool of threads (OpenCV releases the GIL) while the device
runs the backbone on fixed-size batches of real frames packed across clips, so
padding frames cost no compute and there is one compile. A shard already on
disk with the same settings and exactly the clips planned for it is skipped:
an interrupted run picks up where it stopped, also after the clip list was
edited (see `features.plan_shards`). `verify_features` (--verify) reads every
shard whole and moves damaged ones aside for the next run to rewrite. Clips
that cannot be decoded are skipped, recorded in their shard and listed in
`failed_videos.csv`.
"""
from __future__ import annotations

import functools
import hashlib
import math
import os
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import cv2
import flax.serialization
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import Mesh

from videojax import config_check, files, models, platform, sharding
from videojax.data import features as features_lib
from videojax.data import sources, video
from videojax.data.parallel import prefetch_map
from videojax.progress import Progress

BACKBONE_FILE = features_lib.BACKBONE_FILE
SPLITS = ("train", "test")


def extraction_spec(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The settings that determine the features; their hash marks every shard.

  Keys are added only where they differ from the settings of older feature
  dirs, so that those keep their hash: e.g. `frames` only for 'pixels', whose
  spec has no backbone keys at all.
  """
  e = config.extract
  pixels = e.get("frames", "features") == "pixels"
  spec = {"format_version": features_lib.FORMAT_VERSION}
  if pixels:
    spec["frames"] = "pixels"
  else:
    spec.update(backbone=e.backbone, weights=e.weights, seed=e.seed, pooling=e.pooling)
    if e.get("weights_layout", ""):  # Absent when unset: older hashes hold.
      spec["weights_layout"] = e.weights_layout
  spec.update(num_frames=config.data.num_frames, image_size=e.image_size, split=config.data.split,
              **sources.split_spec(config.data))
  if e.pooling == "grid" and not pixels:
    spec["grid_size"] = e.grid_size
  if e.get("crop", "center") != "center":  # Absent for the default: older hashes hold.
    spec["crop"] = e.crop
  if e.get("crop_fraction", 1.0) != 1.0:  # Likewise.
    spec["crop_fraction"] = float(e.crop_fraction)
  if tuple(e.temporal_scales) != (1.0,):
    spec["temporal_scales"] = [float(v) for v in e.temporal_scales]
  if not pixels:
    path = models.backbone_weights_path(e.backbone, e.weights)
    if path is not None:  # Another file under the same name gives other features.
      spec["weights_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
  return spec


def create_backbone(spec: dict[str, Any]):
  kwargs = {"pooling": spec["pooling"]}
  if spec["pooling"] == "grid":
    kwargs["grid_size"] = spec["grid_size"]
  return models.create_backbone(spec["backbone"], cpu_kernels=platform.cpu_kernels(), **kwargs)


def load_or_init_backbone(spec: dict[str, Any], features_dir: pathlib.Path):
  """The backbone module and its variables, saved beside the features.

  The variables come from `spec['weights']` ('imagenet', 'random-init' or a
  file; see `models.load_backbone_variables`).

  The variables are written once to `<features_dir>/backbone.msgpack`, so that
  prediction later embeds new videos with exactly the weights the features
  came from.

  Raises:
    FeatureError: a saved backbone file whose tensors do not fit the module.
  """
  module = create_backbone(spec)
  dummy = jnp.zeros((1, spec["image_size"], spec["image_size"], 3), jnp.float32)
  path = features_dir / BACKBONE_FILE
  if path.exists():
    variables = flax.serialization.msgpack_restore(path.read_bytes())
    expected = jax.eval_shape(module.init, jax.random.key(0), dummy)
    got = jax.tree.map(lambda x: (tuple(x.shape), str(x.dtype)), variables)
    want = jax.tree.map(lambda x: (tuple(x.shape), str(x.dtype)), expected)
    if got != want:
      raise features_lib.FeatureError(f"{path}: tensors do not fit backbone "
                                      f"{spec['backbone']!r}; delete it or use another "
                                      "features_dir")
    return module, variables
  variables = models.load_backbone_variables(spec["backbone"], module, spec["weights"],
                                             seed=spec["seed"], image_size=spec["image_size"],
                                             layout=spec.get("weights_layout", ""))
  data = flax.serialization.msgpack_serialize(variables)
  if files.is_url(path):  # An object is visible whole once written.
    path.write_bytes(data)
    return module, variables
  tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
  tmp.write_bytes(data)
  os.replace(tmp, path)
  return module, variables


def make_embed_fn(backbone: str, module, variables, mesh: Mesh,
                  compiler_options: dict | None = None) -> Callable[[np.ndarray], np.ndarray]:
  """frames u8[n, s, s, 3] -> features f32[n, d]; n a multiple of the mesh size.

  `backbone` names the module's architecture, which fixes the preprocessing. The
  features come back as a jax.Array as soon as the work is dispatched: `np.asarray`
  waits for them, so the caller can prepare the next batch meanwhile (FramePacker).
  compiler_options: XLA's, for the compile; None: `platform.backbone_compiler_options()`.
  """
  repl, data = sharding.replicated(mesh), sharding.batch_sharded(mesh)
  variables = jax.device_put(variables, repl)

  preprocess = functools.partial(models.preprocess_frames, backbone)

  def embed(variables, frames):
    return module.apply(variables, preprocess(frames))

  embed = jax.jit(embed, in_shardings=(repl, data), out_shardings=data,
                  compiler_options=(platform.backbone_compiler_options()
                                    if compiler_options is None else compiler_options))
  return lambda frames: embed(variables, jax.device_put(frames, data))


def pixels(frames: np.ndarray) -> np.ndarray:
  """Frames u8[n, s, s, 3] as features f32[n, s*s*3]: frames * float32(1 / 255), flattened.

  What config.extract.frames=pixels stores, for models that learn from raw frames
  (the ConvLSTM): each frame in (row, column, channel) order, as a grid's cells are.
  Within an ulp of frames / 255, and equal to it once rounded to float16; NumPy's
  product is the one XLA computes for a division by 255.

  float16 storage is exact enough: the values are k / 255, and the nonzero ones
  (>= 1/255) lie in float16's normal range (>= 2^-14), where rounding errs by at
  most 2^-11 relative, 2^-12 absolute below 1: a sixteenth of the 1/255 step
  between levels, so round(255 x) gives back every u8 level (one temporal scale;
  several average their frames).
  """
  frames = np.asarray(frames)
  if frames.ndim != 4 or frames.shape[-1] != 3:
    raise ValueError(f"pixels: expected RGB frames u8[n, s, s, 3]; got {frames.shape}")
  return (frames * np.float32(1 / 255)).reshape(len(frames), -1)


def frame_encoder(spec: dict[str, Any], features_dir: pathlib.Path,
                  mesh: Mesh) -> tuple[Callable[[np.ndarray], np.ndarray], int]:
  """(frames u8[n, s, s, 3] -> features f32[n, d], d) for features made with `spec`.

  Raw frames (spec frames='pixels') need no backbone; otherwise the backbone is
  loaded or initialised and saved beside the features (`load_or_init_backbone`).
  """
  if spec.get("frames") == "pixels":
    return pixels, spec["image_size"] ** 2 * 3
  module, variables = load_or_init_backbone(spec, features_dir)
  dim = models.backbone_feature_dim(spec["backbone"], spec["pooling"], spec.get("grid_size", 2))
  return make_embed_fn(spec["backbone"], module, variables, mesh), dim


class FramePacker:
  """Packs the real frames of consecutive clips into fixed-size device batches.

  A clip arrives as its distinct frames and, per temporal view, which frame
  each position shows (see `video.read_video_views`); a position's feature is
  the mean over the views in which it lies inside the clip.

  One batch is on the device while the next is filled: a full batch is
  dispatched, then the one before it is collected (`embed` may return an array
  that is computed asynchronously, `make_embed_fn`), and filling goes on in the
  other of two buffers, whose batch has been collected.

  Attributes:
    features: f32[n, t, d] per clip slot, after `flush`; positions past each
      clip's length stay 0.
  """

  def __init__(self, embed, batch_size: int, num_clips: int, num_frames: int,
               image_size: int, feature_dim: int):
    self._embed = embed
    self._bufs = [np.zeros((batch_size, image_size, image_size, 3), np.uint8) for _ in range(2)]
    self._buf = self._bufs[0]
    # Per buffer row: (clip, the positions it fills, once per view showing it).
    self._owners: list[tuple[int, np.ndarray]] = []
    self._pending = None  # (owners, features) of the batch on the device.
    self._sum = np.zeros((num_clips, num_frames, feature_dim), np.float32)
    self._count = np.zeros((num_clips, num_frames), np.int32)

  @property
  def features(self) -> np.ndarray:
    return self._sum / np.maximum(self._count, 1)[..., None]

  def add(self, clip: int, frames: np.ndarray, frame_of: np.ndarray) -> None:
    """frames u8[k, s, s, 3] distinct frames; frame_of i32[views, length], -1 = none."""
    for row, frame in enumerate(frames):
      positions = np.nonzero(frame_of == row)[1]
      if not len(positions):
        continue
      self._buf[len(self._owners)] = frame
      self._owners.append((clip, positions))
      if len(self._owners) == len(self._buf):
        self._dispatch()

  def flush(self) -> None:
    """Embeds the frames added so far (a partial batch too) and waits for every batch."""
    if self._owners:
      self._dispatch()
    self._collect()

  def _dispatch(self) -> None:
    self._buf[len(self._owners):] = 0
    out = self._embed(self._buf)
    self._collect()  # The batch before: its buffer is free once it is collected.
    self._pending = (self._owners, out)
    self._owners = []
    self._buf = self._bufs[1] if self._buf is self._bufs[0] else self._bufs[0]

  def _collect(self) -> None:
    if self._pending is None:
      return
    owners, out = self._pending
    out = np.asarray(out)
    for row, (clip, positions) in enumerate(owners):
      np.add.at(self._sum[clip], positions, out[row])
      np.add.at(self._count[clip], positions, 1)
    self._pending = None


def read_views(path: str | os.PathLike, spec: dict[str, Any]):
  """`video.read_video_views` of a file with an extraction spec's frames, size and scales."""
  return video.read_video_views(path, spec["num_frames"], spec["image_size"],
                                tuple(spec.get("temporal_scales", (1.0,))),
                                spec.get("crop", "center"), spec.get("crop_fraction", 1.0))


def read_example_views(example: sources.Clip, spec: dict[str, Any]):
  """`read_views` of the clip's file, or of its frames where it has them (tfds_ucf101)."""
  if example.frames is None:
    return read_views(example.path, spec)
  return video.read_encoded_views(example.frames(), spec["num_frames"], spec["image_size"],
                                  tuple(spec.get("temporal_scales", (1.0,))), example.video_id,
                                  spec.get("crop", "center"), spec.get("crop_fraction", 1.0))


def extract_shard(examples: Sequence[sources.Clip], path: pathlib.Path, *, embed,
                  spec: dict[str, Any], class_names: Sequence[str], feature_dim: int,
                  batch_size: int, num_workers: int, progress) -> list[list[str]]:
  """Embeds one shard's clips and writes the shard; returns its failures."""
  packer = FramePacker(embed, batch_size, len(examples), spec["num_frames"],
                       spec["image_size"], feature_dim)
  lengths = np.zeros(len(examples), np.int32)
  failed: list[list[str]] = []
  decoded = prefetch_map(lambda e: read_example_views(e, spec), examples, num_workers,
                         depth=2 * max(1, num_workers))
  for i, (example, future) in enumerate(zip(examples, decoded)):
    try:
      frames, frame_of, lengths[i] = future.result()
      packer.add(i, frames, frame_of)
    except (video.VideoError, cv2.error, OSError) as e:
      failed.append([example.video_id, str(e)])
    progress.update(1)
  packer.flush()
  feats = packer.features
  with np.errstate(over="ignore"):
    finite = np.isfinite(feats.astype(np.float16)).reshape(len(examples), -1).all(axis=1)
  failed_ids = {f[0] for f in failed}
  for i in np.flatnonzero(~finite):
    failed.append([examples[i].video_id, "backbone features are NaN/inf (or overflow float16)"])
  ok = [i for i, e in enumerate(examples) if e.video_id not in failed_ids and finite[i]]
  features_lib.write_shard(
      path, features=feats[ok], lengths=lengths[ok],
      labels=np.array([examples[i].label for i in ok], np.int32),
      video_ids=[examples[i].video_id for i in ok], class_names=class_names, spec=spec,
      failed=failed, groups=[examples[i].group for i in ok])
  return failed


def extract_features(config: ml_collections.ConfigDict, *, splits: Sequence[str] = SPLITS,
                     worker: int = 0, num_workers: int = 1, echo=print) -> dict[str, Any]:
  """Extracts the features of `splits` of `config.data.root` into `config.data.features_dir`.

  Args:
    config: the experiment config (data.*, extract.*).
    splits: which split lists to extract.
    worker, num_workers: this process does shards i with i % num_workers == worker,
      so several machines can share one extraction.
    echo: where messages go.

  Returns:
    {'extracted': shards written, 'skipped': shards already complete,
     'failed': [[split, video_id, reason], ...] over all shards on disk}.

  Raises:
    ConfigError: bad config values (videojax.config_check), all listed in one message.
    ValueError: unreadable split files.
    FeatureError: a features_dir made with other settings.
  """
  config_check.validate(config, "extract")  # Before anything is written (spec.json).
  if not 0 <= worker < num_workers:
    raise ValueError(f"--shard={worker} must lie in [0, --num_shards={num_workers})")
  features_dir = files.path(config.data.features_dir)  # Local, or a URL (gs://...).
  features_dir.mkdir(parents=True, exist_ok=True)
  source = sources.get(config.data)
  class_names = source.class_names()
  spec = extraction_spec(config)
  features_lib.check_spec_file(features_dir, spec, class_names)

  mesh = sharding.make_mesh(config.extract.num_devices, local=True)
  n_dev = mesh.devices.size
  batch_size = math.ceil(config.extract.batch_size / n_dev) * n_dev
  embed, feature_dim = frame_encoder(spec, features_dir, mesh)
  size = config.extract.shard_size

  todo, skipped, counts = [], 0, {}
  for split in splits:
    examples = source.clips(split)
    plan, done = features_lib.plan_shards(features_dir, split, examples, size, spec,
                                          worker, num_workers, echo=echo)
    todo, skipped = todo + plan, skipped + done
    counts[split] = features_lib.shard_count(len(examples), size)

  echo(f"Extracting {sum(len(e) for _, e in todo)} clips in {len(todo)} shards "
       f"({skipped} shards already complete) with {spec.get('backbone', 'raw frames')} on "
       f"{n_dev} device(s) into {features_dir}")
  with Progress(total=sum(len(e) for _, e in todo), desc="extract", unit="clip") as progress:
    for path, examples in todo:
      extract_shard(examples, path, embed=embed, spec=spec, class_names=class_names,
                    feature_dim=feature_dim, batch_size=batch_size,
                    num_workers=config.extract.num_workers, progress=progress)

  features_lib.clear_stale_shards(features_dir, counts, echo)
  failed = features_lib.write_failure_report(features_dir)
  if failed:
    echo(f"{len(failed)} clip(s) could not be used and were skipped; see "
         f"{features_dir / features_lib.FAILED_FILE}")
  return {"extracted": len(todo), "skipped": skipped, "failed": failed}


def verify_features(config: ml_collections.ConfigDict, *, splits: Sequence[str] = SPLITS,
                    echo=print) -> dict[str, Any]:
  """Reads every shard of `splits` in `config.data.features_dir` whole (`--verify`).

  Damaged shards (unreadable, failing their checksums, invalid values) are
  moved into `<features_dir>/damaged/` (see `features.verify_shards`), so that
  the next extraction with the same config rewrites exactly them.

  Returns:
    {'checked': shards read, 'without_checksums': of them, written before
     checksums existed, 'damaged': [[moved-to path, reason], ...]} (empty).

  Raises:
    ValueError: config.data.features_dir is empty or not a directory.
    FeatureError: no shard to verify, or some shards were damaged (it names
      them and says what to run).
  """
  if not config.data.features_dir:
    raise ValueError("config.data.features_dir is empty; set --config.data.features_dir=PATH")
  features_dir = files.path(config.data.features_dir)
  if not features_dir.is_dir():
    raise ValueError(f"{features_dir}: no such features directory; check "
                     "--config.data.features_dir")
  bad, checked, unchecked = features_lib.verify_shards(features_dir, splits)
  if not checked:
    raise features_lib.FeatureError(f"{features_dir}: no feature shards of {', '.join(splits)} "
                                    "to verify; run scripts/extract_features.py first")
  for dest, reason in bad:
    echo(f"damaged: {reason}; moved to {dest}")
  if bad:
    raise features_lib.FeatureError(
        f"{len(bad)} of {checked} shard(s) in {features_dir} are damaged "
        f"({', '.join(dest.name for dest, _ in bad)}) and were moved to "
        f"{features_dir / features_lib.DAMAGED_DIR}; run scripts/extract_features.py again "
        "with the same config, without --verify, to re-extract them")
  echo(f"Verified {checked} shard(s) of {', '.join(splits)} in {features_dir}: all read back "
       "whole" + (f" ({unchecked} written before shards had checksums: checked by a full "
                  "read only; delete and re-extract them to add checksums)" if unchecked else ""))
  return {"checked": checked, "without_checksums": unchecked, "damaged": []}
