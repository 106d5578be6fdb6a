"""Data parallelism over a 1-D device mesh: batch split over 'data', params replicated."""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import random as jex_random
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



@functools.cache
def _rows_impl(axis_name: str):
  """A PRNG impl whose draws, inside shard_map over `axis_name`, are each device's rows
  of the draw the whole batch would make with JAX's default Threefry.

  With `jax_threefry_partitionable` (JAX's default), element i of a draw of shape s is
  Threefry(key, i), i its row-major index as a 64-bit number. A draw of local shape s on
  device j, its leading axis split over the devices, is then elements
  j * prod(s) + (0 .. prod(s) - 1) of the global draw: the same bits, and no more of
  them, as each device computed under jit's partitioner. A draw whose leading axis is not
  the batch (a mask broadcast over the batch) becomes a per-device draw, as under pmap.
  """
  threefry = jex_random.threefry_prng_impl

  def random_bits(key, bit_width, shape):
    size = math.prod(shape)
    if size >= 2**32 or bit_width not in (8, 16, 32):
      raise NotImplementedError(f"row-sharded draw of {size} {bit_width}-bit numbers")
    # The device's first index, j * size, in 32-bit words (j < 2**16 devices).
    j = jax.lax.axis_index(axis_name).astype(jnp.uint32)
    low = j * jnp.uint32(size & 0xFFFF)
    high = j * jnp.uint32(size >> 16)
    start_lo = low + (high << 16)
    start_hi = (high >> 16) + (start_lo < low).astype(jnp.uint32)
    i = jax.lax.iota(jnp.uint32, size)
    counts_lo = i + start_lo
    counts_hi = start_hi + (counts_lo < i).astype(jnp.uint32)
    bits1, bits2 = jex_random.threefry2x32_p.bind(key[0], key[1], counts_hi, counts_lo)
    bits = bits1 ^ bits2
    if bit_width != 32:
      bits = bits.astype({8: jnp.uint8, 16: jnp.uint16}[bit_width])
    return bits.reshape(shape)

  return jex_random.define_prng_impl(
      key_shape=threefry.key_shape, seed=threefry.seed, split=threefry.split,
      random_bits=random_bits, fold_in=threefry.fold_in,
      name=f"threefry2x32, rows over {axis_name!r}", tag=f"fry_rows_{axis_name}")


def rows_of_global_draws(key: jax.Array, axis_name: str = DATA_AXIS) -> jax.Array:
  """`key` (Threefry), for use inside `jax.shard_map` over `axis_name`: what a model
  draws from it on its rows is those rows of what it drew on the whole batch.

  So dropout masks, drawn batch-first, are the same on any number of devices (and on one
  device the same as drawn from `key` itself). That needs JAX's default Threefry with
  `jax_threefry_partitionable` (also the default); with another key (`rbg`, say) each
  device draws from its own fold of the key instead, as under pmap: valid masks, but not
  the same across device counts.
  """
  if (str(jax.random.key_impl(key)) != jex_random.threefry_prng_impl.name
      or not jax.config.jax_threefry_partitionable):
    return jax.random.fold_in(key, jax.lax.axis_index(axis_name))
  return jax.random.wrap_key_data(jax.random.key_data(key), impl=_rows_impl(axis_name))
