"""Shard layout and streaming: compression against read speed, and a generated large set.

  # read MB/s per core and size on disk for gzip / lzf / none, on real features
  python benchmarks/bench_stream.py codecs --src /data/features --out /tmp/codecs
  # a generated training set of 6000 clips x 32 x 8192 f16 (3.1 GB) to train on
  python benchmarks/bench_stream.py generate --out /tmp/big --clips 6000 --frames 32 --dim 8192

`codecs` rewrites the train shards of --src (one clip per chunk, fletcher32, as
`features.write_shard` writes them) under each compression and times reading
them back whole with `stream.ShardArray` on one thread (decoded MB per second:
what one core delivers) and on READ_THREADS threads, best of 5 from a warm
page cache (the disk is out of the measure: decoding is). `generate` writes the
split-1-like layout of the issue's 3.1 GB set: random features with a per-class
offset, 2 clips per group, 230 clips a shard, a test split a third the size.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from videojax.data import features as F  # noqa: E402
from videojax.data import stream  # noqa: E402


def _read_all(paths, threads: int) -> tuple[float, int]:
  """Seconds to read every row of `paths` through ShardArray, and the bytes decoded."""
  import concurrent.futures
  sizes = []
  for p in paths:
    with F.open_shard(p) as f:
      sizes.append(f["features"].shape)
  shards = np.concatenate([np.full(s[0], j) for j, s in enumerate(sizes)])
  rows = np.concatenate([np.arange(s[0]) for s in sizes])
  arr = stream.ShardArray(paths, shards, rows, sizes[0][1:], np.full(len(rows), sizes[0][1]))
  start = time.perf_counter()
  with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    out = arr.read(np.arange(len(rows)), pool)
  return time.perf_counter() - start, out.nbytes


def codecs(src: pathlib.Path, out: pathlib.Path) -> None:
  fs = F.load_split(src, "train")
  print(f"{len(fs)} clips x {fs.num_frames} x {fs.feature_dim} f16 = {fs.features.nbytes / 2**20:.0f} MB")
  print("| compression | on disk MB | ratio | 1 thread MB/s | 2 threads MB/s | write s |")
  print("|---|---|---|---|---|---|")
  for codec in F.COMPRESSIONS:
    d = out / codec
    d.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    paths = []
    for j, lo in enumerate(range(0, len(fs), 64)):
      part = fs.take(np.arange(lo, min(lo + 64, len(fs))))
      paths.append(F.write_shard(d / F.shard_name("train", j, -(-len(fs) // 64)),
                                 features=part.features, lengths=part.lengths,
                                 labels=part.labels, video_ids=part.video_ids,
                                 class_names=fs.class_names, spec=fs.spec, compression=codec))
    write = time.perf_counter() - start
    disk = sum(p.stat().st_size for p in paths)
    speeds = []
    for threads in (1, stream.READ_THREADS):
      best = min(_read_all(paths, threads)[0] for _ in range(5))  # warm page cache
      speeds.append(fs.features.nbytes / 2**20 / best)
    print(f"| {codec} | {disk / 2**20:.0f} | {disk / fs.features.nbytes:.2f} | {speeds[0]:.0f} "
          f"| {speeds[1]:.0f} | {write:.1f} |")
    shutil.rmtree(d)


def generate(out: pathlib.Path, clips: int, frames: int, dim: int, shard_size: int,
             compression: str) -> None:
  classes = [f"c{k:02d}" for k in range(10)]
  rng = np.random.default_rng(0)
  offsets = rng.normal(size=(len(classes), dim)).astype(np.float16)
  out.mkdir(parents=True, exist_ok=True)
  for split, n in (("train", clips), ("test", max(clips // 3, 1))):
    count = F.shard_count(n, shard_size)
    for j in range(count):
      m = min(shard_size, n - j * shard_size)
      labels = rng.integers(0, len(classes), m)
      feats = rng.standard_normal((m, frames, dim), np.float32).astype(np.float16)
      feats += offsets[labels][:, None, :]
      start = j * shard_size
      ids = [f"{classes[l]}/v_{classes[l]}_g{(start + i) // 2:05d}_c{i % 2:02d}"
             for i, l in enumerate(labels)]
      F.write_shard(out / F.shard_name(split, j, count), features=feats,
                    lengths=np.full(m, frames), labels=labels, video_ids=ids,
                    class_names=classes, spec={"backbone": "generated", "num_frames": frames},
                    compression=compression)
  print(f"{out}: {sum(p.stat().st_size for p in out.glob('*.h5')) / 2**30:.2f} GB on disk")


if __name__ == "__main__":
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest="cmd", required=True)
  c = sub.add_parser("codecs")
  c.add_argument("--src", type=pathlib.Path, required=True)
  c.add_argument("--out", type=pathlib.Path, required=True)
  g = sub.add_parser("generate")
  g.add_argument("--out", type=pathlib.Path, required=True)
  g.add_argument("--clips", type=int, default=6000)
  g.add_argument("--frames", type=int, default=32)
  g.add_argument("--dim", type=int, default=8192)
  g.add_argument("--shard_size", type=int, default=230)
  g.add_argument("--compression", default="none", choices=F.COMPRESSIONS)
  a = p.parse_args()
  if a.cmd == "codecs":
    codecs(a.src, a.out)
  else:
    generate(a.out, a.clips, a.frames, a.dim, a.shard_size, a.compression)
