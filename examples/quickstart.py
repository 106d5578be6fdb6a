# %% [markdown]
# # videojax quickstart: videos -> features -> a trained model -> evaluation -> a plot
#
# Runs top to bottom as a script (`.venv/bin/python examples/quickstart.py`, about a minute
# on 2 CPU cores) or cell by cell (`# %%` markers: VS Code, PyCharm, Jupytext). Settings
# come from the environment:
#
# - `QUICKSTART_VIDEOS`: your videos, one folder per class, `<folder>/<Class>/<video>`
#   (any container OpenCV reads); unset, a few clips are generated (`videojax.data.synthetic`).
# - `QUICKSTART_WORKDIR`: where everything is written (default `runs/quickstart`).
# - `QUICKSTART_SIZE=tiny`: raw 16 px frames instead of a backbone and 2 epochs, the
#   seconds-long run the tests make (`tests/test_quickstart.py`).

# %%
import json
import os
import pathlib

from configs import demo
from videojax import extract, platform, train
from videojax.data import synthetic
from videojax.tools import evaluate, plots, predict

platform.split_cpu_into_devices()  # Before JAX starts: on a CPU, one XLA device per core.

TINY = os.environ.get("QUICKSTART_SIZE") == "tiny"
WORKDIR = pathlib.Path(os.environ.get("QUICKSTART_WORKDIR", "runs/quickstart"))
VIDEOS = os.environ.get("QUICKSTART_VIDEOS")

# %% [markdown]
# ## 1. Videos
# A folder per class. Without yours, 9 generated classes: three pairs that differ only in
# the direction of motion (MoveLeft/MoveRight, ...) and three textures. Clips of one *group*
# share a scene; the split keeps groups whole, so test scenes are never seen in training.

# %%
if VIDEOS:
  videos = pathlib.Path(VIDEOS)
else:
  videos = synthetic.write_dataset(
      WORKDIR / "videos", groups=3 if TINY else 8, test_groups=1,
      clips_per_group=1 if TINY else 2, size=16 if TINY else 64,
      min_frames=4 if TINY else 12, max_frames=8 if TINY else 40)
classes = sorted(p.name for p in videos.iterdir() if p.is_dir())
print(f"{len(classes)} classes in {videos}: {', '.join(classes)}")

# %% [markdown]
# ## 2. Features
# `configs/demo.py`: ImageNet EfficientNet-Lite0 (installed with videojax) on 112 px frames,
# 16 frames a clip, a 2x2 grid of features per frame. Every key can be changed here as with
# `--config.<key>=<value>` on the command line. Extraction writes HDF5 shards once; running
# it again skips them.

# %%
config = demo.get_config()
config.data.layout = "folders"  # <root>/<Class>/<video>, split by group into train and test.
config.data.root = str(videos)
config.data.features_dir = str(WORKDIR / "features")
if TINY:  # Raw 16 px frames, no backbone: seconds instead of a minute.
  config.extract.frames, config.extract.pooling, config.extract.image_size = "pixels", "avg", 16
  config.data.num_frames, config.train.num_epochs, config.train.batch_size = 4, 2, 8

report = extract.extract_features(config)
print(f"{report['extracted']} shard(s) written, {len(report['failed'])} clip(s) failed")

# %% [markdown]
# ## 3. Train
# A GRU over the frames' features; the best epoch on held-out training groups is kept and
# evaluated on the test split.

# %%
run_dir = WORKDIR / "gru"
results = train.train_and_evaluate(config, run_dir)
print(f"test top-1 {results['accuracy']:.3f} at step {results['best_step']}")

# %% [markdown]
# ## 4. Evaluate and predict
# `evaluate` writes metrics.json, per_class.csv, confusion.csv/.png and the probabilities;
# `Predictor` classifies any video file with the run's best checkpoint.

# %%
metrics = evaluate.evaluate([run_dir], run_dir / "eval")
clip = sorted(p for p in videos.glob("*/*") if p.is_file())[0]
top = predict.Predictor(run_dir).top_k(clip, k=3)
print(f"{clip.name}: " + ", ".join(f"{name} {p:.2f}" for name, p in top))

# %% [markdown]
# ## 5. Plot
# Loss and accuracy per epoch, from the run's metrics.jsonl (one JSON record per epoch).

# %%
records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
epochs = [r["epoch"] for r in records]
panels = {metric: {split: (epochs, [r[f"{split}_{metric}"] for r in records])
                   for split in ("train", "val")}
          for metric in ("loss", "accuracy")}
figure = plots.curves_png(WORKDIR / "quickstart.png", panels, xlabel="epoch",
                          title=f"GRU, test top-1 {metrics['top1_accuracy']:.3f}")
print(f"curves: {figure}; confusion matrix: {run_dir / 'eval' / 'confusion.png'}")
