"""End to end from raw frames: a ConvLSTM stack on 64x64 pixels, 20 frames per clip.

Mirrors the Bleed AI "Human Activity Recognition using TensorFlow (CNN + LSTM)" tutorial
(T. Anwar, R. Naeem, M. Anjum, 24 Sep 2021,
https://bleedaiacademy.com/human-activity-recognition-using-tensorflow-cnn-lstm/), its
ConvLSTM approach: 20 frames per clip at 64x64, scaled to [0, 1]; four ConvLSTM2D(3x3,
tanh) layers of 4, 8, 14 and 16 filters, each followed by a (1, 2, 2) max pool; dropout
0.2; Adam at Keras' default 1e-3; 20% of the training clips held out for validation.
(Read from public copies of its notebook; the stored page gave only its opening.)

Differs:
  - data: UCF-101 split 1, 101 classes, validation held out by group; the tutorial takes
    4 UCF50 classes (WalkingWithDog, TaiChi, Swing, HorseRace), a random 75/25 split,
    and drops clips shorter than 20 frames (here they are masked).
  - frames: a centre crop resized to 64x64, 20 frames spread over the whole clip; the
    tutorial squashes the whole frame to 64x64 and strides from the first frame.
  - layers: widths 16-32-64-64 instead of 4-8-14-16, because the head differs: the
    tutorial flattens the last layer's every step and position (20 x 3 x 3 x 16 values
    with its 'valid' padding) into a softmax over 4 classes; here the last ConvLSTM's
    final state is averaged over space, 64 values, then Dense(128, relu) and 101 logits.
    Padding is 'same'; pooling comes between layers (none after the last); one dropout
    before the head instead of after every pool plus recurrent dropout 0.2.
  - training: batch 16 instead of 4; 50 epochs keeping the best validation epoch, where
    the tutorial trains up to 50 with early stopping (patience 10).

Frames are stored as they are (extract.frames = "pixels": no backbone; extract.backbone,
weights and seed are not read): each frame as f16[64*64*3] in [0, 1], so UCF-101 at 20
frames takes about 6.5 GB before gzip, and training holds it in memory; the trainer gives
the ConvLSTM each frame as f32[64, 64, 3]. feature_norm is none, as the tutorial feeds
frames / 255 as they are.

Use:  python scripts/extract_features.py --config configs/convlstm.py \
        --config.data.root=/data/UCF-101 --config.data.features_dir=/data/ucf_pixels64_t20
      python scripts/train.py --config configs/convlstm.py --workdir runs/convlstm \
        --config.data.root=/data/UCF-101 --config.data.features_dir=/data/ucf_pixels64_t20
"""
import ml_collections

from configs import default
from videojax import config_variants


def get_config(arg=None):
  c = default.get_config()
  c.extract.frames = "pixels"
  c.extract.image_size = 64
  c.data.num_frames = 20
  c.model.name = "convlstm"
  c.model.convlstm = ml_collections.ConfigDict(dict(
      filters=(16, 32, 64, 64), kernel_size=3, pool=2, dropout=0.2, dense=128))
  c.train.feature_norm = "none"
  c.train.batch_size = 16
  c.train.num_epochs = 50
  c.train.learning_rate = 1e-3
  c.eval.batch_size = 32
  return config_variants.apply(c, arg)
