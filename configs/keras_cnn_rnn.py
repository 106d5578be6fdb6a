"""The Keras "Video Classification with a CNN-RNN Architecture" example, as faithful as videojax goes.

  python scripts/train.py --config configs/keras_cnn_rnn.py \
      --config.data.root=/data/UCF-101 --config.data.features_dir=/data/ucf101_lite0

Per-frame global-average-pooled CNN features, at most 20 frames per clip with a mask
for shorter clips, then GRU(16) -> GRU(8) -> Dropout(0.4) -> Dense(8, relu) ->
Dense(k, softmax), trained 30 epochs with Adam at a constant 1e-3, no regularisation.
This was videojax's default head until the tuned recipe of configs/default.py
replaced it (on weizmann4 it reaches 14/24 test, the tuned GRU 21-22/24).
Differs: the example uses ImageNet InceptionV3 (2048-d) features at 224 px and takes the
first 20 frames of each clip; here the backbone is ImageNet EfficientNet-Lite0
(1280-d, it installs with videojax) and the 20 frames are sampled uniformly over the
whole clip. Features are standardised per dimension (train.feature_norm) and the
best epoch is chosen on a validation split held out by group, which the example does not do.
"""
import ml_collections

from configs import default
from videojax import config_variants


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """default.py with the example's head and plain Adam; variants of `arg` applied last."""
  c = default.get_config("gru")
  c.model.gru = ml_collections.ConfigDict(dict(hidden=(16, 8), dropout=0.4, dense=8))
  c.train.num_epochs = 30
  c.train.learning_rate = 1e-3
  c.train.weight_decay = 0.0
  c.train.label_smoothing = 0.0
  c.train.schedule = "constant"
  c.train.warmup_epochs = 0.0
  c.train.grad_clip_norm = 0.0
  c.train.frame_dropout = 0.0
  c.train.temporal_crop = 0.0
  return config_variants.apply(c, arg)
