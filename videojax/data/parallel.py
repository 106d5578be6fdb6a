"""Reading ahead in threads, for the loaders of extraction and import."""
from __future__ import annotations

import collections
import concurrent.futures
import itertools
from collections.abc import Callable, Iterable, Iterator


def prefetch_map(fn: Callable, items: Iterable, num_workers: int,
                 depth: int) -> Iterator[concurrent.futures.Future]:
  """fn over items in `num_workers` threads, at most `depth` ahead; futures in order."""
  with concurrent.futures.ThreadPoolExecutor(max(1, num_workers)) as pool:
    it = iter(items)
    queue = collections.deque(pool.submit(fn, x) for x in itertools.islice(it, depth))
    while queue:
      future = queue.popleft()
      for x in itertools.islice(it, 1):
        queue.append(pool.submit(fn, x))
      yield future
