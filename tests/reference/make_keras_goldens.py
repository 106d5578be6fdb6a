"""Writes tests/data/keras_goldens.npz: features of keras.applications' MobileNetV2
and InceptionV3 with seeded random weights, and the layout of their weight files,
for test_mobilenet_inception.py (building and running the Keras models there
would cost 20 s of the suite's time).

  KERAS_BACKEND=tensorflow PYTHONPATH=. /work/main/.venv/bin/python tests/reference/make_keras_goldens.py

(generated with Keras 3.15.1, TensorFlow 2.21.0, h5py 3.14.0, on CPU).

For each model (weights=None, include_top=False, pooling='avg', a fixed
input_shape): every variable i of `model.weights` is set to
`golden_tensor(seed, i, path, shape, dtype, keras=True)` (random kernels and
BatchNorm statistics), the model is saved by Keras as `.weights.h5` (Keras 3)
and, for MobileNetV2, as a legacy `.h5` (model.save), and the file's skeleton is
recorded: its groups and datasets, which variable each dataset holds (found by
value) and the attributes a reader needs. The test writes the same files back
from the skeleton with h5py. Each file written here from a skeleton is loaded
into a fresh Keras model, which must reproduce the reference features exactly,
so the skeleton is a faithful copy of what Keras writes and reads.
"""
import json
import os
import pathlib
import sys
import tempfile

os.environ.setdefault('KERAS_BACKEND', 'tensorflow')
import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).parent))
from golden_weights import golden_frames, golden_tensor, write_keras_h5  # noqa: E402

OUT = pathlib.Path(__file__).resolve().parents[1] / 'data' / 'keras_goldens.npz'
FRAMES_SEED = 7
READER_ATTRS = ('layer_names', 'weight_names')


def _skeleton(path, values):
  """The groups, datasets (with the index of the value each holds) and reader attrs."""
  datasets, attrs = [], {}
  with h5py.File(path, 'r') as f:
    def visit(name, obj):
      keep = {k: [v.decode() if isinstance(v, bytes) else str(v) for v in obj.attrs[k]]
              for k in READER_ATTRS if k in obj.attrs}
      if keep:
        attrs[name] = keep
      if isinstance(obj, h5py.Dataset):
        data = obj[()]
        hits = [i for i, v in enumerate(values) if v.shape == data.shape and np.array_equal(v, data)]
        assert len(hits) == 1, (name, hits)
        datasets.append([name, hits[0]])
    if any(k in f.attrs for k in READER_ATTRS):
      attrs['/'] = {k: [v.decode() if isinstance(v, bytes) else str(v) for v in f.attrs[k]]
                    for k in READER_ATTRS if k in f.attrs}
    f.visititems(visit)
  return {'attrs': attrs, 'datasets': datasets}


def main():
  tmp = pathlib.Path(tempfile.mkdtemp())
  meta, arrays = {}, {}
  for name, build, seed, size, formats in (
      ('mobilenet_v2', keras.applications.MobileNetV2, 11, 72, ('weights.h5', 'h5')),
      ('inception_v3', keras.applications.InceptionV3, 12, 139, ('weights.h5',))):
    model = build(weights=None, include_top=False, pooling='avg', input_shape=(size, size, 3))
    variables = [[w.path, list(w.shape), str(np.dtype(w.dtype))] for w in model.weights]
    values = [golden_tensor(seed, i, *v, keras=True) for i, v in enumerate(variables)]
    model.set_weights(values)
    frames = golden_frames(FRAMES_SEED, 2, size)
    ref = model.predict(frames.astype(np.float32) / 127.5 - 1, verbose=0)
    skeletons = {}
    for fmt in formats:
      path = tmp / f'{name}.{fmt}'
      model.save_weights(path) if fmt == 'weights.h5' else model.save(path)
      skeletons[fmt] = _skeleton(path, values)
      copy = tmp / f'copy_{name}.{fmt}'
      write_keras_h5(copy, skeletons[fmt], seed, variables)
      fresh = build(weights=None, include_top=False, pooling='avg', input_shape=(size, size, 3))
      fresh.load_weights(copy)
      again = fresh.predict(frames.astype(np.float32) / 127.5 - 1, verbose=0)
      assert np.array_equal(again, ref), (name, fmt, np.abs(again - ref).max())
    meta[name] = {'variables': variables, 'seed': seed, 'size': size,
                  'frames_seed': FRAMES_SEED, 'files': skeletons}
    arrays[name] = ref.astype(np.float32)
    print(name, ref.shape, float(np.abs(ref).max()))
  meta['versions'] = {'keras': keras.__version__, 'tensorflow': tf.__version__,
                      'h5py': h5py.__version__}
  np.savez_compressed(OUT, meta=np.array(json.dumps(meta)), **arrays)
  print(OUT, OUT.stat().st_size, 'bytes')


if __name__ == '__main__':
  main()
