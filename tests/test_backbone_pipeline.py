"""The seed pipelines' backbones through the project's own path: a config naming each,
with a weights file as users give it (torchvision's), extracts tiny demo videos and
trains on the features.

The numerics of each port are checked against Keras, torchvision and timm in
test_mobilenet_inception.py and test_efficientnet_b0_v2.py; this pins the plumbing:
the loader's input scaling (the 'layout' collection) saved beside the features and
read back, the feature width the spec promises, training on what was written.
"""
import importlib.util
import json
import pathlib
import sys

import numpy as np
import pytest
from safetensors.numpy import save_file

from configs import demo as demo_config
from videojax import extract, train
from videojax.data import features as F
from videojax.data import synthetic
from videojax.models import backbone_feature_dim

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "reference"))
from golden_weights import golden_state  # noqa: E402


def _torch_state(ref):
  data = np.load(HERE / "data" / "torch_goldens.npz", allow_pickle=False)
  meta = json.loads(str(data["meta"]))[ref]
  return golden_state(meta["seed"], meta["keys"])


def _efficientnet_state(ref):
  spec = importlib.util.spec_from_file_location(
      "make_goldens", HERE / "reference" / "make_torch_goldens_efficientnet.py")
  lib = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(lib)
  golden = lib.read(HERE / "data" / "efficientnet_torch_goldens.json.gz")
  model = golden["models"][ref]
  return lib.fill(model["keys"], golden["seed"], model["gain"])


# backbone: (torchvision weights, as a user downloads them; frame side, the smallest each
# takes). Their PyTorch padding and input scaling go through the 'layout' collection,
# saved beside the features. Extraction compiles each backbone (the test's cost); the
# training steps of the three 1280-d ones are one compile (the suite's XLA cache).
CASES = {
    "mobilenet_v2": (lambda: _torch_state("torchvision_mobilenet_v2"), 32),
    "inception_v3": (lambda: _torch_state("torchvision_inception_v3"), 75),
    "efficientnet_b0": (lambda: _efficientnet_state("torchvision_efficientnet_b0"), 32),
    "efficientnetv2_s": (lambda: _efficientnet_state("torchvision_efficientnet_v2_s"), 32),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
  return synthetic.write_dataset(tmp_path_factory.mktemp("videos"), groups=2, test_groups=1,
                                 clips_per_group=1, size=32, min_frames=3, max_frames=5)


@pytest.mark.parametrize("name", list(CASES))
def test_a_config_with_the_backbone_extracts(name, videos, tmp_path):
  state, size = CASES[name]
  weights = tmp_path / f"{name}.safetensors"
  save_file(state(), str(weights))
  c = demo_config.get_config()
  c.data.root, c.data.features_dir = str(videos), str(tmp_path / "features")
  c.extract.backbone, c.extract.weights, c.extract.image_size = name, str(weights), size
  c.extract.pooling = "avg"
  c.data.num_frames, c.data.val_fraction = 2, 0.0
  # One device and the cheapest model: the compiles, not the clips, cost the time here.
  c.extract.num_devices = c.train.num_devices = 1
  c.model.name = "meanpool"
  c.train.num_epochs, c.train.batch_size, c.eval.batch_size = 1, 8, 8
  extract.extract_features(c, echo=lambda *_: None)
  test = F.load_split(c.data.features_dir, "test")
  assert test.features.shape[1:] == (2, backbone_feature_dim(name))
  assert np.isfinite(test.features).all() and np.abs(test.features).max() > 0
  result = train.train_and_evaluate(c, str(tmp_path / "run"), echo=lambda *_: None)
  assert result["num_examples"] == len(test.labels) > 0
  assert np.isfinite(result["test_loss"])
