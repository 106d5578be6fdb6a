"""videojax.platform: tuning only when called; importing videojax changes nothing."""
import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from videojax import distributed, platform

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _python(code: str, **env: str) -> str:
  """Runs `code` in a fresh interpreter on this checkout; its stdout."""
  clean = {k: v for k, v in os.environ.items() if k != "JAX_NUM_CPU_DEVICES"}
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={**clean, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu", **env},
                       timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  return out.stdout


def test_no_file_re_executes_the_process():
  for path in [*(ROOT / "videojax").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]:
    assert not re.search(r"os\.exec[lv]", path.read_text()), path


# Imports every module of the package, noting what changed around it. TensorFlow's
# set_visible_devices and JAX's register_lowering are wrapped first, to see any call.
_IMPORT_ALL = """
import json, os, pkgutil, importlib
import jax, tensorflow as tf
from absl import flags
from jax._src.interpreters import mlir
from jax.extend.random import threefry2x32_p

calls = []
tf.config.set_visible_devices = lambda *a, **k: calls.append(("set_visible_devices", repr(a)))
register = mlir.register_lowering
def recording(prim, *a, **k):
  if prim is threefry2x32_p:
    calls.append(("register_lowering", "threefry2x32"))
  return register(prim, *a, **k)
mlir.register_lowering = recording

environ = dict(os.environ)
config = {k: repr(v) for k, v in jax.config.values.items()}
cpu_rule = mlir._platform_specific_lowerings["cpu"].get(threefry2x32_p)
import videojax
names = sorted(m.name for m in pkgutil.walk_packages(videojax.__path__, "videojax."))
for name in names:
  importlib.import_module(name)
print(json.dumps({
    "modules": names,
    "environ": sorted(k for k in {*environ, *os.environ} if environ.get(k) != os.environ.get(k)),
    "config": sorted(k for k, v in jax.config.values.items() if config.get(k) != repr(v)),
    "threefry_rule_changed": mlir._platform_specific_lowerings["cpu"].get(threefry2x32_p)
                             is not cpu_rule,
    "calls": calls,
    "flag_modules": sorted(m for m in flags.FLAGS.flags_by_module_dict()
                           if m.startswith("videojax")),
}))
"""


@pytest.fixture(scope="module")
def imported():
  return json.loads(_python(_IMPORT_ALL).splitlines()[-1])


def test_importing_every_module_changes_no_environment_variable_or_jax_setting(imported):
  assert {"videojax.train", "videojax.writers", "videojax.data.pipeline",
          "videojax.distributed", "videojax.platform"} <= set(imported["modules"])
  assert imported["environ"] == []
  assert imported["config"] == []


def test_importing_every_module_hides_no_device_and_patches_no_lowering(imported):
  assert imported["calls"] == []
  assert imported["threefry_rule_changed"] is False


def test_importing_every_module_defines_no_flag(imported):
  assert imported["flag_modules"] == []


def test_distributed_flags_are_defined_only_when_asked():
  from absl import flags
  values = flags.FlagValues()
  with pytest.raises(ValueError, match="define_flags"):
    distributed.initialize_from_flags(values)
  distributed.define_flags(values)
  distributed.define_flags(values)  # Again: nothing changes, no duplicate-flag error.
  values(["prog", "--num_processes=1", "--process_id=0", "--coordinator_address=h:1"])
  assert set(distributed.FLAG_NAMES) <= set(values)
  assert distributed.initialize_from_flags(values) is False  # One process: nothing to join.


_SPLIT = """
import jax
from videojax import platform
before = jax.config.jax_num_cpu_devices
asked = platform.split_cpu_into_devices({max_devices})
print(before, asked, len(jax.devices()))
"""


@pytest.mark.parametrize("env, max_devices, want", [
    ({}, 8, 1 << ((min(os.cpu_count() or 1, 8)).bit_length() - 1)),  # one per core, a power of 2
    ({}, 1, 1),
    ({"JAX_NUM_CPU_DEVICES": "3"}, 8, 3),  # the user's own setting wins
])
def test_split_cpu_into_devices_only_when_called(env, max_devices, want):
  before, asked, devices = map(int, _python(_SPLIT.format(max_devices=max_devices),
                                            **env).split())
  assert before == int(env.get("JAX_NUM_CPU_DEVICES", -1))  # Importing set nothing.
  assert asked == devices == want


def test_tensorflow_gpus_are_hidden_where_tf_data_and_tensorboard_start(monkeypatch, tmp_path):
  import numpy as np
  from videojax import writers
  from videojax.data import pipeline
  from videojax.data.features import FeatureSet

  calls = []
  monkeypatch.setattr(platform, "keep_tensorflow_off_accelerators", lambda: calls.append(1))
  fs = FeatureSet(features=np.zeros((4, 3, 2), np.float16), lengths=np.full(4, 3),
                  labels=np.zeros(4, np.int32), video_ids=list("abcd"), class_names=["x"],
                  spec={}, failed=[])
  next(iter(pipeline.eval_batches(fs, 2)))
  assert calls == [1]
  writers.MetricWriter(tmp_path, echo=lambda *_: None).close()
  assert calls == [1, 1]


def test_hiding_tensorflow_gpus_is_harmless_without_gpus_even_after_tensorflow_started():
  out = _python("import tensorflow as tf\n"
                "from videojax import platform\n"
                "platform.keep_tensorflow_off_accelerators()\n"
                "tf.constant(1.0) + 1\n"  # TensorFlow's devices are initialised now.
                "platform.keep_tensorflow_off_accelerators()\n"
                "print([d.device_type for d in tf.config.get_visible_devices()])\n")
  assert "GPU" not in out and "CPU" in out



def test_models_have_no_platform_specific_path():
  """CPU tricks were deleted (BENCHMARKS.md): no model branches on the backend or
  replaces autodiff, so every platform runs the same standard code."""
  pattern = re.compile(r"default_backend|custom_vjp|custom_jvp|videojax\.platform|import platform")
  assert pattern.search("impl = 'shifted' if jax.default_backend() == 'cpu' else 'conv'")
  files = sorted((ROOT / "videojax" / "models").glob("*.py"))
  assert len(files) > 5
  assert not [f.name for f in files if pattern.search(f.read_text())]


@pytest.mark.parametrize("argv, asked", [
    (["train.py"], False), (["train.py", "--verbosity=-1"], False),
    (["train.py", "--verbosity=0"], True), (["train.py", "-v", "1"], True),
    (["train.py", "--v=2", "--workdir=w"], True), (["train.py", "--verbosity", "-1"], False),
    (["train.py", "--verbosity=info"], True), (["train.py", "--verbose=1"], False)])
def test_verbosity_asked_reads_absl_verbosity(argv, asked):
  assert platform.verbosity_asked(argv) is asked


def test_quiet_start_sets_what_is_unset_unless_verbosity_asks(monkeypatch):
  for name in platform.QUIET_ENV:
    monkeypatch.delenv(name, raising=False)
  monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")  # The user's own setting wins.
  assert not platform.quiet_start(["x", "--verbosity=0"])
  assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
  assert platform.quiet_start(["x"])
  assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
  assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0" and os.environ["TPU_STDERR_LOG_LEVEL"] == "2"


def test_backbone_compiler_options_follow_the_switch_and_move_convolutions_off_ynnpack(
    monkeypatch):
  """On the CPU, extraction's backbone compiles with XLA's own convolutions (not YNNPACK's
  fusions): the option is known to this jaxlib, changes the program, not the numbers."""
  monkeypatch.delenv("VIDEOJAX_CPU_KERNELS", raising=False)
  opts = platform.backbone_compiler_options()
  assert opts == (platform.CPU_BACKBONE_COMPILER_OPTIONS if jax.default_backend() == "cpu"
                  else {})
  monkeypatch.setenv("VIDEOJAX_CPU_KERNELS", "0")
  assert platform.backbone_compiler_options() == {}
  if not opts:
    return
  rng = np.random.default_rng(0)
  # A ResNet stage's 3x3 convolution (YNNPACK takes convolutions of this size, not tiny ones).
  x = rng.normal(size=(4, 56, 56, 64)).astype(np.float32)
  w = rng.normal(size=(3, 3, 64, 64)).astype(np.float32) / 24

  def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  default = jax.jit(conv).lower(x, w).compile()
  eigen = jax.jit(conv, compiler_options=opts).lower(x, w).compile()
  assert "%ynn_fusion" in default.as_text() and "%ynn_fusion" not in eigen.as_text()
  np.testing.assert_allclose(eigen(x, w), default(x, w), rtol=1e-5, atol=1e-5)
