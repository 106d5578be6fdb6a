"""Every config in configs/ and its variants loads, names known parts, builds its model, and
holds no key that nothing reads."""

import ast
import importlib
import inspect
import pathlib
import re

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from videojax import config_variants, extract, models, optim, train
from videojax.data import synthetic

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.py") if p.stem != "__init__")
# (config file, the text after ':'): every file as it is, and variants of each kind.
VARIANTS = [*((name, None) for name in CONFIGS),
            ("default", "meanpool,t32"), ("default", "transformer,t=8"),
            ("default", "backbone=resnet50,t=32,extract.weights=random-init"),
            ("default", "bilstm_attention"), ("default", "linear_probe"), ("default", "lstm"),
            ("default", "bilstm,t16,model.bilstm.pooling=last"),
            ("demo", "gru,t8"), ("bilstm_attention", "t16"), ("convlstm", "t10"),
            ("ucf101", "transformer")]
# Sections handed whole to a function as keyword arguments: their keys are its parameters.
SPLATTED = {"demo_data": synthetic.write_dataset}


def load(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
  return importlib.import_module(f"configs.{name}").get_config(arg)


@pytest.mark.parametrize("name, arg", VARIANTS)
def test_config_builds_its_model(name, arg):
  c = load(name, arg)
  assert c.extract.backbone in models.BACKBONE_NAMES
  assert c.model.name in models.MODEL_NAMES
  d = (c.extract.image_size ** 2 * 3 if c.extract.frames == "pixels" else
       models.backbone_feature_dim(c.extract.backbone, c.extract.pooling, c.extract.grid_size))
  frame = train.model_frame_shape(c, extract.extraction_spec(c), d)
  model = models.create_model(c.model.name, 5, **train.model_kwargs(c, d))
  t = c.data.num_frames
  out = jax.eval_shape(lambda: model.init_with_output(
      jax.random.key(0), jnp.zeros((2, t, *frame)), jnp.ones((2, t), bool), train=False)[0])
  assert out.shape == (2, 5)


def test_variants_set_model_backbone_and_length():
  c = load("default", "meanpool,t32")
  assert (c.model.name, c.data.num_frames) == ("meanpool", 32)
  c = load("default", "backbone=resnet50,t=16,model.gru.hidden=(32,16)")
  assert (c.extract.backbone, c.data.num_frames, c.model.gru.hidden) == ("resnet50", 16, (32, 16))
  assert load("default", "resnet18,gru,t=4,t8").data.num_frames == 8  # Left to right.
  assert load("bilstm_attention", "t16").model.name == "bilstm_attention"  # The file's own.
  assert load("default", "") == load("default")


@pytest.mark.parametrize("arg, message", [
    ("lstmx", "unknown config variant 'lstmx': give a model"),
    ("t=x", "config variant 't=x': 'x' is not a valid value of data.num_frames"),
    ("data.num_frame=8", "unknown config key 'data.num_frame'; keys under 'data': .*num_frames"),
    ("model.gru.hidden=16", "a tuple in brackets"),
    ("extract.num_frames=8", "unknown config key 'extract.num_frames'"),
])
def test_bad_variants_are_refused_naming_them(arg, message):
  with pytest.raises(config_variants.VariantError, match=message):
    load("default", arg)


def test_keras_cnn_rnn_mirrors_the_keras_example():
  c = load("keras_cnn_rnn")
  assert (c.data.num_frames, c.extract.pooling, c.model.name) == (20, "avg", "gru")
  assert dict(c.model.gru) == {"hidden": (16, 8), "dropout": 0.4, "dense": 8}
  # Plain Adam at a constant rate, 30 epochs: every part of the recipe off.
  assert (c.train.num_epochs, c.train.learning_rate, c.train.weight_decay) == (30, 1e-3, 0.0)
  assert all(c.train[k] == v for k, v in optim.DEFAULTS.items()
             if k != "early_stopping_patience")
  assert (c.extract.backbone, c.extract.image_size) == ("efficientnet_lite0", 224)
  # Given weights, the example's InceptionV3 at its 299 px, unless arg names others.
  c = load("keras_cnn_rnn", "extract.weights=~/.keras/models/inception_v3_notop.h5")
  assert (c.extract.backbone, c.extract.image_size) == ("inception_v3", 299)
  c = load("keras_cnn_rnn", "resnet50,extract.weights=/m/r50.pth,extract.image_size=160")
  assert (c.extract.backbone, c.extract.image_size) == ("resnet50", 160)
  assert (c.train.label_smoothing, c.train.frame_dropout, c.train.temporal_crop) == (0, 0, 0)


def test_default_gru_width_follows_the_features():
  c = load("default")
  assert (c.data.num_frames, c.extract.pooling, c.model.name) == (20, "avg", "gru")
  assert train.model_kwargs(c, 1280)["hidden"] == [128]
  assert train.model_kwargs(c, 512)["hidden"] == [64]


def test_bilstm_attention_mirrors_the_issue():
  c = load("bilstm_attention")
  assert (c.extract.backbone, c.data.num_frames) == ("efficientnet_lite0", 64)
  assert tuple(c.extract.temporal_scales) == (1.0, 0.85, 1.15)
  # 768 per direction: our width is the BiLSTM's output, both directions.
  assert dict(c.model.bilstm_attention) == {
      "width": 1536, "num_layers": 4, "num_heads": 12, "dropout": 0.4}
  assert c.train.label_smoothing == 0.1


def test_ucf101_is_split_1_of_the_official_lists_at_its_scale():
  c = load("ucf101")
  assert (c.data.layout, c.data.split, c.data.num_frames) == ("ucf101", 1, 25)
  assert (c.model.name, c.extract.backbone) == ("gru", "efficientnet_lite0")
  assert c.train.num_epochs < load("default").train.num_epochs
  assert c.train.early_stopping_patience > 0


def test_convlstm_mirrors_the_tutorial_input():
  c = load("convlstm")
  assert (c.extract.frames, c.extract.image_size, c.data.num_frames) == ("pixels", 64, 20)
  assert c.model.name == "convlstm" and c.train.feature_norm == "none"


# No dead keys: a key's name must be read somewhere in videojax/ or scripts/.

_IDENT = re.compile(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)*")


def _names_read(paths) -> tuple[set[str], list[re.Pattern]]:
  """Attribute names (`c.train.seed` gives train, seed) and identifier-like strings
  ('train.seed', get('crop')) of the files' code; f-strings that make a name
  (f"csv_{split}") as patterns."""
  names, patterns = set(), []
  for path in paths:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Attribute):
        names.add(node.attr)
      elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
            and _IDENT.fullmatch(node.value)):
        names.update(node.value.split("."))
      elif isinstance(node, ast.JoinedStr):
        parts = [re.escape(v.value) if isinstance(v, ast.Constant) else r"\w+"
                 for v in node.values]
        if parts and isinstance(node.values[0], ast.Constant) and _IDENT.fullmatch(
            node.values[0].value):
          patterns.append(re.compile("".join(parts)))
  return names, patterns


_READ = _names_read([*(ROOT / "videojax").rglob("*.py"), *(ROOT / "scripts").glob("*.py")])


def _is_read(name: str, read=_READ) -> bool:
  names, patterns = read
  return name in names or any(p.fullmatch(name) for p in patterns)


def dead_keys(c: ml_collections.ConfigDict) -> list[str]:
  """The keys of `c` that nothing reads.

  model.<name>.*: the keyword arguments of that model (create_model refuses others),
  for <name> in the registry. SPLATTED sections: parameters of their function. Any
  other key: every part of its dotted name is read as an attribute or a string.
  """
  dead = []
  for section, sub in c.items():
    if section == "model":
      for name, kwargs in sub.items():
        if not isinstance(kwargs, ml_collections.ConfigDict):
          dead += [] if _is_read(name) else [f"model.{name}"]
        elif name not in models.MODEL_NAMES:
          dead.append(f"model.{name}")
        else:
          try:
            models.create_model(name, 5, **kwargs.to_dict())
          except (TypeError, ValueError) as e:
            dead.append(f"model.{name}: {e}")
    elif section in SPLATTED:
      params = inspect.signature(SPLATTED[section]).parameters
      dead += [f"{section}.{k}" for k in sub if k not in params]
    else:
      dead += [f"{section}.{k}" for k in sub if not (_is_read(section) and _is_read(k))]
  return dead


@pytest.mark.parametrize("name, arg", VARIANTS)
def test_no_key_that_nothing_reads(name, arg):
  assert dead_keys(load(name, arg)) == []


def test_the_dead_key_check_finds_dead_keys():
  c = load("demo")
  c.data.nothing_reads_this = 1
  c.ensemble = ml_collections.ConfigDict({"seeds": (0, 1)})
  c.model.gru.widths = (8,)
  c.model.rnn = ml_collections.ConfigDict({"hidden": 8})
  c.demo_data.colour = "red"
  dead = dead_keys(c)
  assert {d.split(":")[0] for d in dead} == {
      "data.nothing_reads_this", "ensemble.seeds", "model.gru", "model.rnn", "demo_data.colour"}
