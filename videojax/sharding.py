"""Data parallelism over a 1-D device mesh: batch split over 'data', params replicated."""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"  # The mesh axis the batch is split over.


def make_mesh(num_devices: int = 0, *, local: bool = False) -> Mesh:
  """A 1-D mesh ('data',) over the first `num_devices` devices (0 = all).

  local=False spans every host (training); local=True only this host's devices
  (extraction and prediction, where each host works on its own videos).
  """
  devices = jax.local_devices() if local else jax.devices()
  if num_devices < 0 or num_devices > len(devices):
    raise ValueError(f"num_devices={num_devices}: accepted 0 (all) to {len(devices)}")
  if num_devices and not local and jax.process_count() > 1:
    raise ValueError("train.num_devices must be 0 (all devices) in a multi-host run")
  devices = devices[:num_devices or len(devices)]
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,),
                       devices=devices)


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def replicate(tree, mesh: Mesh):
  """Host-local arrays, equal on every process, -> global arrays replicated over `mesh`.

  Unlike `jax.device_put`, works when the mesh spans other processes' devices.
  """
  sharding = replicated(mesh)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)),
                      tree)


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over 'data'."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh, key: str) -> None:
  """Global batches must split evenly over devices and hosts."""
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"{key}={batch_size} must be a multiple of the {n} devices; "
                     f"try {max(n, batch_size // n * n)}")


def put_batch(batch: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Host-local numpy batch -> global arrays sharded over 'data'."""
  sharding = batch_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
