"""Small file helpers: paths that may be URLs, and result files written whole or not at all.

`path(p)`: a local path stays a `pathlib.Path` (today's behaviour: atomic renames,
disk-space checks, the workdir lock); a URL such as `gs://bucket/feats` becomes an
`etils.epath.Path`, which reads and writes through TensorFlow's gfile or fsspec. An object
store writes an object whole when it is closed, so URLs need no temporary file.
"""
from __future__ import annotations

import fnmatch
import json
import os
import pathlib
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
  from etils import epath

# etils.epath is imported only for URLs: it takes a quarter of a second.
AnyPath = Union[pathlib.Path, "epath.Path"]


def is_url(p: str | os.PathLike) -> bool:
  """Whether `p` names a file on a remote file system (scheme://...), e.g. gs://b/x."""
  return "://" in os.fspath(p)


def path(p: str | os.PathLike) -> AnyPath:
  """`p` as a pathlib.Path if local, else as an etils.epath.Path (gs://, s3://, ...)."""
  if not is_url(p):
    return pathlib.Path(p)
  from etils import epath
  return p if isinstance(p, epath.Path) else epath.Path(p)


def absolute(p: str | os.PathLike) -> AnyPath:
  """`path(p)`, made absolute if local (a URL is absolute already)."""
  return path(p) if is_url(p) else pathlib.Path(p).absolute()


def matching(directory: AnyPath, pattern: str) -> list[AnyPath]:
  """The entries of `directory` whose name matches the glob `pattern`, sorted by name;
  [] if `directory` does not exist. (One listing: also right on object stores.)"""
  if not directory.is_dir():
    return []
  return sorted((p for p in directory.iterdir() if fnmatch.fnmatchcase(p.name, pattern)),
                key=lambda p: p.name)


def write_text_atomic(path_: str | os.PathLike, text: str) -> AnyPath:
  """Writes `text` to a temporary file beside `path_`, then renames it into place.

  A URL is written directly: the object store makes it visible whole, on close.
  """
  target = path(path_)
  target.parent.mkdir(parents=True, exist_ok=True)
  if is_url(target):
    target.write_text(text)
    return target
  tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
  try:
    tmp.write_text(text)
    os.replace(tmp, target)
  except BaseException:  # A full disk, say: leave no half-written temporary behind.
    tmp.unlink(missing_ok=True)
    raise
  return target


def write_json_atomic(path_: str | os.PathLike, obj: Any) -> AnyPath:
  return write_text_atomic(path_, json.dumps(obj, indent=2, sort_keys=True) + "\n")
