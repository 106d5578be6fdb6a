"""The classic CNN + LSTM video classifier: frozen ImageNet MobileNetV2 features, LSTM(64).

  python scripts/train.py \
      --config 'configs/mobilenet_lstm.py:extract.weights=~/.keras/models/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5' \
      --config.data.root=/data/UCF-101 --config.data.features_dir=/data/ucf101_mobilenet

The tutorials' recipe (a TimeDistributed MobileNetV2 without its top, global average
pooled to 1280-d per 224 px frame, then LSTM(64) -> dropout -> dense softmax, Adam): here
the features are extracted once, the LSTM returns its last state, and training is plain
Adam at a constant 1e-3 with the recipe's switches off, as configs/keras_cnn_rnn.py.

Weights: no MobileNetV2 weights ship with videojax, so extract.weights is random-init until
you give a file (keras.applications.MobileNetV2(weights="imagenet") downloads the one above
to ~/.keras/models/; torchvision's MobileNet_V2_Weights.IMAGENET1K_V1 .pth or timm's
mobilenetv2_100 .safetensors work too, each with the preprocessing it was trained with).
Random-init features are only good for smoke tests.
"""
import ml_collections

from configs import default
from videojax import config_variants


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """default.py with MobileNetV2 features, LSTM(64) and plain Adam; variants of `arg` last."""
  c = default.get_config("lstm")
  c.extract.backbone = "mobilenet_v2"
  c.extract.weights = "random-init"
  c.extract.image_size = 224
  c.extract.pooling = "avg"
  c.model.lstm = ml_collections.ConfigDict(dict(hidden=(64,), pooling="last", dropout=0.3))
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
