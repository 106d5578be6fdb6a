"""videojax.provenance: a workdir's config.json and environment.json."""
import json
import pathlib

import jax

from configs import default
from videojax import provenance


def test_config_json_reads_back_as_the_config_and_environment_says_what_ran(tmp_path):
  c = default.get_config()
  c.model.name = "bilstm"
  env = provenance.write_run_files(tmp_path, c, start_step=7)
  saved = provenance.load_config(tmp_path / "config.json")
  assert provenance.flat_config(saved) == provenance.flat_config(c)
  assert saved.model.name == "bilstm"
  assert json.loads((tmp_path / "environment.json").read_text()) == env
  assert env["start_step"] == 7 and env["versions"]["jax"] == jax.__version__
  assert env["device_count"] == jax.device_count()


def test_git_revision_is_none_outside_a_checkout(tmp_path):
  assert provenance.git_revision(tmp_path) is None
  here = provenance.git_revision(pathlib.Path(__file__).parent)
  assert here is None or (len(here["revision"]) == 40 and isinstance(here["dirty"], bool))
