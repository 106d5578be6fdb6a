"""Widths scaled to the feature dimension: a 0 in a model's config means "from d"."""
import ml_collections
import pytest

from configs import default
from videojax import train
from videojax.models import widths


@pytest.mark.parametrize("d, width", [(8, 32), (512, 64), (1280, 128), (2048, 256),
                                      (5120, 256)])
def test_width_from_dim(d, width):
  assert widths.width_from_dim(d) == width


def test_resolve_replaces_zeros_only():
  kw = {"hidden": [0, 8], "dense": 8, "dropout": 0.0}
  assert widths.resolve("gru", kw, 1280) == {"hidden": [128, 8], "dense": 8, "dropout": 0.0}
  assert kw["hidden"] == [0, 8]  # the input is left alone
  assert widths.resolve("transformer", {"width": 0, "mlp_dim": 0}, 512) == {
      "width": 64, "mlp_dim": 128}
  # convlstm's channels=0 means "no projection", not "from d".
  assert widths.resolve("convlstm", {"channels": 0}, 1280) == {"channels": 0}


def test_model_kwargs_are_concrete():
  c = default.get_config("gru")
  c.model.gru = ml_collections.ConfigDict(dict(hidden=(0,), dropout=0.5, dense=16))
  assert train.model_kwargs(c, 512) == {"hidden": [64], "dropout": 0.5, "dense": 16}
