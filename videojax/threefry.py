"""JAX's Threefry-2x32 hash as straight-line code on CPU: the same bits, faster.

Every `jax.random` draw, so every dropout mask, goes through the
`threefry2x32` primitive. On CPU, JAX lowers it as a loop over five blocks of
four rounds, to keep compile times short. XLA then makes each block a pass over
memory. Written out, the 20 rounds fuse into one elementwise kernel: a
64 x 64 x 256 dropout mask took 3.4-4.9 ms with the loop and 0.6-1.2 ms
unrolled on a 2-core CPU (BENCHMARKS.md). The hash is the same, so every random number is bit for bit
what JAX draws by default. GPU and TPU lowerings are left alone: they already
unroll.
"""
import jax
import numpy as np
from jax.extend.random import threefry2x32_p
from jax.interpreters import mlir

# Rotation constants of Threefry-2x32 (Salmon et al., SC 2011), alternating by
# block of four rounds; the key schedule's parity constant.
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotate_left(x: jax.Array, d: int) -> jax.Array:
  return (x << np.uint32(d)) | (x >> np.uint32(32 - d))


def threefry2x32(k1: jax.Array, k2: jax.Array, x1: jax.Array,
                 x2: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Threefry-2x32 with 20 rounds, unrolled.

  Args:
    k1, k2: u32 key words.
    x1, x2: u32[...] counter words, broadcasting with the keys.

  Returns:
    (y1, y2): u32[...] the hashed words.
  """
  keys = (k1, k2, k1 ^ k2 ^ _PARITY)
  x1, x2 = x1 + keys[0], x2 + keys[1]
  for block in range(5):
    for r in _ROTATIONS[block % 2]:
      x1 = x1 + x2
      x2 = _rotate_left(x2, r) ^ x1
    # Key injection after every four rounds.
    x1 = x1 + keys[(block + 1) % 3]
    x2 = x2 + keys[(block + 2) % 3] + np.uint32(block + 1)
  return x1, x2


def unroll_on_cpu() -> None:
  """Lowers JAX's threefry2x32 primitive on CPU as `threefry2x32` above.

  Affects computations compiled afterwards; calling it again changes nothing.
  """
  mlir.register_lowering(threefry2x32_p,
                         mlir.lower_fun(threefry2x32, multiple_results=True),
                         platform="cpu")
