"""Backbone specs: what the registry says of each backbone, and feature dirs that stay valid."""
import pytest

from configs import default
from videojax import extract, models
from videojax.data import features as F
from videojax.models import backbones


def _config(**extract_keys):
  c = default.get_config()
  for k, v in extract_keys.items():
    setattr(c.extract, k, v)
  return c


# The hashes main (7f0dbbd) gave these configs, before backbones became specs: feature dirs
# extracted then keep their hash, so they are neither refused nor re-extracted.
@pytest.mark.parametrize("keys, want", [
    ({}, "70d04da6918dbecd"),
    ({"weights": "random-init"}, "4ed802e9cda3333e"),
    ({"backbone": "resnet18", "weights": "random-init", "pooling": "grid", "grid_size": 3,
      "crop": "start", "temporal_scales": (1.0, 0.85)}, "58696c58cb3f2cda"),
])
def test_cnn_spec_hashes_are_unchanged(keys, want):
  spec = extract.extraction_spec(_config(**keys))
  assert "frames" not in spec  # Added only for pixels.
  assert F.spec_hash(spec) == want


def test_a_crop_fraction_is_in_the_spec_only_when_set():
  assert "crop_fraction" not in extract.extraction_spec(_config(crop_fraction=1.0))
  spec = extract.extraction_spec(_config(crop_fraction=0.875))
  assert spec["crop_fraction"] == 0.875
  assert F.spec_hash(spec) != F.spec_hash(extract.extraction_spec(_config()))


def test_specs_describe_their_backbones():
  assert set(backbones.BACKBONES) == set(models.BACKBONE_NAMES)
  for name, spec in backbones.BACKBONES.items():
    assert backbones.frame_shape(name, "grid", 3) == (3, 3, spec.width)
    assert models.backbone_feature_dim(name, "grid", 3) == 9 * spec.width
  assert backbones.get("efficientnet_lite2").image_size == 260
  assert backbones.get("resnet50").packaged_weights is None
  with pytest.raises(ValueError, match=r"no ImageNet weights ship for resnet50.*"
                     "efficientnet_lite0, efficientnet_lite1, efficientnet_lite2"):
    models.backbone_weights_path("resnet50", "imagenet")


def test_feature_frame_shape_reads_the_spec():
  assert models.feature_frame_shape({"pooling": "avg"}, 1280) == (1280,)
  assert models.feature_frame_shape({"pooling": "grid", "grid_size": 2}, 4 * 512) == (2, 2, 512)
  assert models.feature_frame_shape({"frames": "pixels", "image_size": 8}, 192) == (8, 8, 3)
  assert models.feature_frame_shape({"backbone": "imported"}, 7) == (7,)  # No layout known.
  with pytest.raises(ValueError, match=r"d=100 are not frames of shape \(8, 8, 3\)"):
    models.feature_frame_shape({"frames": "pixels", "image_size": 8}, 100)
