"""Writes tests/data/torch_goldens.npz: features of torchvision's and timm's
MobileNetV2 and torchvision's InceptionV3 for test_mobilenet_inception.py.

torchvision does not import beside the main venv's torch, so the reference
numbers come from a separate environment and only they are stored:

  /work/refvenv/bin/python tests/reference/make_torch_goldens.py

(generated with torch 2.14.1, torchvision 0.29.1, timm 1.0.31, numpy 2.4.6, on CPU).

For each model the file records its state dict's (name, shape, dtype) in order,
the weight seed (the tensors are `golden_weights.golden_state(seed, keys)`,
which the test regenerates), the frames (`golden_frames(FRAMES_SEED, 2, size)`)
and the reference pooled features f32[2, d] of those frames, preprocessed as
each model's ImageNet weights expect:

  torchvision mobilenet_v2()                      (x / 255 - mean) / std
  timm mobilenetv2_100 (num_classes=0)            (x / 255 - mean) / std
  torchvision inception_v3(aux_logits=False, init_weights=False,
                           transform_input=True)  (x / 255 - mean) / std, which
      transform_input maps to (x / 255 - 0.5) / 0.5: the input the ported TF
      weights expect (inception_v3(weights=...) sets transform_input=True).

timm's inception_v3 has torchvision's names and arithmetic, so it is not repeated.
"""
import json
import pathlib
import sys

import numpy as np
import timm
import torch
import torchvision

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from golden_weights import golden_frames, golden_state  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parents[1] / 'data' / 'torch_goldens.npz'
FRAMES_SEED = 7
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def _models():
  tv_mobile = torchvision.models.mobilenet_v2()
  tv_mobile.classifier = torch.nn.Identity()
  tv_incep = torchvision.models.inception_v3(aux_logits=False, init_weights=False,
                                             transform_input=True)
  tv_incep.fc = torch.nn.Identity()
  timm_mobile = timm.create_model('mobilenetv2_100', pretrained=False, num_classes=0)
  # (name, model, weight seed, image side): 72 px has even (TF and PyTorch pad
  # differently) and odd sides; 139 px leaves Mixed_7b/c a 3x3 map, so every
  # kernel tap and the pools' borders count.
  return [('torchvision_mobilenet_v2', tv_mobile, 1, 72),
          ('timm_mobilenetv2_100', timm_mobile, 2, 72),
          ('torchvision_inception_v3', tv_incep, 3, 139)]


def main():
  meta, arrays = {}, {}
  for name, model, seed, size in _models():
    sd = model.state_dict()
    keys = [(k, list(v.shape), str(v.dtype).removeprefix('torch.')) for k, v in sd.items()]
    state = golden_state(seed, keys)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    model.eval()
    frames = golden_frames(FRAMES_SEED, 2, size)
    x = (frames.astype(np.float32) / 255 - MEAN) / STD
    with torch.no_grad():
      out = model(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
    meta[name] = {'keys': keys, 'seed': seed, 'size': size, 'frames_seed': FRAMES_SEED}
    arrays[name] = out.astype(np.float32)
    print(name, out.shape, float(np.abs(out).max()))
  meta['versions'] = {'torch': torch.__version__, 'torchvision': torchvision.__version__,
                      'timm': timm.__version__, 'numpy': np.__version__}
  np.savez_compressed(OUT, meta=np.array(json.dumps(meta)), **arrays)
  print(OUT, OUT.stat().st_size, 'bytes')


if __name__ == '__main__':
  main()
