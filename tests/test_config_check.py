"""config_check.validate: every bad key in one message, before a stage writes anything."""
import pytest

from configs import default
from tests.test_configs import VARIANTS, load
from tests.test_multihost import _config, _write_features
from videojax import extract, train
from videojax.config_check import ConfigError, validate


@pytest.mark.parametrize("name, arg", VARIANTS)
def test_every_shipped_config_and_variant_is_valid(name, arg):
  c = load(name, arg)
  c.data.root, c.data.features_dir = "/data/videos", "/data/features"
  validate(c, "extract")
  validate(c, "train")


def test_every_bad_key_is_listed_in_one_message():
  c = default.get_config()
  c.data.root, c.data.features_dir = "/data/videos", "/data/features"
  bad_train = {"train.batch_size": 0, "eval.batch_size": 0, "train.num_epochs": 0,
               "model.name": "grux", "train.learning_rate": float("inf"),
               "train.weight_decay": -0.1, "train.label_smoothing": 1.0,
               "data.val_fraction": 1.0, "train.checkpoint_every_steps": -1,
               "data.val_seed": -1}
  bad_extract = {"extract.backbone": "foo", "extract.pooling": "max",
                 "extract.crop": "top", "extract.crop_fraction": 1.5, "extract.image_size": 0, "extract.grid_size": 0,
                 "extract.shard_size": 0, "extract.num_workers": 0, "extract.batch_size": 0}
  # Every stage checks the data section; the sequence length is extracted and trained on.
  both = {"data.layout": "kinetics", "data.num_frames": -1}
  bad_train, bad_extract = {**bad_train, **both}, {**bad_extract, **both}
  for key, value in {**bad_train, **bad_extract}.items():
    section, name = key.split(".")
    c[section][name] = value
  with pytest.raises(ConfigError) as train_error:
    validate(c, "train")
  with pytest.raises(ConfigError) as extract_error:
    validate(c, "extract")
  for error, bad in [(train_error, bad_train), (extract_error, bad_extract)]:
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{len(bad)} bad config value(s): ")
    for key, value in bad.items():
      assert f"config.{key}={value!r}: " in message, key
  message = str(train_error.value)
  assert "config.train.batch_size=0: a positive multiple of the 8 device(s), e.g. 8" in message
  assert "config.model.name='grux': one of gru, meanpool," in message
  assert "config.extract.backbone='foo': one of resnet18," in str(extract_error.value)


def test_extract_frames():
  c = default.get_config()
  c.data.root, c.data.features_dir = "/data/videos", "/data/features"
  c.extract.frames = "raw"
  with pytest.raises(ConfigError, match=r"^1 bad .*config\.extract\.frames='raw': one of "
                     "features, pixels$"):
    validate(c, "extract")
  # Raw frames need no backbone: its keys are not read; but pooling cannot be had.
  c.extract.frames, c.extract.backbone, c.extract.pooling = "pixels", "foo", "grid"
  with pytest.raises(ConfigError, match=r"^1 bad .*config\.extract\.pooling='grid': "
                     r"extract\.frames=pixels stores whole frames and pools nothing"):
    validate(c, "extract")
  c.extract.pooling = "avg"
  validate(c, "extract")


def test_names_and_files_of_the_other_engineers_keys(tmp_path):
  c = _config(tmp_path)
  c.train.best_metric, c.train.best_mode = "val_loss", "min"
  c.data.val_list = str(tmp_path / "val.txt")
  with pytest.raises(ConfigError, match=r"config.data.val_list='.*val.txt': a readable text"):
    validate(c, "train")
  (tmp_path / "val.txt").write_text("Alpha/v_Alpha_g01_c01\n")
  validate(c, "train")
  c.train.best_metric, c.train.best_mode = "accuracy", "up"
  with pytest.raises(ConfigError, match=r"2 bad .*best_metric='accuracy': one of val_accuracy, "
                     r"val_loss; config.train.best_mode='up': one of max, min"):
    validate(c, "train")


def test_batch_sizes_must_split_over_devices_and_parts(tmp_path):
  c = _config(tmp_path, **{"train.num_devices": 4, "data.num_parts": 3,
                           "train.batch_size": 8, "eval.batch_size": 12})
  with pytest.raises(ConfigError, match=r"^1 bad .*config.train.batch_size=8: a positive "
                     r"multiple of the 4 device\(s\) and the 3 data parts, e.g. 12$"):
    validate(c, "train")
  c.train.num_devices = 9
  with pytest.raises(ConfigError, match=r"config.train.num_devices=9: 0 \(all\) to 8"):
    validate(c, "train")


def test_bad_extract_config_writes_no_spec(shared_data, tmp_path):
  c = default.get_config()
  c.data.root = str(shared_data / "weizmann4")
  c.data.features_dir = str(tmp_path / "features")
  c.data.num_frames = 0
  with pytest.raises(ConfigError, match=r"^1 bad .*config.data.num_frames=0: an integer >= 1"):
    extract.extract_features(c, echo=lambda *_: None)
  assert not (tmp_path / "features").exists()


def test_an_older_configs_extract_num_frames_is_refused_naming_the_new_key():
  c = default.get_config()
  c.data.root, c.data.features_dir = "/data/videos", "/data/features"
  c.extract.num_frames = 20  # The sequence length of configs before data.num_frames.
  for stage in ("extract", "train"):
    with pytest.raises(ConfigError, match=r"^1 bad config value\(s\): config.extract.num_frames "
                       r"was removed: set config.data.num_frames, the one sequence length"):
      validate(c, stage)


def test_normalize_features_is_refused_naming_feature_norm():
  c = default.get_config()
  c.data.root, c.data.features_dir = "/data/videos", "/data/features"
  c.train.normalize_features = False  # The switch of configs before train.feature_norm.
  with pytest.raises(ConfigError, match=r"^1 bad config value\(s\): config.train."
                     r"normalize_features was removed: set config.train.feature_norm: "
                     r"'standardize' for True, 'none' for False"):
    validate(c, "train")


@pytest.mark.parametrize("key, value, message", [
    ("train.feature_norm", "l1", "config.train.feature_norm='l1': one of standardize, l2, "
                                 "power, none"),
    ("model.lstm.pooling", "max", "config.model.lstm.pooling='max': one of mean, last"),
    ("model.bilstm.hidden", (), r"config.model.bilstm.hidden=\(\): one or more LSTM widths"),
    ("model.linear_probe.dropout", 1.0, "config.model.linear_probe.dropout=1.0: a number in"),
])
def test_feature_norm_and_the_new_models_kwargs(key, value, message):
  c = default.get_config()
  c.data.root, c.data.features_dir = "/data/videos", "/data/features"
  c.model.name = key.split(".")[1] if key.startswith("model.") else "gru"
  validate(c, "train")
  section, *path, name = key.split(".")
  node = c[section]
  for part in path:
    node = node[part]
  node[name] = value
  with pytest.raises(ConfigError, match=r"^1 bad config value\(s\): " + message):
    validate(c, "train")


@pytest.mark.parametrize("key, value, message", [
    ("eval.batch_size", 0, "config.eval.batch_size=0: a positive multiple"),  # was after an epoch
    ("train.num_epochs", 0, "config.train.num_epochs=0: an integer >= 1"),
    ("model.name", "grux", "config.model.name='grux': one of gru,"),
])
def test_bad_train_config_writes_no_workdir(tmp_path, key, value, message):
  features = tmp_path / "features"
  features.mkdir()
  _write_features(features, "train", 2, 8, seed=0)
  _write_features(features, "test", 1, 4, seed=1)
  before = sorted((p.name, p.stat().st_mtime_ns) for p in features.iterdir())
  with pytest.raises(ConfigError, match=message):
    train.train_and_evaluate(_config(features, **{key: value}), str(tmp_path / "run"),
                             echo=lambda *_: None)
  assert not (tmp_path / "run").exists()
  assert sorted((p.name, p.stat().st_mtime_ns) for p in features.iterdir()) == before


def test_unknown_stage_is_a_bug():
  with pytest.raises(ValueError, match="stage='eval'"):
    validate(default.get_config(), "eval")



def test_extract_weights_layout():
  """Only EfficientNet-B0/V2-S take it, and only with a weights file (timm's tf_ and own
  EfficientNets share their keys)."""
  c = default.get_config()
  c.data.root, c.data.features_dir = "/data/videos", "/data/features"
  c.extract.backbone, c.extract.weights = "efficientnet_b0", "/m/efficientnet_b0.safetensors"
  for layout in ("", "timm", "timm_tf", "torchvision"):
    c.extract.weights_layout = layout
    validate(c, "extract")
  c.extract.weights_layout = "tf"
  with pytest.raises(ConfigError, match=r"^1 bad .*config\.extract\.weights_layout='tf': "
                     "unset, or for a weights file one of lukemelas, timm_tf, timm, "
                     "torchvision$"):
    validate(c, "extract")
  c.extract.backbone, c.extract.weights_layout = "mobilenet_v2", "timm"
  with pytest.raises(ConfigError, match="unset: mobilenet_v2 reads its layout from the"):
    validate(c, "extract")
  c.extract.backbone, c.extract.weights = "efficientnetv2_s", "random-init"
  with pytest.raises(ConfigError, match="weights_layout='timm': unset, or for a weights"):
    validate(c, "extract")
