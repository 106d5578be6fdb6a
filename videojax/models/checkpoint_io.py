"""Read PyTorch `.pth` and `.safetensors` weight files into numpy, without torch.

A `.pth` written by `torch.save` is either a zip archive (torch >= 1.6: a
pickle `*/data.pkl` plus one raw file per storage under `*/data/`) or the
legacy stream (magic number, protocol, system info, the pickle, the list of
storage keys, then each storage as an int64 element count and its raw bytes).
Both hold a pickle whose tensors refer to storages by key. We unpickle with an
allow-list of globals, so a weights file cannot run code, and rebuild each
tensor as a numpy view of its storage.

`.safetensors` is read with the `safetensors` package's numpy API.
"""

import collections
import io
import os
import pathlib
import pickle
import shutil
import struct
import urllib.parse
import urllib.request
import zipfile

import ml_dtypes
import numpy as np


class WeightsError(ValueError):
  """A weights file that cannot be read, or does not fit the model."""


_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    'DoubleStorage': np.float64, 'FloatStorage': np.float32,
    'HalfStorage': np.float16, 'BFloat16Storage': ml_dtypes.bfloat16,
    'LongStorage': np.int64, 'IntStorage': np.int32,
    'ShortStorage': np.int16, 'CharStorage': np.int8,
    'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
}


class _StorageType:
  def __init__(self, name: str):
    self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _TensorRef:
  """A tensor to cut from storage `key` once the storages are read."""

  def __init__(self, storage, offset, size, stride):
    self.storage, self.offset = storage, offset
    self.size, self.stride = tuple(size), tuple(stride)

  def resolve(self, storages: dict[str, np.ndarray]) -> np.ndarray:
    key, dtype = self.storage
    flat = storages[key]
    if flat.dtype != dtype:
      flat = flat.view(dtype)
    itemsize = flat.dtype.itemsize
    needed = self.offset + 1 + sum(
        (n - 1) * s for n, s in zip(self.size, self.stride) if n > 0)
    if any(n == 0 for n in self.size):
      return np.zeros(self.size, flat.dtype)
    if needed > flat.size:
      raise WeightsError(f'tensor of shape {self.size} runs past the end of '
                         f'storage {key!r} ({flat.size} elements): truncated file?')
    view = np.lib.stride_tricks.as_strided(
        flat[self.offset:], self.size, [s * itemsize for s in self.stride])
    return np.array(view)  # Own the memory; contiguous.


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused):
  return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
  return data


_ALLOWED = {
    ('collections', 'OrderedDict'): collections.OrderedDict,
    ('torch._utils', '_rebuild_tensor_v2'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_tensor'): _rebuild_tensor_v2,
    ('torch._utils', '_rebuild_parameter'): _rebuild_parameter,
    ('torch.nn.parameter', 'Parameter'): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
  """Builds `_TensorRef`s; storages are named by key in `self.keys`."""

  def __init__(self, file, path):
    super().__init__(file)
    self.path = path
    self.keys: dict[str, np.dtype] = {}

  def find_class(self, module, name):
    if module == 'torch' and name in _STORAGE_DTYPES:
      return _StorageType(name)
    if (module, name) in _ALLOWED:
      return _ALLOWED[(module, name)]
    raise WeightsError(f'{self.path}: refusing to load {module}.{name}: only '
                       'plain state dicts of tensors are read')

  def persistent_load(self, pid):
    # ('storage', storage_type, key, location, numel[, view_metadata])
    if not (isinstance(pid, tuple) and pid and pid[0] == 'storage'):
      raise WeightsError(f'{self.path}: unknown persistent id {pid!r}')
    storage_type, key = pid[1], str(pid[2])
    dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else np.dtype(np.uint8)
    self.keys[key] = dtype
    return (key, dtype)


def _resolve(obj, storages):
  if isinstance(obj, _TensorRef):
    return obj.resolve(storages)
  if isinstance(obj, dict):
    return {k: _resolve(v, storages) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_resolve(v, storages) for v in obj)
  return obj


def _load_zip(path: pathlib.Path):
  with zipfile.ZipFile(path) as z:
    names = z.namelist()
    pkl = [n for n in names if n.endswith('data.pkl')]
    if len(pkl) != 1:
      raise WeightsError(f'{path}: a zip without exactly one data.pkl')
    prefix = pkl[0][:-len('data.pkl')]
    unpickler = _Unpickler(io.BytesIO(z.read(pkl[0])), path)
    obj = unpickler.load()
    storages = {}
    for key, dtype in unpickler.keys.items():
      try:
        raw = z.read(f'{prefix}data/{key}')
      except KeyError as e:
        raise WeightsError(f'{path}: storage {key!r} missing from archive') from e
      storages[key] = np.frombuffer(raw, dtype)
  return obj, storages


def _load_legacy(path: pathlib.Path):
  with open(path, 'rb') as f:
    # Every pickle in the stream goes through the allow-list: a plain
    # pickle.load of the header would run whatever the file says.
    try:
      if _Unpickler(f, path).load() != _LEGACY_MAGIC:
        raise WeightsError(f'{path}: not a PyTorch checkpoint (bad magic number)')
      _Unpickler(f, path).load()  # protocol version
      sys_info = _Unpickler(f, path).load()
      if not sys_info.get('little_endian', True):
        raise WeightsError(f'{path}: big-endian checkpoints are not supported')
      unpickler = _Unpickler(f, path)
      obj = unpickler.load()
      keys = _Unpickler(f, path).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError,
            TypeError) as e:
      if isinstance(e, WeightsError):
        raise
      raise WeightsError(f'{path}: not a readable PyTorch checkpoint ({e})') from e
    storages = {}
    for key in keys:
      dtype = unpickler.keys[key]
      head = f.read(8)
      if len(head) != 8:
        raise WeightsError(f'{path}: truncated before storage {key!r}')
      (numel,) = struct.unpack('<q', head)
      raw = f.read(numel * dtype.itemsize)
      if len(raw) != numel * dtype.itemsize:
        raise WeightsError(f'{path}: truncated in storage {key!r} '
                           f'({len(raw)} of {numel * dtype.itemsize} bytes)')
      storages[key] = np.frombuffer(raw, dtype)
  return obj, storages


def load_state_dict(path: str | pathlib.Path) -> dict[str, np.ndarray]:
  """Tensors of a `.pth` / `.pt` / `.bin` (torch.save) or `.safetensors` file.

  A checkpoint that wraps its weights (`{'state_dict': ...}`, `{'model': ...}`)
  is unwrapped; a `module.` prefix (DataParallel) is dropped.

  Returns:
    name -> numpy array, in the file's layout (PyTorch's OIHW for convs).

  Raises:
    FileNotFoundError: no such file.
    WeightsError: not a weights file, truncated, or holding objects other
      than tensors.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f'{path}: no such weights file')
  if path.suffix == '.safetensors':
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    try:
      state = load_file(str(path))
    except Exception as e:  # The package raises its own error types.
      raise WeightsError(f'{path}: not a readable safetensors file ({e})') from e
  else:
    if zipfile.is_zipfile(path):
      try:
        obj, storages = _load_zip(path)
      except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError,
              AttributeError, ValueError, TypeError) as e:
        if isinstance(e, WeightsError):
          raise
        raise WeightsError(f'{path}: damaged zip checkpoint ({e})') from e
    else:
      with open(path, 'rb') as f:
        if f.read(4) == b'PK\x03\x04':
          raise WeightsError(f'{path}: a zip checkpoint without its central '
                             'directory: truncated download?')
      obj, storages = _load_legacy(path)
    state = _resolve(obj, storages)
  for wrapper in ('state_dict', 'model', 'model_state_dict'):
    if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
      state = state[wrapper]
  if not isinstance(state, dict) or not all(
      isinstance(v, np.ndarray) for v in state.values()):
    raise WeightsError(f'{path}: expected a dict of tensors')
  return {k.removeprefix('module.'): v for k, v in state.items()}


def _some(names: list[str], limit: int = 5) -> str:
  more = f' (and {len(names) - limit} more)' if len(names) > limit else ''
  return ', '.join(names[:limit]) + more


def fill_variables(abstract: dict, tensors: dict[tuple[str, ...], tuple[str, np.ndarray]],
                   unexpected: list[str], missing_name) -> dict:
  """Variables shaped like `abstract` from tensors a loader already renamed and transposed.

  Args:
    abstract: the module's variables as `jax.eval_shape(module.init, ...)` gives
      them; each leaf at (collection, *path).
    tensors: (collection, *path) -> (the tensor's name in the file, array in the
      module's layout).
    unexpected: names of file tensors the module has no place for.
    missing_name: (collection, *path) -> how the file would name that variable.

  Returns:
    Nested dict of float32 numpy arrays, the structure of `abstract`.

  Raises:
    WeightsError: naming the unexpected, missing and misshapen tensors together.
  """
  from flax import traverse_util  # pylint: disable=g-import-not-at-top
  flat, missing, bad = {}, [], []
  for path, spec in traverse_util.flatten_dict(abstract).items():
    if path not in tensors:
      missing.append(missing_name(path))
      continue
    name, value = tensors[path]
    if tuple(value.shape) != tuple(spec.shape):
      bad.append(f'{name} has shape {tuple(value.shape)}, the model needs {tuple(spec.shape)} '
                 '(in Flax layout: kernels f32[kh, kw, i, o])')
      continue
    flat[path] = np.asarray(value, spec.dtype)
  problems = []
  if unexpected:
    problems.append(f'{len(unexpected)} tensor(s) the model does not have: '
                    f'{_some(sorted(unexpected))}')
  if missing:
    problems.append(f'{len(missing)} tensor(s) missing: {_some(missing)}')
  if bad:
    problems.append(f'{len(bad)} tensor(s) of the wrong shape: {_some(bad)}')
  if problems:
    raise WeightsError('; '.join(problems))
  return traverse_util.unflatten_dict(flat)


def cache_dir() -> pathlib.Path:
  """Where downloaded weights go: $VIDEOJAX_CACHE or ~/.cache/videojax."""
  return pathlib.Path(os.environ.get('VIDEOJAX_CACHE', '~/.cache/videojax')).expanduser()


def fetch(url: str) -> pathlib.Path:
  """The local copy of a weights file at `url`, downloaded on first use.

  The copy is `cache_dir() / 'weights' / <file name>`; it is written under a
  temporary name and renamed, so an interrupted download is never taken for
  the file. Nothing calls this unless a config names a URL.

  Raises:
    WeightsError: the download failed (the message names the URL).
  """
  name = pathlib.PurePosixPath(urllib.parse.urlparse(url).path).name
  if not name:
    raise WeightsError(f'{url}: the URL names no file')
  path = cache_dir() / 'weights' / name
  if path.is_file():
    return path
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f'.{name}.tmp-{os.getpid()}')
  try:
    with urllib.request.urlopen(url, timeout=60) as response, open(tmp, 'wb') as f:
      shutil.copyfileobj(response, f)
    os.replace(tmp, path)
  except OSError as e:
    tmp.unlink(missing_ok=True)
    raise WeightsError(f'{url}: download failed ({e})') from e
  return path
