"""PointwiseConv (a 1x1 convolution as a matmul) against flax's own nn.Conv."""
import flax.linen as nn
import jax
import numpy as np
import pytest

from videojax.models.pointwise import PointwiseConv


@pytest.mark.parametrize("strides,padding", [(1, "SAME"), (2, "VALID"), (2, "SAME")])
def test_equals_flax_conv_with_the_same_params(strides, padding):
  """Odd 7x9 maps, so stride 2 must keep rows/cols 0, 2, ..., 6 (ceil(h / s)); fp32: 1e-5."""
  x = np.random.default_rng(0).normal(size=(3, 7, 9, 5)).astype(np.float32)
  ours = PointwiseConv(4, strides=strides)
  params = ours.init(jax.random.key(0), x)
  ref = nn.Conv(4, (1, 1), (strides, strides), padding=padding, use_bias=False)
  want = ref.apply(params, x)
  got = ours.apply(params, x)
  assert got.shape == want.shape == (3, -(-7 // strides), -(-9 // strides), 4)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
