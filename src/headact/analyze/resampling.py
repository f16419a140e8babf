"""Counter-based bootstrap weights and sample halves: a function of (seed, sample block) only.

Every resample is an ordinary multinomial bootstrap of the N analyzed samples, drawn in two
levels so that no chunk needs to see another: first how many of each resample's N draws fall
in each block of WEIGHT_BLOCK consecutive samples (one small [n_boot, n_blocks] multinomial),
then, per block, which samples inside it receive those draws, from a Philox generator keyed by
(seed, block). Any chunking of the samples, in any order or process, sees identical weights.
"""

from __future__ import annotations

import numpy as np

# Samples per weight block; fixed, so results never depend on how a store is chunked.
WEIGHT_BLOCK = 1024

# Purposes mixed into the Philox key, so each stream of random numbers is independent.
_TOTALS, _BLOCK, _SPLIT, _LAYERS, _PERMUTATION = 0x7A11, 0xB10C, 0x5B17, 0x1A7E, 0x9E27


def _seed_key(seed: int) -> int:
    # Spread small user seeds over 64 bits, so seeds 0 and 1 share no key structure.
    return int(np.random.SeedSequence(int(seed)).generate_state(1, np.uint64)[0])


def keyed_generator(seed: int, purpose: int, counter: int = 0) -> np.random.Generator:
    """A numpy Philox generator keyed by (seed, purpose, counter)."""
    key = np.array([_seed_key(seed) ^ purpose, counter], dtype=np.uint64)
    return np.random.Generator(np.random.Philox(key=key))


def layer_generator(seed: int) -> np.random.Generator:
    """The generator of the layer-cluster bootstrap."""
    return keyed_generator(seed, _LAYERS)


def permutation_generator(seed: int) -> np.random.Generator:
    """The generator of the within-layer permutation test."""
    return keyed_generator(seed, _PERMUTATION)


class BootstrapWeights:
    """Multinomial resampling counts W [n_boot, N] of N samples, produced column block by block.

    Each row of W sums to N, so a replicate mean is simply (W @ x) / N; with masked values it
    is (W @ (m x)) / (W @ m).
    """

    def __init__(self, n_samples: int, n_boot: int, seed: int, block: int = WEIGHT_BLOCK):
        if n_samples < 1:
            raise ValueError("`n_samples` must be at least 1.")
        if n_boot < 1:
            raise ValueError("`n_boot` must be a positive integer.")
        self.n_samples = int(n_samples)
        self.n_boot = int(n_boot)
        self.seed = int(seed)
        self.block = int(block)
        self.n_blocks = -(-self.n_samples // self.block)
        sizes = np.full(self.n_blocks, self.block, dtype=np.int64)
        sizes[-1] = self.n_samples - self.block * (self.n_blocks - 1)
        self._sizes = sizes
        rng = keyed_generator(self.seed, _TOTALS)
        # Draws per (resample, block): the first level of the multinomial.
        self.totals = rng.multinomial(self.n_samples, sizes / self.n_samples, size=self.n_boot)
        self._cache: tuple[int, np.ndarray] | None = None

    def block_weights(self, b: int) -> np.ndarray:
        """int32 [n_boot, block size] counts for the samples of weight block `b`."""
        if self._cache is not None and self._cache[0] == b:
            return self._cache[1]
        size = int(self._sizes[b])
        draws_per_row = self.totals[:, b]
        rng = keyed_generator(self.seed, _BLOCK, b)
        picks = rng.integers(0, size, size=int(draws_per_row.sum()))
        rows = np.repeat(np.arange(self.n_boot, dtype=np.int64), draws_per_row)
        counts = np.bincount(rows * size + picks, minlength=self.n_boot * size)
        weights = counts.reshape(self.n_boot, size).astype(np.int32)
        self._cache = (b, weights)
        return weights

    def columns(self, start: int, stop: int) -> np.ndarray:
        """int32 [n_boot, stop - start]: the weights of samples start .. stop-1."""
        if not 0 <= start <= stop <= self.n_samples:
            raise ValueError(f"columns {start}:{stop} outside 0:{self.n_samples}")
        parts = []
        for b in range(start // self.block, -(-stop // self.block)):
            lo = max(start, b * self.block) - b * self.block
            hi = min(stop, (b + 1) * self.block) - b * self.block
            parts.append(self.block_weights(b)[:, lo:hi])
        if not parts:
            return np.zeros((self.n_boot, 0), dtype=np.int32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def full(self) -> np.ndarray:
        """The whole W [n_boot, N]; for small problems and tests only."""
        return self.columns(0, self.n_samples)


def split_halves(n_samples: int, seed: int, start: int = 0, stop: int | None = None,
                 block: int = WEIGHT_BLOCK) -> np.ndarray:
    """bool [stop - start]: True for samples in half A of a random split, balanced per block.

    Chunk-invariant like the weights: within each block of `block` samples a keyed
    permutation puts the first half of the positions in A.
    """
    stop = n_samples if stop is None else stop
    out = np.zeros(stop - start, dtype=bool)
    for b in range(start // block, -(-stop // block)):
        size = min(block, n_samples - b * block)
        rng = keyed_generator(seed, _SPLIT, b)
        in_a = np.zeros(size, dtype=bool)
        in_a[rng.permutation(size)[: size // 2 + (b % 2) * (size % 2)]] = True
        lo = max(start, b * block)
        hi = min(stop, (b + 1) * block)
        out[lo - start : hi - start] = in_a[lo - b * block : hi - b * block]
    return out
