"""Every script: a user error is one line on stderr and exit 1; --debug shows the traceback."""
import errno
import io
import os
import pathlib
import re
import subprocess
import sys

import pytest

from videojax import cli, platform
from videojax.checkpoint import CheckpointMismatch
from videojax.config_check import ConfigError
from videojax.data.features import FeatureError
from videojax.errors import UserError

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _raise(e):
  def main(argv):
    raise e
  return main


@pytest.mark.parametrize("error", [
    ConfigError("2 bad config value(s): config.a=1: x; config.b=2: y"),
    FeatureError("/f: the 'test' shards hold no clip"),
    CheckpointMismatch("/w was written by\nanother configuration"),
    FileNotFoundError("--workdir /w: no checkpoints/ directory"),
    OSError(errno.ENOSPC, "No space left on device", "/f/x.h5"),
    PermissionError(errno.EACCES, "Permission denied", "/f"),
    type("TrainingDiverged", (UserError, RuntimeError), {})("loss is nan at step 3"),
])
def test_user_errors_are_one_line_and_exit_1(error, capsys, monkeypatch):
  monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
  with pytest.raises(SystemExit) as exit_:
    cli.call_main(_raise(error), ["prog"])
  assert exit_.value.code == 1
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err
  assert " ".join(str(error).split()) in err or str(error.strerror) in err
  if isinstance(error, OSError) and error.filename:
    assert error.filename in err


@pytest.mark.parametrize("error", [RuntimeError("a bug"), KeyError("k"),
                                   OSError(errno.EIO, "I/O error"), TypeError("t")])
def test_bugs_keep_their_traceback(error, monkeypatch):
  monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
  with pytest.raises(type(error)):
    cli.call_main(_raise(error), ["prog"])


@pytest.mark.parametrize("value, shown", [("1", True), ("true", True), ("0", False), ("", False)])
def test_debug_env_shows_the_traceback(value, shown, monkeypatch):
  monkeypatch.setenv(cli.DEBUG_ENV, value)
  assert cli.debug_requested() is shown
  if shown:
    with pytest.raises(ConfigError):
      cli.call_main(_raise(ConfigError("bad")), ["prog"])


def test_line_buffer_flushes_each_line():
  raw = io.BytesIO()
  stream = io.TextIOWrapper(raw)
  cli.line_buffer(stream)
  stream.write("step 3: loss=0.5\n")
  assert raw.getvalue() == b"step 3: loss=0.5\n"
  cli.line_buffer(object())  # A replaced stdout without reconfigure is left alone.


def test_main_return_value_is_kept():
  assert cli.call_main(lambda argv: len(argv), ["prog", "a"]) == 2


# --------------------------------------------------------------------------- scripts

def _run(script: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
  # Without the variables that quiet TensorFlow (conftest sets one): the script must
  # keep its start-up banners off stderr itself (platform.quiet_start).
  unset = {cli.DEBUG_ENV, *platform.QUIET_ENV}
  env = {**{k: v for k, v in os.environ.items() if k not in unset}, "PYTHONPATH": str(ROOT),
         "JAX_PLATFORMS": "cpu", **(env or {})}
  return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args],
                        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)


def _one_error_line(out: subprocess.CompletedProcess, message: str) -> None:
  assert out.returncode == 1, out.stderr
  # Nothing else: no TensorFlow oneDNN banner, C++ log line ("I0000 ...") or absl's
  # InitializeLog warning (quiet start).
  lines = [l for l in out.stderr.splitlines() if l.strip()]
  assert "Traceback" not in out.stderr, out.stderr
  assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
  assert message in lines[0], lines[0]


def test_train_script_bad_config(tmp_path):
  work = tmp_path / "run"
  out = _run("train.py", f"--workdir={work}", f"--config.data.features_dir={tmp_path}",
             "--config.train.batch_size=0", "--config.model.name=grux")
  _one_error_line(out, "error: 2 bad config value(s): config.model.name='grux': one of gru")
  assert "config.train.batch_size=0: a positive multiple of the" in out.stderr
  assert not work.exists()


def test_debug_flag_shows_the_traceback(monkeypatch):
  """--debug (a script's flag, defined by cli.run) lets a user error raise with its traceback."""
  from absl import flags
  monkeypatch.delenv(cli.DEBUG_ENV, raising=False)
  fv = flags.FlagValues()
  flags.DEFINE_bool("debug", False, "", flag_values=fv)
  fv(["prog", "--debug"])
  monkeypatch.setattr(flags, "FLAGS", fv)
  assert cli.debug_requested()
  with pytest.raises(ConfigError):
    cli.call_main(_raise(ConfigError("bad")), ["prog"])


def test_extract_script_bad_config_writes_nothing(shared_data, tmp_path):
  features = tmp_path / "features"
  out = _run("extract_features.py", f"--config.data.root={shared_data / 'weizmann4'}",
             f"--config.data.features_dir={features}", "--config.data.num_frames=0",
             "--config.extract.backbone=foo", env={"VIDEOJAX_DEBUG": "0"})
  _one_error_line(out, "config.extract.backbone='foo': one of ")
  assert "config.data.num_frames=0: an integer >= 1" in out.stderr
  assert not features.exists()  # No spec.json to block a later valid run.


@pytest.mark.parametrize("script, args, message", [
    ("evaluate.py", ["--workdir={tmp}/none", "--out={tmp}/out"],
     "error: --workdir {tmp}/none: no checkpoints/ directory"),
    ("predict.py", ["--workdir={tmp}/none", "{tmp}/clip.avi"],
     "error: --workdir {tmp}/none: no checkpoints/ directory"),
    ("report.py", ["--workdir={tmp}/none"], "error: "),
    ("import_features.py", ["--src={tmp}/none", "--config.data.features_dir={tmp}/out"],
     "error: give a split source"),
])
def test_other_scripts_user_error_is_one_line(tmp_path, script, args, message):
  out = _run(script, *[a.format(tmp=tmp_path) for a in args])
  _one_error_line(out, message.format(tmp=tmp_path))
  assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "scripts").glob("*.py")))
def test_every_script_runs_through_cli(script):
  """Each script's main goes through cli.run (one-line user errors), its imports resolve.

  The subprocess tests above run a few scripts for real; ablate.py and demo.py (the
  slowest to start) are covered here and by their library tests (test_ablate.py's bad
  cell, test_config_check.py).
  """
  from tests.test_benchmarks import videojax_imports_resolve
  text = (ROOT / "scripts" / script).read_text()
  assert "videojax.cli" in videojax_imports_resolve(ROOT / "scripts" / script)
  assert re.search(r"cli\.run\(main[,)]", text) and "app.run(" not in text



def test_a_bad_config_variant_is_one_line_and_exit_1(capsys):
  from absl import flags
  from ml_collections import config_flags
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file("config", "configs/default.py", "", flag_values=fv)
  with pytest.raises(SystemExit) as e:
    cli.parse_flags(["prog", "--config=configs/default.py:foo"], fv)
  err = capsys.readouterr().err
  assert e.value.code == 1
  assert err.startswith("error: unknown config variant 'foo': give a model") and err.count("\n") == 1
  assert "Traceback" not in err


def test_renamed_flags_are_rewritten_with_a_warning(capsys):
  argv = ["prog", "--dir=/r", "--out_dir", "/o", "-dir=/s", "--top_k=3", "--", "--dir=x"]
  got = cli.rename_flags(argv, {"dir": "workdir", "out_dir": "out"})
  assert got == ["prog", "--workdir=/r", "--out", "/o", "--workdir=/s", "--top_k=3", "--",
                 "--dir=x"]
  assert capsys.readouterr().err.splitlines() == [
      "warning: --dir is deprecated; use --workdir",
      "warning: --out_dir is deprecated; use --out", "warning: --dir is deprecated; use --workdir"]
  # A flag that became a config key is refused, naming the key (ml_collections reads
  # config overrides from sys.argv, so they cannot be rewritten).
  with pytest.raises(UserError, match=r"^--num_frames is now --config.data.num_frames "
                     r"\(e.g. --config.data.num_frames=8\)$"):
    cli.rename_flags(["p", "--num_frames=8"], {"num_frames": "config.data.num_frames"})


def test_a_relative_config_is_found_from_any_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  default = str(ROOT / "configs" / "default.py")
  assert cli.config_file("default.py") == default
  assert cli.rename_flags(["p", "--config=configs/default.py:gru,t8", "--config",
                           "configs/default.py", "--config.data.root=configs/x"]) == [
      "p", f"--config={default}:gru,t8", "--config", default, "--config.data.root=configs/x"]
  (tmp_path / "configs").mkdir()
  (tmp_path / "configs" / "default.py").write_text("")  # The cwd's own file wins.
  assert cli.resolve_config("configs/default.py:t8") == "configs/default.py:t8"


def test_multihost_flags_are_listed_in_the_scripts_help():
  from absl import flags
  from videojax import distributed
  fv = flags.FlagValues()
  distributed.define_flags(fv)
  listed = {f.name for f in fv.get_key_flags_for_module(sys.argv[0])}
  assert set(distributed.FLAG_NAMES) <= listed
