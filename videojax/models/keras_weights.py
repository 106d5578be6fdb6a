"""Read Keras weight files (`.h5`, `.weights.h5`, `.keras`) with h5py, without Keras.

Keras names a model's layers in its files in two ways, and neither names them
by architecture: the legacy HDF5 format (Keras 2 `save_weights('x.h5')`, the
`keras.applications` downloads, Keras 3 `model.save('x.h5')`) stores the layers
with weights in the model's layer order (root attribute `layer_names`, under
`model_weights/` for a whole model), each under its `layer.name`, which for
unnamed layers is a per-session counter (`conv2d_57`); Keras 3's
`.weights.h5` (also inside a `.keras` zip) stores them as
`layers/<class>[_<k>]/vars/<i>`, k counting the layers of that class in the
model's layer order. Keras itself loads both by position. So do we: this module
lists each kind of layer (Conv2D, DepthwiseConv2D, BatchNormalization) in the
model's layer order, and a backbone maps the i-th of a kind to its own i-th.
"""

import io
import pathlib
import re
import zipfile

import numpy as np

from videojax.models import checkpoint_io
from videojax.models.checkpoint_io import WeightsError

KINDS = ('conv', 'depthwise', 'bn')
SUFFIXES = ('.h5', '.hdf5', '.keras')
# Keras 3 `.weights.h5` group names: snake-case class name, then _k for the k-th.
_CLASS_KINDS = {'conv2d': 'conv', 'depthwise_conv2d': 'depthwise',
                'batch_normalization': 'bn', 'dense': 'dense'}
_V3_NAME = re.compile(r'(conv2d|depthwise_conv2d|batch_normalization|dense)(?:_(\d+))?')
# Keras 3 stores a layer's variables by position; these are the orders its
# layers create them in (BatchNormalization without `scale` has no gamma).
_V3_VARS = {('conv', 1): ('kernel',), ('conv', 2): ('kernel', 'bias'),
            ('depthwise', 1): ('depthwise_kernel',),
            ('depthwise', 2): ('depthwise_kernel', 'bias'),
            ('bn', 4): ('gamma', 'beta', 'moving_mean', 'moving_variance'),
            ('bn', 3): ('beta', 'moving_mean', 'moving_variance'),
            ('dense', 2): ('kernel', 'bias')}

Layer = tuple[str, dict[str, np.ndarray]]


def is_keras_file(path: str | pathlib.Path) -> bool:
  """Whether `path` names a Keras weights file (by its extension)."""
  return pathlib.Path(path).suffix.lower() in SUFFIXES


def _legacy_layers(group) -> dict[str, list[Layer]]:
  out = {k: [] for k in KINDS}
  for name in group.attrs['layer_names']:
    name = name.decode() if isinstance(name, bytes) else str(name)
    layer = group[name]
    weight_names = [w.decode() if isinstance(w, bytes) else str(w)
                    for w in layer.attrs.get('weight_names', [])]
    if not weight_names:
      continue
    arrays = {w.rsplit('/', 1)[-1].removesuffix(':0'): np.asarray(layer[w])
              for w in weight_names}
    if 'kernel' in arrays and arrays['kernel'].ndim == 4 and arrays['kernel'].shape[3] == 1:
      # Keras 3 names a DepthwiseConv2D's kernel `kernel`, Keras 2 `depthwise_kernel`;
      # f32[k, k, c, 1] tells it (no Keras application has a 1-channel Conv2D).
      arrays['depthwise_kernel'] = arrays.pop('kernel')
    if 'depthwise_kernel' in arrays:
      out['depthwise'].append((name, arrays))
    elif 'moving_mean' in arrays:
      out['bn'].append((name, arrays))
    elif 'kernel' in arrays and arrays['kernel'].ndim == 4:
      out['conv'].append((name, arrays))
    elif 'kernel' in arrays and arrays['kernel'].ndim == 2:
      out.setdefault('dense', []).append((name, arrays))
    else:
      out.setdefault('other', []).append((name, arrays))
  return out


def _v3_layers(group) -> dict[str, list[Layer]]:
  found = {k: [] for k in KINDS}
  for name, layer in group.items():
    if 'vars' not in layer or not len(layer['vars']):
      continue
    arrays = [np.asarray(layer['vars'][str(i)]) for i in range(len(layer['vars']))]
    m = _V3_NAME.fullmatch(name)
    if m is None:
      found.setdefault('other', []).append((0, name, {'?': a for a in arrays}))
      continue
    kind = _CLASS_KINDS[m[1]]
    roles = _V3_VARS.get((kind, len(arrays)))
    if roles is None:
      raise WeightsError(f'layer {name} holds {len(arrays)} variables; a {m[1]} '
                         'layer of a Keras application holds '
                         f'{[n for (k, n) in _V3_VARS if k == kind]}')
    found[kind].append((int(m[2] or 0), name, dict(zip(roles, arrays))))
  return {k: [(name, arrays) for _, name, arrays in sorted(v, key=lambda t: t[0])]
          for k, v in found.items()}


def read_layers(path: str | pathlib.Path) -> dict[str, list[Layer]]:
  """The weighted layers of a Keras file, per kind, in the model's layer order.

  Returns:
    {'conv': [...], 'depthwise': [...], 'bn': [...]} (and 'dense' for a
    classifier, 'other' for layers of other kinds), each a list of (name in the file, {weight: array}), weights
    named as Keras names them: kernel f32[kh, kw, i, o], depthwise_kernel
    f32[kh, kw, c, 1], gamma, beta, moving_mean, moving_variance f32[c], bias.

  Raises:
    FileNotFoundError: no such file.
    WeightsError: not a Keras weights file.
  """
  import h5py  # pylint: disable=g-import-not-at-top  (a dependency of Keras; only here)
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f'{path}: no such weights file')
  try:
    if zipfile.is_zipfile(path):  # .keras: a zip holding model.weights.h5.
      with zipfile.ZipFile(path) as z:
        if 'model.weights.h5' not in z.namelist():
          raise WeightsError(f'{path}: a zip without model.weights.h5, not a .keras file')
        source = io.BytesIO(z.read('model.weights.h5'))
    else:
      source = path
    with h5py.File(source, 'r') as f:
      group = f['model_weights'] if 'model_weights' in f else f
      if 'layer_names' in group.attrs:
        return _legacy_layers(group)
      if 'layers' in group:
        return _v3_layers(group['layers'])
      raise WeightsError(f'{path}: an HDF5 file without Keras layers (no layer_names '
                         'attribute, no layers/ group)')
  except OSError as e:
    raise WeightsError(f'{path}: not a readable HDF5 / .keras file ({e})') from e


def match_in_order(layers: dict[str, list[Layer]], wanted: dict[str, list[str]]
                   ) -> tuple[dict[str, Layer], list[str]]:
  """Pairs the i-th file layer of each kind with the i-th wanted name.

  Args:
    layers: from `read_layers`.
    wanted: kind -> the model's names for its layers of that kind, in Keras's
      layer order.

  Returns:
    (model name -> (file name, weights), problems): problems name the file
    layers the model has no place for and the model layers the file lacks.
    Dense layers (an ImageNet classifier, include_top=True) are ignored.
  """
  matched, problems = {}, []
  for kind in KINDS:
    have, want = layers.get(kind, []), wanted.get(kind, [])
    matched.update(zip(want, have))
    if len(have) > len(want):
      extra = [name for name, _ in have[len(want):]]
      problems.append(f'{len(extra)} {kind} layer(s) the model does not have: '
                      f'{", ".join(extra[:5])}')
    elif len(want) > len(have):
      missing = want[len(have):]
      problems.append(f'{len(missing)} {kind} layer(s) missing from the file: '
                      f'{", ".join(missing[:5])}')
  if other := layers.get('other'):
    problems.append(f'{len(other)} layer(s) of another kind: '
                    f'{", ".join(name for name, _ in other[:5])} (a classifier? use '
                    'include_top=False weights)')
  return matched, problems


def load(path, module, from_keras, from_torch) -> dict:
  """Variables for `module` from a Keras file (`from_keras(read_layers(path), module)`)
  or a torchvision / timm state dict (`from_torch(state, module)`), by the file's name.

  Raises:
    FileNotFoundError: no such file.
    WeightsError: a file that does not fit; the message names the file first.
  """
  try:
    if is_keras_file(path):
      return from_keras(read_layers(path), module)
    return from_torch(checkpoint_io.load_state_dict(path), module)
  except WeightsError as e:
    if str(e).startswith(str(path)):
      raise
    raise WeightsError(f'{path}: {e}') from None


def conv_bn_tensors(matched: dict, var_offset: float = 0.0) -> dict:
  """`checkpoint_io.fill_variables` tensors from `match_in_order`'s {our path: (layer, weights)}.

  A conv layer gives params/<path>/kernel (a depthwise kernel [k, k, c, 1] turned to Flax's
  [k, k, 1, c]); a BatchNorm layer params scale and bias (1 and 0 where Keras has no gamma /
  beta) and batch_stats mean and var, var + `var_offset` (to fold another BN epsilon in).
  """
  tensors = {}
  for ours, (name, w) in matched.items():
    path = tuple(ours.split('/'))
    if 'depthwise_kernel' in w:
      tensors[('params', *path, 'kernel')] = (name, w['depthwise_kernel'].transpose(0, 1, 3, 2))
    elif 'kernel' in w:
      tensors[('params', *path, 'kernel')] = (name, w['kernel'])
    else:
      c = w['moving_mean'].shape
      tensors[('params', *path, 'scale')] = (name, w.get('gamma', np.ones(c, np.float32)))
      tensors[('params', *path, 'bias')] = (name, w.get('beta', np.zeros(c, np.float32)))
      tensors[('batch_stats', *path, 'mean')] = (name, w['moving_mean'])
      var = w['moving_variance']
      tensors[('batch_stats', *path, 'var')] = (
          name, var + np.float32(var_offset) if var_offset else var)
  return tensors
