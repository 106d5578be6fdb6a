"""Progress of long work: a bar on a terminal, a log line every ~30 s anywhere else.

  with progress.Progress(total=len(clips), desc="extract", unit="clip") as bar:
    for clip in clips:
      ...
      bar.update(1)

Under nohup, SLURM or CI stderr is no terminal: there a tqdm bar would print nothing
(or an unreadable stream of carriage returns), so instead one line is written every
`seconds` (default 30, or $VIDEOJAX_PROGRESS_SECONDS), and, after those, one at the end
(work done within the first interval writes no line):

  extract: 1024/13320 clips (7.7%), 41.2 clips/s, ETA 4m58s

The rate is over the time since the previous line, so a slow start (compilation)
does not skew the estimate for long. Every line is flushed at once.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from tqdm import tqdm

DEFAULT_SECONDS = 30.0
SECONDS_ENV = "VIDEOJAX_PROGRESS_SECONDS"


def default_seconds() -> float:
  """$VIDEOJAX_PROGRESS_SECONDS, else 30: seconds between progress lines off a terminal.

  Raises:
    ValueError: the variable is set to something other than a number >= 0.
  """
  text = os.environ.get(SECONDS_ENV, "").strip()
  if not text:
    return DEFAULT_SECONDS
  try:
    seconds = float(text)
  except ValueError:
    seconds = -1.0
  if not seconds >= 0:
    raise ValueError(f"${SECONDS_ENV}={text!r}: give the seconds between progress lines, "
                     "a number >= 0")
  return seconds


def format_seconds(seconds: float) -> str:
  """'42s', '4m58s', '2h05m'."""
  s = int(round(seconds))
  if s < 60:
    return f"{s}s"
  if s < 3600:
    return f"{s // 60}m{s % 60:02d}s"
  return f"{s // 3600}h{s % 3600 // 60:02d}m"


class Progress:
  """Counts units of work done out of `total`; shows them as a bar or as periodic lines.

  Args:
    total: units in the whole job (a resumed job counts the done ones in `initial`).
    desc: what is done, the start of every line ('extract', 'train gru').
    unit: the singular name of a unit ('clip', 'step'); rates read '<unit>s/s'.
    initial: units already done before this process started (not in the rate).
    seconds: seconds between lines off a terminal; default `default_seconds()`.
    stream: where to write; default sys.stderr.
    bar: a tqdm bar (True) or lines (False); default: whether `stream` is a terminal.
    enabled: False shows nothing (processes other than 0 of a multi-host run).
    clock: seconds, monotonic; tests give a fake one.
  """

  def __init__(self, total: int, desc: str, unit: str, *, initial: int = 0,
               seconds: float | None = None, stream: TextIO | None = None,
               bar: bool | None = None, enabled: bool = True,
               clock: Callable[[], float] = time.monotonic):
    self.total, self.desc, self.unit = int(total), desc, unit
    self.done = int(initial)
    self.postfix = ""
    self._stream = stream or sys.stderr
    self._seconds = default_seconds() if seconds is None else seconds
    self._clock = clock
    self._enabled = enabled
    self._start = self._last_time = clock()
    self._last_done = self._first = self.done
    self._closed = False
    self._lines = 0
    if bar is None:
      bar = enabled and hasattr(self._stream, "isatty") and self._stream.isatty()
    self._bar = (tqdm(total=self.total, initial=self.done, desc=desc, unit=unit,
                      file=self._stream, dynamic_ncols=True) if bar and enabled else None)

  def __enter__(self) -> Progress:
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  @property
  def elapsed(self) -> float:
    return self._clock() - self._start

  def rate(self) -> float:
    """Units per second since this process started (0 before any time has passed)."""
    elapsed = self.elapsed
    return (self.done - self._first) / elapsed if elapsed > 0 else 0.0

  def update(self, n: int = 1, postfix: str | None = None) -> None:
    """Adds `n` units done; `postfix` (e.g. 'loss=0.41') is shown after the counts."""
    self.done += n
    if postfix is not None:
      self.postfix = postfix
    if self._bar is not None:
      if postfix is not None:
        self._bar.set_postfix_str(postfix, refresh=False)
      self._bar.update(n)
    elif self._enabled and self._clock() - self._last_time >= self._seconds:
      self._write_line()

  def line(self, now: float | None = None) -> str:
    """'<desc>: 120/3000 steps (4.0%), 3.2 steps/s, ETA 15m00s[, <postfix>]'."""
    now = self._clock() if now is None else now
    span, count = now - self._last_time, self.done - self._last_done
    rate = count / span if span > 0 and count else self.rate()
    text = f"{self.desc}: {self.done}/{self.total} {self.unit}s"
    if self.total:
      text += f" ({100 * self.done / self.total:.1f}%)"
    text += f", {rate:.3g} {self.unit}s/s"
    if rate > 0 and self.done < self.total:
      text += f", ETA {format_seconds((self.total - self.done) / rate)}"
    return text + (f", {self.postfix}" if self.postfix else "")

  def _write_line(self, text: str | None = None) -> None:
    now = self._clock()
    print(text or self.line(now), file=self._stream, flush=True)
    self._last_time, self._last_done = now, self.done
    self._lines += 1

  def close(self) -> None:
    """Closes the bar, or writes the closing line ('N/N clips in ...') if any line was; once."""
    if self._closed:
      return
    self._closed = True
    if self._bar is not None:
      self._bar.close()
    elif self._lines:
      self._write_line(f"{self.desc}: {self.done}/{self.total} {self.unit}s in "
                       f"{format_seconds(self.elapsed)}, {self.rate():.3g} {self.unit}s/s"
                       + (f", {self.postfix}" if self.postfix else ""))
