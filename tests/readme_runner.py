"""Runs the README's runnable shell blocks, in order, in one bash, on tiny data.

  .venv/bin/python tests/readme_runner.py [README.md]     (tests/test_readme.py runs it)

A block is runnable when the line before its opening fence is `<!-- runnable -->`. The
blocks run as one `bash -euxo pipefail` in a temporary folder holding the data they name:
$DATA, a folder of generated videos, one folder per class (`config.data.layout=folders`);
$FEATURES, where extraction writes; `some_clip.mp4`, a video to predict. `configs/`,
`scripts/` and the package are those of this repository.

Speed: every `.venv/bin/python scripts/X.py ...` would import JAX and TensorFlow afresh,
3-7 s each on 2 cores. Here `.venv/bin/python` is a small client that hands its arguments,
directory, environment and stdin/stdout/stderr to this process, which imported them once;
it forks, the child runs the script as `__main__`, and the client exits with the child's
status. Nothing of JAX is initialised before the fork, so each script starts as fresh as
from a shell. TINY_FLAGS are appended to each script's own (later flags win): raw 16 px
frames instead of a backbone, 4 frames a clip, 2 epochs.
"""
from __future__ import annotations

import importlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback

START = time.monotonic()

ROOT = pathlib.Path(__file__).resolve().parents[1]
MARKER = "<!-- runnable -->"
TINY_FLAGS = {
    "extract_features.py": ["--config.extract.frames=pixels", "--config.extract.image_size=16",
                            "--config.data.num_frames=4", "--config.extract.num_workers=1"],
    "train.py": ["--config.data.num_frames=4", "--config.train.num_epochs=2",
                 "--config.train.batch_size=8"],
}
PRELOAD = ("videojax.extract", "videojax.train", "videojax.tools.evaluate",
           "videojax.tools.predict", "videojax.tools.report")
# The client each block runs as `.venv/bin/python`: stdlib only, no site (starts in ~20 ms).
_CLIENT = """#!{python} -S
import json, os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(os.environ["README_RUNNER_SOCKET"])
request = dict(argv=sys.argv[1:], cwd=os.getcwd(), env=dict(os.environ))
socket.send_fds(s, [json.dumps(request).encode()], [0, 1, 2])
s.shutdown(socket.SHUT_WR)
sys.exit(int(s.recv(16) or b"1"))
"""
SOCKET_ENV = "README_RUNNER_SOCKET"


def runnable_blocks(markdown: str) -> list[str]:
  """The bodies of the fenced blocks whose opening fence follows a MARKER line.

  Raises:
    ValueError: a MARKER not followed by a ```bash or ```sh fence.
  """
  blocks = []
  lines = markdown.splitlines()
  for i, line in enumerate(lines):
    if line.strip() != MARKER:
      continue
    fence = lines[i + 1].strip() if i + 1 < len(lines) else ""
    if fence not in ("```bash", "```sh"):
      raise ValueError(f"README line {i + 1}: {MARKER} must come right before a ```bash "
                       f"block, not {fence!r}")
    end = lines.index("```", i + 2)
    blocks.append("\n".join(lines[i + 2:end]))
  return blocks


def write_tiny_data(folder: pathlib.Path) -> dict[str, str]:
  """Writes the data the blocks name into `folder`; returns their environment variables."""
  from videojax.data import synthetic

  data = synthetic.write_dataset(folder / "videos", groups=3, test_groups=1, clips_per_group=1,
                                 size=16, min_frames=4, max_frames=8)
  for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):
    (data / name).unlink()  # The folders layout: one folder per class, nothing else.
  shutil.copy(data / "Grow" / "v_Grow_g01_c01.avi", folder / "some_clip.mp4")
  return {"DATA": str(data), "FEATURES": str(folder / "features")}


def _serve_one(conn: socket.socket) -> None:
  """Runs one client's script in a forked child; sends back its exit status."""
  data, fds, _, _ = socket.recv_fds(conn, 1 << 20, 3)
  while chunk := conn.recv(1 << 20):
    data += chunk
  request = json.loads(data)
  argv = request["argv"]
  if argv and argv[0].startswith("scripts/"):
    argv = argv + TINY_FLAGS.get(pathlib.Path(argv[0]).name, [])
  sys.stdout.flush()
  sys.stderr.flush()
  pid = os.fork()
  if pid == 0:  # The child: becomes `python <argv>` in the client's place.
    code = 1
    try:
      for target, fd in enumerate(fds):
        os.dup2(fd, target)
      os.chdir(request["cwd"])
      os.environ.clear()
      os.environ.update(request["env"])
      if not argv or not argv[0].endswith(".py"):  # python -c, -m, ...: the real one.
        os.execv(sys.executable, [sys.executable, *argv])
      sys.argv = argv
      import runpy
      runpy.run_path(argv[0], run_name="__main__")
      code = 0
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
      if not isinstance(e.code, (int, type(None))):
        print(e.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - reported like Python's own exit.
      traceback.print_exc()
    finally:
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(code)
  for fd in fds:
    os.close(fd)
  _, status = os.waitpid(pid, 0)
  print(f"[readme_runner: {time.monotonic() - START:.1f} s] python {' '.join(argv[:1])} done",
        file=sys.stderr)
  conn.sendall(str(os.waitstatus_to_exitcode(status) % 256).encode())


def run(readme: pathlib.Path, folder: pathlib.Path) -> int:
  """Runs every runnable block of `readme` in `folder` (made here); returns bash's status."""
  script = "\n".join(runnable_blocks(readme.read_text()))
  env = {**os.environ, **write_tiny_data(folder), "PYTHONPATH": str(ROOT),
         "TF_CPP_MIN_LOG_LEVEL": "2", SOCKET_ENV: str(folder / "runner.sock")}
  for name in ("configs", "scripts"):
    (folder / name).symlink_to(ROOT / name)
  client = folder / ".venv" / "bin" / "python"
  client.parent.mkdir(parents=True)
  client.write_text(_CLIENT.format(python=sys.executable))
  client.chmod(0o755)
  for module in PRELOAD:  # Once here, before the fork: what every script imports.
    importlib.import_module(module)
  print(f"[readme_runner: {time.monotonic() - START:.1f} s] imported", file=sys.stderr)

  with socket.socket(socket.AF_UNIX) as server:
    server.bind(env[SOCKET_ENV])
    server.listen()
    server.settimeout(0.1)
    shell = subprocess.Popen(["bash", "-euxo", "pipefail", "-c", script], cwd=folder, env=env)
    while shell.poll() is None:
      try:
        conn, _ = server.accept()
      except TimeoutError:
        continue
      with conn:
        conn.settimeout(None)
        _serve_one(conn)
  return shell.returncode


def main(argv: list[str]) -> int:
  readme = pathlib.Path(argv[1]) if len(argv) > 1 else ROOT / "README.md"
  with tempfile.TemporaryDirectory(prefix="readme-") as tmp:
    return run(readme, pathlib.Path(tmp))


if __name__ == "__main__":
  sys.exit(main(sys.argv))
