"""Small file helpers: every result file is written whole or not at all."""
from __future__ import annotations

import json
import os
import pathlib
from typing import Any


def write_text_atomic(path: str | os.PathLike, text: str) -> pathlib.Path:
  """Writes `text` to a temporary file beside `path`, then renames it into place."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
  try:
    tmp.write_text(text)
    os.replace(tmp, path)
  except BaseException:  # A full disk, say: leave no half-written temporary behind.
    tmp.unlink(missing_ok=True)
    raise
  return path


def write_json_atomic(path: str | os.PathLike, obj: Any) -> pathlib.Path:
  return write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
