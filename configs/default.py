"""Default configuration: a UCF-101-layout dataset, ResNet-18 features, the GRU head.

Use:  python scripts/train.py --config configs/default.py \
        --config.data.root=/data/UCF-101 --config.data.features_dir=/data/ucf101_r18
Every field can be overridden with --config.<key>=<value>.
"""
import ml_collections


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()

  c.data = ml_collections.ConfigDict()
  c.data.root = ""             # dataset in UCF-101 layout: <Class>/<video>, classInd.txt, split lists
  c.data.split = 1             # which trainlistNN / testlistNN
  c.data.features_dir = ""     # where extraction writes and training reads HDF5 shards
  c.data.val_fraction = 0.2    # of the training groups (gNN), held out to pick the best epoch

  c.extract = ml_collections.ConfigDict()
  c.extract.backbone = "resnet18"   # resnet18 | resnet34 | resnet50
  c.extract.pooling = "avg"         # avg: f32[d] per frame | grid: grid_size^2 cells, keeps position
  c.extract.grid_size = 2
  c.extract.num_frames = 20         # T: frames sampled uniformly over each whole clip
  c.extract.image_size = 224        # centre crop, resized to image_size^2
  c.extract.seed = 0                # backbone init (random weights until pretrained ones land)
  c.extract.batch_size = 64         # frames per device call
  c.extract.shard_size = 256        # clips per HDF5 shard (the unit of resumption)
  c.extract.num_workers = 4         # decoding threads
  c.extract.num_devices = 0         # 0: every local device

  c.model = ml_collections.ConfigDict()
  c.model.name = "gru"              # gru | meanpool; its kwargs come from c.model.<name>
  c.model.gru = ml_collections.ConfigDict(dict(hidden=(16, 8), dropout=0.4, dense=8))
  c.model.meanpool = ml_collections.ConfigDict(dict(hidden=64, dropout=0.0))

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 32           # global batch, a multiple of the device count
  c.train.num_epochs = 30
  c.train.learning_rate = 1e-3
  c.train.weight_decay = 0.0
  c.train.normalize_features = True # standardise each feature dim with train-split statistics
  c.train.seed = 0
  c.train.num_devices = 0           # 0: every device of every host

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 64
  return c
