"""The jitted train step's loss against PyTorch's cross-entropy with label smoothing."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from configs import default
from videojax import train


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_loss_equals_torch_cross_entropy_with_label_smoothing(smoothing):
  c = default.get_config()
  c.model.name = "meanpool"
  state = train.create_train_state(c, num_classes=5, num_frames=4, feature_dim=3)
  rng = np.random.default_rng(0)
  batch = {"features": jnp.asarray(rng.normal(size=(6, 4, 3)), jnp.float16),
           "mask": jnp.asarray(np.arange(4)[None] < rng.integers(1, 5, 6)[:, None]),
           "label": jnp.asarray(rng.integers(0, 5, 6), jnp.int32)}
  logits = state.apply_fn({"params": state.params}, train.normalized_features(state, batch),
                          batch["mask"], train=False)
  _, metrics = jax.jit(train.train_step, static_argnames="label_smoothing")(
      state, batch, jax.random.key(0), label_smoothing=smoothing)
  want = torch.nn.functional.cross_entropy(
      torch.tensor(np.asarray(logits, np.float64)), torch.tensor(np.asarray(batch["label"]),
                                                                 dtype=torch.long),
      label_smoothing=smoothing).item()
  # meanpool has no dropout, so train=True gives the same logits; float32 vs float64: 1e-6.
  np.testing.assert_allclose(float(metrics["loss"]), want, rtol=1e-6)
