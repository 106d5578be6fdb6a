"""Writes tests/data/keras_goldens_efficientnet.npz: features of keras.applications'
EfficientNetB0 and EfficientNetV2S with seeded random weights, and the skeleton of
their weight files in Keras 2's `.h5` layout, for test_efficientnet_b0_v2.py
(building and running the two Keras models there cost ~40 s of the suite's time).

  KERAS_BACKEND=tensorflow PYTHONPATH=. /work/main/.venv/bin/python tests/reference/make_keras_goldens_efficientnet.py

(generated with Keras 3.15.1, TensorFlow 2.21.0, h5py 3.14.0, on CPU).

For each model (weights=None, include_top=False, pooling='avg', 64 px input):
every variable i of `model.weights` is set to `golden_tensor(seed, i, path, shape,
dtype, keras=True, gain=gain)`, kernels N(0, gain / fan_in), except B0's
Normalization layer, whose mean / variance / count are fixed (below). The gain
(B0 2.0, V2-S 1.2) keeps the features O(1) and yet dependent on the frames:
swish has slope 1/2 at 0, so with gain 1 B0's signal shrinks block after block
and its features are the BatchNorm biases' (other frames change them by 5e-7),
while at 2.2 (V2-S: 1.6) they grow to 20-1000. At these gains other frames change
the features by 0.05-0.07 (B0, both cases) and 0.06 (V2-S), features up to 0.7 and
2.6. B0's Normalization:

- 'imagenet': what Keras' ImageNet file holds, the std as the variance
  (tensorflow#49930). keras.applications.EfficientNetB0(weights='imagenet') then
  adds Rescaling(1 / sqrt(std)), which weights=None does not, so Keras is fed the
  input on which its Normalization gives (x / 255 - mean) / std, the scaling the
  ImageNet weights expect (and our loader writes for that file).
- 'plain': another mean and variance, Keras fed the frames as they are:
  (x / 255 - mean) / sqrt(variance).

The skeleton is Keras 2's save_weights layout, the one of keras.applications'
downloads (efficientnetb0_notop.h5, efficientnetv2-s_notop.h5): the root's
layer_names (every layer, in model order), a group per layer with weight_names
'stem_conv/kernel:0' (DepthwiseConv2D: 'depthwise_kernel:0'; each layer's
trainable then non-trainable weights, as Keras orders them) and the datasets
under it. Each file is written from its skeleton and loaded into a fresh Keras
model (Keras' order-based legacy loader), which must reproduce the reference
features exactly. Keras 3's own files (`.weights.h5`, `.keras`) need Keras to read
them (their groups go by position, not by name), so the test does not cover them;
it checks the step after, `variables_from_keras_model`, on a stand-in model built
from the recorded layer and variable names.
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

OUT = pathlib.Path(__file__).resolve().parents[1] / 'data' / 'keras_goldens_efficientnet.npz'
SIZE = 64
FRAMES_SEED = 2
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]
NORMALIZATIONS = {
    'imagenet': (IMAGENET_MEAN, IMAGENET_STD),
    'plain': ([0.5, 0.4, 0.45], [0.09, 0.04, 0.0625]),  # std 0.3, 0.2, 0.25.
}


def _keras2_skeleton(model, index):
  """Keras 2 save_weights' layout of `model`; `index`: variable path -> model.weights index."""
  attrs = {'/': {'layer_names': [layer.name for layer in model.layers]}}
  datasets = []
  for layer in model.layers:
    names = []
    for v in layer.trainable_weights + layer.non_trainable_weights:
      var = 'depthwise_kernel' if (type(layer).__name__ == 'DepthwiseConv2D'
                                   and v.name == 'kernel') else v.name
      names.append(f'{layer.name}/{var}:0')
      datasets.append([f'{layer.name}/{names[-1]}', index[v.path]])
    attrs[layer.name] = {'weight_names': names}
  return {'attrs': attrs, 'datasets': datasets}


def _finalize(model):
  """Makes set_weights reach B0's Normalization: it computes with constants taken from
  its variables at build time (finalize_state), which load_weights refreshes and
  set_weights does not."""
  for layer in model.layers:
    if type(layer).__name__ == 'Normalization':
      layer.finalize_state()
  model.predict_function = None  # Traced with the old constants.


def _keras_input(frames, normalization):
  x = frames.astype(np.float64)
  if normalization == 'imagenet':
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    x = 255 * (mean + (x / 255 - mean) / np.sqrt(std))
  return x.astype(np.float32)


def main():
  tmp = pathlib.Path(tempfile.mkdtemp())
  frames = golden_frames(FRAMES_SEED, 2, SIZE)
  meta, arrays = {}, {}
  # gain: kernels N(0, gain / fan_in); see the docstring.
  for arch, build, seed, gain, cases in (
      ('b0', keras.applications.EfficientNetB0, 21, 2.0, tuple(NORMALIZATIONS)),
      ('v2_s', keras.applications.EfficientNetV2S, 22, 1.2, (None,))):
    def make():
      return build(weights=None, include_top=False, pooling='avg', input_shape=(SIZE, SIZE, 3))
    model = make()
    variables = [[w.path, list(w.shape), str(np.dtype(w.dtype))] for w in model.weights]
    index = {path: i for i, (path, _, _) in enumerate(variables)}
    assert len(index) == len(variables)
    # The names Keras 3 gives a built model's weights (variables_from_keras_model reads
    # layer.name / v.name): the stand-in model of the test rebuilds them from the paths.
    layer_of = {}
    for layer in model.layers:
      for v in layer.weights:
        assert v.path == f'{layer.name}/{v.name}', (v.path, layer.name, v.name)
        layer_of[v.path] = layer.name
    assert sorted(layer_of) == sorted(index)
    skeleton = _keras2_skeleton(model, index)
    meta[arch] = {'variables': variables, 'seed': seed, 'gain': gain, 'size': SIZE,
                  'frames_seed': FRAMES_SEED, 'files': {'keras2.h5': skeleton},
                  'normalizations': {}}
    for case in cases:
      fixed = {}
      if case is not None:
        mean, var = NORMALIZATIONS[case]
        fixed = {'normalization/mean': mean, 'normalization/variance': var,
                 'normalization/count': 0}
        assert set(fixed) <= set(index), sorted(p for p in index if 'norm' in p)
        meta[arch]['normalizations'][case] = fixed
      values = [np.asarray(fixed[p], d).reshape(s) if p in fixed
                else golden_tensor(seed, i, p, tuple(s), d, True, gain)
                for i, (p, s, d) in enumerate(variables)]
      model.set_weights(values)
      _finalize(model)
      ref = model.predict(_keras_input(frames, case), verbose=0)
      # The features must depend on the frames: with too small a gain, swish (slope 1/2
      # at 0) shrinks the signal block after block and the features are the BN biases'.
      other = model.predict(_keras_input(golden_frames(FRAMES_SEED + 1, 2, SIZE), case),
                            verbose=0)
      assert np.abs(other - ref).max() > 100 * 1e-4, np.abs(other - ref).max()  # Test's atol.
      path = tmp / f'{arch}_{case}.h5'
      write_keras_h5(path, skeleton, seed, variables, gain, fixed)
      fresh = make()
      fresh.load_weights(path)  # Calls Normalization.finalize_state itself.
      again = fresh.predict(_keras_input(frames, case), verbose=0)
      assert np.array_equal(again, ref), (arch, case, np.abs(again - ref).max())
      key = arch if case is None else f'{arch}_{case}'
      arrays[key] = ref.astype(np.float32)
      print(key, ref.shape, 'max |features|', float(np.abs(ref).max()),
            'max change with other frames', float(np.abs(other - ref).max()))
  meta['versions'] = {'keras': keras.__version__, 'tensorflow': tf.__version__,
                      'h5py': h5py.__version__}
  np.savez_compressed(OUT, meta=np.array(json.dumps(meta)), **arrays)
  print(OUT, OUT.stat().st_size, 'bytes')


if __name__ == '__main__':
  main()
