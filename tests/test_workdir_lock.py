"""One train.py per workdir: a second is refused naming the holder; a dead one's lock is taken."""
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from tests.test_checkpoint import ROOT, _digest, _script_config, _train_script
from tests.test_multihost import _write_features
from videojax.workdir_lock import WorkdirInUse, WorkdirLock

_HOLDER = textwrap.dedent("""
    import sys, time
    from videojax.workdir_lock import WorkdirLock
    WorkdirLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(300)
""")


def _holder(workdir):
  """A process that holds `workdir`'s lock until killed; returns once it holds it."""
  proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(workdir)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                          text=True)
  assert proc.stdout.readline() == "locked\n"
  return proc


def test_a_second_train_script_in_a_busy_workdir_is_refused_naming_the_holder(tmp_path):
  features = tmp_path / "features"
  features.mkdir()
  _write_features(features, "train", 4, 10, seed=0)
  _write_features(features, "test", 2, 7, seed=1)
  work = tmp_path / "run"
  holder = _holder(work)
  try:
    before = _digest(work)
    proc = _train_script(_script_config(tmp_path, features, {"train.num_epochs": 1}), work,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "Traceback" not in err, out + err
    assert (f"error: {work} is in use by pid {holder.pid} on host "
            f"{socket.gethostname()} since ") in err, err[-3000:]
    assert "; wait for it or use another --workdir" in err
    assert _digest(work) == before and not (work / "checkpoints").exists()
  finally:
    holder.kill()
    holder.wait()


def test_a_lock_left_by_a_killed_holder_is_taken_over(tmp_path):
  work = tmp_path / "run"
  holder = _holder(work)
  with pytest.raises(WorkdirInUse, match=rf"^{work} is in use by pid {holder.pid} on host "):
    WorkdirLock(work).acquire()
  holder.send_signal(signal.SIGKILL)
  holder.wait()
  with WorkdirLock(work) as lock:  # The kernel released the dead holder's lock.
    assert f"pid {os.getpid()} on host" in lock.path.read_text()
    with pytest.raises(WorkdirInUse, match=f"pid {os.getpid()}"):
      WorkdirLock(work).acquire()  # Held here: refused even in the same process.
  again = WorkdirLock(work)
  again.acquire()  # Released on exit.
  again.release()


def test_a_workdir_on_a_bucket_takes_the_run_files_without_a_lock(memory_bucket):
  """An object store has no file locks: a gs:// workdir is not locked (nor refused), and the
  run's files (json, csv, the backbone copy) are written through etils.epath."""
  import json

  from videojax import files, metrics, runs
  from videojax.data.features import BACKBONE_FILE
  work = f"{memory_bucket}/run"
  with WorkdirLock(work), WorkdirLock(work):
    files.write_json_atomic(f"{work}/results.json", {"accuracy": 0.5})
    metrics.write_confusion_csv(f"{work}/confusion.csv", [[1, 0], [0, 1]], ["a", "b"])
  assert json.loads(files.path(f"{work}/results.json").read_text()) == {"accuracy": 0.5}
  assert files.path(f"{work}/confusion.csv").read_text().splitlines()[1] == "a,1,0"
  assert not files.path(f"{work}/.lock").exists()
  features = files.path(f"{memory_bucket}/feats")
  features.mkdir(parents=True)
  (features / BACKBONE_FILE).write_bytes(b"weights")
  runs.keep_backbone(features, work)
  assert (files.path(work) / BACKBONE_FILE).read_bytes() == b"weights"
  # No path relative to a URL workdir: the features are found by their URL.
  assert runs.features_dir_meta(features, work) == {"features_dir": str(features)}
