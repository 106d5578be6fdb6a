"""videojax.threefry: the Random123 known answers, and JAX's own bits after the swap."""
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from videojax import threefry

U32_MAX = 2**32 - 1

# Known-answer vectors of Threefry-2x32 with 20 rounds from the reference
# implementation's tests (Random123's kat_vectors; JAX's random_test uses the
# same three): (key, counter) -> output.
KNOWN_ANSWERS = [
    ((0, 0), (0, 0), (0x6B200159, 0x99BA4EFE)),
    ((U32_MAX, U32_MAX), (U32_MAX, U32_MAX), (0x1CB996FC, 0xBB002BE7)),
    ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
]


@pytest.mark.parametrize("key, counter, want", KNOWN_ANSWERS)
def test_hash_matches_the_reference_implementations_known_answers(key, counter, want):
  k, c = np.uint32(key), np.uint32(counter)
  got = jax.jit(threefry.threefry2x32)(k[0], k[1], c[0], c[1])
  assert tuple(int(v) for v in got) == want


# Draws that go through the threefry2x32 primitive: bits of a folded key, and a
# dropout-style Bernoulli mask.
_DRAWS = """
import jax, numpy as np
key = jax.random.key(7)
bits = jax.jit(lambda k: jax.random.bits(jax.random.fold_in(k, 3), (257, 3)))(key)
mask = jax.jit(lambda k: jax.random.bernoulli(k, 0.9, (4, 33, 16)))(key)
"""


def test_cpu_draws_are_jaxs_default_bits_and_compile_without_a_loop(tmp_path):
  # JAX's default lowering, in a process that never swaps it.
  out = tmp_path / "default.npz"
  code = _DRAWS + f"np.savez({str(out)!r}, bits=np.asarray(bits), mask=np.asarray(mask))\n"
  subprocess.run([sys.executable, "-c", code], check=True,
                 env={**os.environ, "JAX_PLATFORMS": "cpu"})
  want = np.load(out)

  threefry.unroll_on_cpu()
  scope = {}
  exec(_DRAWS, scope)
  np.testing.assert_array_equal(scope["bits"], want["bits"])
  np.testing.assert_array_equal(scope["mask"], want["mask"])
  # The draw's compiled code has no loop left: the swap took effect (JAX's CPU
  # lowering is a while loop over blocks of rounds).
  draw = jax.jit(lambda k: jax.random.bits(k, (64,)))
  assert "while" not in draw.lower(jax.random.key(0)).compile().as_text()
