"""The Keras "Video Classification with a CNN-RNN Architecture" example, in videojax.

Mirrors: per-frame global-average-pooled CNN features, at most 20 frames per clip with a
mask for shorter clips, then GRU(16) -> GRU(8) -> Dropout(0.4) -> Dense(8, relu) ->
Dense(k, softmax), trained with Adam.

Differs: the example uses ImageNet InceptionV3 (2048-d) features at 224 px and takes the
first 20 frames of each clip; here the backbone is ImageNet EfficientNet-Lite0 (1280-d,
it installs with videojax) and the 20 frames are sampled uniformly over the whole clip.
Features are standardised per dimension (train.normalize_features) and the best epoch
is chosen on a validation split held out by group, which the example does not do.

Use:  python scripts/extract_features.py --config configs/keras_cnn_rnn.py \
        --config.data.root=/data/UCF-101 --config.data.features_dir=/data/ucf_lite0_t20
      python scripts/train.py --config configs/keras_cnn_rnn.py --workdir runs/keras_cnn_rnn \
        --config.data.root=/data/UCF-101 --config.data.features_dir=/data/ucf_lite0_t20
"""
from configs import default


def get_config():
  c = default.get_config()
  c.extract.backbone = "efficientnet_lite0"
  c.extract.weights = "imagenet"
  c.extract.pooling = "avg"
  c.extract.num_frames = 20
  c.extract.image_size = 224
  c.model.name = "gru"
  c.model.gru.hidden = (16, 8)
  c.model.gru.dropout = 0.4
  c.model.gru.dense = 8
  return c
