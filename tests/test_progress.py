"""Progress off a terminal: a flushed line every `seconds` with done/total, rate and ETA."""
import io

import pytest

from videojax import progress


class Clock:
  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


class Stream(io.StringIO):
  """Not a terminal; counts flushes (a line under nohup must not wait in a buffer)."""
  flushes = 0

  def flush(self):
    self.flushes += 1
    super().flush()


def test_a_line_every_interval_with_rate_and_eta_then_a_closing_line():
  clock, out = Clock(), Stream()
  with progress.Progress(total=100, desc="extract", unit="clip", seconds=30, stream=out,
                         clock=clock) as p:
    for _ in range(10):  # 10 clips in 20 s: too soon for a line.
      clock.now += 2
      p.update(1)
    assert out.getvalue() == ""
    clock.now += 10
    p.update(5)  # 15 clips at 30 s: 0.5 clips/s, 85 left -> ETA 2m50s.
    assert out.getvalue() == "extract: 15/100 clips (15.0%), 0.5 clips/s, ETA 2m50s\n"
    assert out.flushes == 1
    clock.now += 10
    p.update(20, postfix="loss=0.25")  # The rate since the last line: 20 in 10 s.
    assert out.getvalue().count("\n") == 1
    clock.now += 20
    p.update(5)
    assert out.getvalue().splitlines()[-1] == (
        "extract: 40/100 clips (40.0%), 0.833 clips/s, ETA 1m12s, loss=0.25")
  assert out.getvalue().splitlines()[-1] == "extract: 40/100 clips in 1m00s, 0.667 clips/s, loss=0.25"
  assert out.flushes == 3


def test_resumed_work_counts_only_this_process_in_the_rate():
  clock, out = Clock(), Stream()
  p = progress.Progress(total=10, desc="train", unit="step", initial=6, seconds=0, stream=out,
                        clock=clock)
  clock.now += 4
  p.update(2)
  assert out.getvalue() == "train: 8/10 steps (80.0%), 0.5 steps/s, ETA 4s\n"
  assert p.rate() == 0.5
  p.close()
  p.close()
  assert out.getvalue().count("\n") == 2


def test_disabled_empty_and_quick_progress_write_nothing():
  clock, out = Clock(), Stream()
  with progress.Progress(total=5, desc="x", unit="clip", seconds=0, stream=out, clock=clock,
                         enabled=False) as p:
    clock.now += 1
    p.update(5)
  with progress.Progress(total=5, desc="x", unit="clip", seconds=30, stream=out,
                         clock=clock) as p:
    clock.now += 29
    p.update(5)
  with progress.Progress(total=0, desc="x", unit="clip", seconds=0, stream=out, clock=clock):
    pass
  assert out.getvalue() == ""


def test_a_terminal_gets_a_bar():
  out = Stream()
  out.isatty = lambda: True
  with progress.Progress(total=3, desc="import", unit="video", stream=out) as p:
    p.update(3)
  assert "import" in out.getvalue() and "3/3" in out.getvalue()


@pytest.mark.parametrize("value, seconds", [("", 30.0), ("0.5", 0.5), (" 0 ", 0.0)])
def test_interval_from_the_environment(monkeypatch, value, seconds):
  monkeypatch.setenv(progress.SECONDS_ENV, value)
  assert progress.default_seconds() == seconds


@pytest.mark.parametrize("value", ["soon", "-1", "nan"])
def test_a_bad_interval_is_a_user_error_naming_the_variable(monkeypatch, value):
  monkeypatch.setenv(progress.SECONDS_ENV, value)
  with pytest.raises(ValueError, match=r"^\$VIDEOJAX_PROGRESS_SECONDS="):
    progress.default_seconds()


def test_format_seconds():
  assert [progress.format_seconds(s) for s in (4.4, 61, 3600 + 5 * 60 + 1)] == [
      "4s", "1m01s", "1h05m"]
