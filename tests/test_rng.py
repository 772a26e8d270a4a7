"""brackit.rng: the unrolled Threefry lowering gives JAX's bits, with no loop left in the CPU program."""

import subprocess
import sys

import jax
import numpy as np

from brackit import rng

SCRIPT = """
import json, os, sys
import jax, numpy as np
if sys.argv[1] == "unrolled":
    from brackit.rng import unroll_threefry_on_cpu
    assert unroll_threefry_on_cpu()
key = jax.random.key(42)
draw = jax.jit(lambda k: (
    jax.random.randint(k, (257,), 0, 1000),
    jax.random.normal(jax.random.fold_in(k, 3), (5, 7)),
    jax.random.key_data(jax.random.split(k, 3)),
    jax.random.uniform(jax.random.key(7), (3,)),
))
hlo = draw.lower(key).compile().as_text()
print(json.dumps({"draws": [np.asarray(x).tolist() for x in draw(key)], "loops": hlo.count(" while(")}))
"""


def _run(mode: str) -> dict:
    import json

    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_unrolled_threefry_gives_the_same_bits_without_loops() -> None:
    # Separate processes: the lowering is registered process-wide and would leak into other tests' programs.
    rolled, unrolled = _run("rolled"), _run("unrolled")
    assert rolled["draws"] == unrolled["draws"]
    assert rolled["loops"] > 0 and unrolled["loops"] == 0


def test_threefry_matches_the_random123_known_answer() -> None:
    # Random123's published known-answer vectors for threefry2x32 with 20 rounds.
    cases = [
        ((0x00000000, 0x00000000), (0x00000000, 0x00000000), (0x6B200159, 0x99BA4EFE)),
        ((0xFFFFFFFF, 0xFFFFFFFF), (0xFFFFFFFF, 0xFFFFFFFF), (0x1CB996FC, 0xBB002BE7)),
        ((0x13198A2E, 0x03707344), (0x243F6A88, 0x85A308D3), (0xC4923A9C, 0x483DF7A0)),
    ]
    for key, count, expected in cases:
        args = [np.uint32(v) for v in (*key, *count)]
        got = jax.jit(rng.threefry2x32_unrolled)(*args)
        assert [int(x) for x in got] == list(expected)
