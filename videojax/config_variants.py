"""Config variants named after the file, big_vision style: `configs/default.py:gru,t32`.

ml_collections' `config_flags.DEFINE_config_file` passes the text after ':' to the
file's `get_config(arg)`, which ends with `apply(config, arg)`. `arg` is a comma
list of items, applied left to right:

  <model name>      model.name, e.g. gru, meanpool, transformer (models.MODEL_NAMES)
  <backbone name>   extract.backbone, e.g. resnet50 (models.BACKBONE_NAMES)
  t<N>              data.num_frames = N, the sequence length, e.g. t32
  KEY=VALUE         KEY one of ALIASES (model, backbone, t) or a dotted config key;
                    VALUE parsed to the key's type, e.g. model.gru.hidden=(32,16)

  python scripts/train.py --config=configs/default.py:meanpool,t32 --workdir=...
  python scripts/train.py --config=configs/default.py:backbone=resnet50,t=32 ...

`--config.<key>=<value>` flags apply after the variants. The sweep parser of
videojax.tools.ablate reads its values with the same rules (`parse_value`).
"""
from __future__ import annotations

import ast
from typing import Any

import ml_collections

ALIASES = {"model": "model.name", "backbone": "extract.backbone", "t": "data.num_frames"}


class VariantError(ValueError):
  """A variant or value that names no config key or does not parse."""


def split_items(text: str) -> list[str]:
  """'8,16,(1,2)' -> ['8', '16', '(1,2)']: commas inside brackets stay."""
  out, depth, start = [], 0, 0
  for i, ch in enumerate(text):
    if ch in "([":
      depth += 1
    elif ch in ")]":
      depth -= 1
    elif ch == "," and depth == 0:
      out.append(text[start:i])
      start = i + 1
  out.append(text[start:])
  return [v.strip() for v in out]


def leaf(config: ml_collections.ConfigDict, key: str) -> Any:
  """The current value of dotted `key`; VariantError naming the keys accepted where it fails."""
  node, parts = config, key.split(".")
  for depth, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      where = ".".join(parts[:depth])
      keys = ", ".join(sorted(node.keys())) if isinstance(node, ml_collections.ConfigDict) else ""
      raise VariantError(f"unknown config key {key!r}; keys under {where or 'the config'!r}: "
                         f"{keys}")
    node = node[part]
  if isinstance(node, ml_collections.ConfigDict):
    raise VariantError(f"{key!r} is a group of keys, not a value; give one of "
                       f"{', '.join(f'{key}.{k}' for k in sorted(node.keys()))}")
  return node


def set_leaf(config: ml_collections.ConfigDict, key: str, value: Any) -> None:
  """config.<dotted key> = value."""
  *path, name = key.split(".")
  node = config
  for part in path:
    node = node[part]
  node[name] = value


def parse_value(current: Any, text: str, key: str) -> Any:
  """`text` parsed to the type of `current`, the config's value of `key`.

  bool: true/false (also yes/no, 1/0); int; float (ints accepted); str as given;
  tuple: a Python literal in brackets, e.g. (16, 8). A field that is None takes
  a Python literal, or the text as a string.

  Raises:
    VariantError: naming `key`, the bad value and the accepted form.
  """
  def bad(form: str, example: str) -> VariantError:
    return VariantError(f"{text!r} is not a valid value of {key} ({form}; e.g. "
                        f"{key}={example})")

  if isinstance(current, bool):
    low = text.lower()
    if low in ("true", "yes", "1"):
      return True
    if low in ("false", "no", "0"):
      return False
    raise bad("true or false", "true,false")
  if isinstance(current, int):
    try:
      return int(text)
    except ValueError:
      raise bad("an integer", "8,16,32") from None
  if isinstance(current, float):
    try:
      return float(text)
    except ValueError:
      raise bad("a number", "0.001,0.0003") from None
  if isinstance(current, str):
    if not text:
      raise bad("a non-empty string", "a,b")
    return text
  if isinstance(current, (tuple, list)):
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      raise bad("a tuple in brackets", "(16,8),(32,16)") from None
    if not isinstance(value, (tuple, list)):
      raise bad("a tuple in brackets", "(16,8),(32,16)")
    numeric = all(isinstance(v, (int, float)) for v in current)
    if current and numeric and not all(isinstance(v, (int, float)) for v in value):
      raise bad("a tuple of numbers", "(16,8),(32,16)")
    return tuple(value)
  if current is None:
    try:
      return ast.literal_eval(text)
    except (ValueError, SyntaxError):
      return text
  raise VariantError(f"config key {key} holds a {type(current).__name__}, which cannot be "
                     "set from text")


def _key_value(item: str) -> tuple[str, str]:
  """One item of `arg` as (dotted key, value text)."""
  from videojax import models  # Only here: loading a config without variants stays light.
  key, sep, text = item.partition("=")
  if sep:
    return ALIASES.get(key.strip(), key.strip()), text.strip()
  if item in models.MODEL_NAMES:
    return "model.name", item
  if item in models.BACKBONE_NAMES:
    return "extract.backbone", item
  if item[:1] == "t" and item[1:].isdigit():
    return "data.num_frames", item[1:]
  raise VariantError(
      f"unknown config variant {item!r}: give a model ({', '.join(models.MODEL_NAMES)}), a "
      f"backbone ({', '.join(models.BACKBONE_NAMES)}), t<frames> (e.g. t32) or KEY=VALUE "
      f"(KEY one of {', '.join(ALIASES)} or a dotted config key)")


def apply(config: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
  """`config` with the variants of `arg` (module docstring) set, in place; returns it.

  Raises:
    VariantError: an unknown variant or key, or a value that does not parse, naming it.
  """
  for item in split_items(arg) if arg else []:
    if not item:
      continue
    key, text = _key_value(item)
    try:
      set_leaf(config, key, parse_value(leaf(config, key), text, key))
    except VariantError as e:
      raise VariantError(f"config variant {item!r}: {e}") from None
  return config
