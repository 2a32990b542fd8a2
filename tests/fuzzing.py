"""A small mutation fuzzer for every parser (R3 in TARGETS.md).

    from tests.fuzzing import fuzz_parser

    @pytest.mark.fuzz
    def test_fuzz_ridecode():
        fuzz_parser(ridecode.parse_text, seeds=[valid_text], allowed=(FormatError,))

Inputs are seeds mutated by bit flips, byte changes, truncation, duplication, splicing and
random bytes, drawn from a seeded `random.Random` (the seed is printed on failure). The
parser must return or raise one of `allowed`; anything else, or taking longer than
`max_ms_each`, fails with the input in hex. `make fuzz` runs n = FUZZ_N (default 1,000,000)
per parser; the regular suite runs the same tests with n = QUICK for a quick check.
"""

import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

DEFAULT_N = int(os.environ.get("FUZZ_N", "1000000"))
QUICK = 3000  # inputs per parser in `make test`


def mutate(rng: random.Random, seeds: Sequence[bytes]) -> bytes:
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(7)
        if op == 0 and data:  # flip a bit
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1 and data:  # set a byte to an interesting value
            data[rng.randrange(len(data))] = rng.choice(
                (0, 1, 0x7F, 0x80, 0xFF, rng.randrange(256))
            )
        elif op == 2 and data:  # truncate
            del data[rng.randrange(len(data)) :]
        elif op == 3:  # insert random bytes
            i = rng.randrange(len(data) + 1)
            data[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 4 and data:  # duplicate a slice
            i = rng.randrange(len(data))
            data[i:i] = data[i : i + rng.randint(1, 32)]
        elif op == 5:  # splice with another seed
            other = rng.choice(seeds)
            cut = rng.randrange(len(other) + 1)
            data = data[: rng.randrange(len(data) + 1)] + bytearray(other[cut:])
        else:  # pure noise
            data = bytearray(rng.randbytes(rng.randint(0, 2 * max(1, len(data)))))
    return bytes(data)


def fuzz_parser(
    parse: Callable[[Any], Any],
    seeds: Sequence[bytes | str],
    allowed: tuple[type[BaseException], ...],
    n: int | None = None,
    seed: int | None = None,
    as_text: bool = False,
    max_ms_each: float = 1000.0,
) -> int:
    """Feed n mutated inputs to `parse`; return how many were accepted (did not raise)."""
    if n is None:
        n = DEFAULT_N
    if seed is None:
        seed = int(os.environ.get("FUZZ_SEED", "0")) or random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    raw_seeds = [s.encode("latin-1") if isinstance(s, str) else bytes(s) for s in seeds]
    accepted = 0
    for i in range(n):
        data = mutate(rng, raw_seeds)
        arg: Any = data.decode("latin-1") if as_text else data
        t0 = time.perf_counter()
        try:
            parse(arg)
            accepted += 1
        except allowed:
            pass
        except Exception as e:
            raise AssertionError(
                "fuzz seed %d, input #%d (%s) raised %r; reproduce with FUZZ_SEED=%d"
                % (seed, i, data.hex(), e, seed)
            ) from e
        ms = (time.perf_counter() - t0) * 1000
        if ms > max_ms_each:
            raise AssertionError(
                "fuzz seed %d, input #%d took %.0f ms: %s" % (seed, i, ms, data.hex())
            )
    return accepted
