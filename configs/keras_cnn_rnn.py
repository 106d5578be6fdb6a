"""The Keras "Video Classification with a CNN-RNN Architecture" example, as faithful as videojax goes.

  python scripts/train.py --config configs/keras_cnn_rnn.py \
      --config.data.root=/data/UCF-101 --config.data.features_dir=/data/ucf101_lite0

Per-frame global-average-pooled CNN features, at most 20 frames per clip with a mask
for shorter clips, then GRU(16) -> GRU(8) -> Dropout(0.4) -> Dense(8, relu) ->
Dense(k, softmax), trained 30 epochs with Adam at a constant 1e-3, no regularisation.
This was videojax's default head until the tuned recipe of configs/default.py
replaced it (on weizmann4 it reaches 14/24 test, the tuned GRU 21-22/24).
The backbone: the example's ImageNet InceptionV3 (2048-d; 299 px, InceptionV3's own
size) once you give its weights as a variant, else ImageNet EfficientNet-Lite0 at 224 px
(1280-d, it installs with videojax):

  python scripts/train.py --config 'configs/keras_cnn_rnn.py:extract.weights=~/.keras/models/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5' ...

(keras.applications.InceptionV3(weights="imagenet") downloads that file; a torchvision
or timm inception_v3 .pth / .safetensors works too). Any weights file given in `arg`
picks inception_v3 at 299 px unless `arg` also names a backbone or an image_size;
a later --config.extract.weights flag does not switch the backbone.
Differs: the example takes the first 20 frames of each clip (at 224 px); here they are
sampled uniformly over the whole clip. Features are standardised per dimension (train.feature_norm) and the
best epoch is chosen on a validation split held out by group, which the example does not do.
"""
import ml_collections

from configs import default
from videojax import config_variants, models


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """default.py with the example's head and plain Adam; variants of `arg` applied last,
  then the backbone chosen from extract.weights (module docstring)."""
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
  c.extract.backbone, c.extract.image_size = "", 0  # Unset: chosen below unless arg names them.
  config_variants.apply(c, arg)
  weights_file = c.extract.weights not in ("imagenet", "random-init")
  if not c.extract.backbone:
    c.extract.backbone = "inception_v3" if weights_file else "efficientnet_lite0"
  if not c.extract.image_size:
    c.extract.image_size = models.backbones.get(c.extract.backbone).image_size
  return c
