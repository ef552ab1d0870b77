"""Optimal length-limited code lengths (package-merge)."""

from __future__ import annotations

import numpy as np

from golden.codec.errors import HuffmanError, check_int

__all__ = ["MAX_LEN_LIMIT", "lengths_from_histogram"]

MAX_LEN_LIMIT = 24


def lengths_from_histogram(weights, max_len):
    """Optimal code lengths under a maximum length (package-merge).

    Parameters
    ----------
    weights : array_like of int
        Non-negative counts; entries with a zero count get length 0 (no code).
    max_len : int
        Maximum code length L, 1..24.

    Returns
    -------
    numpy.ndarray of int64
        Code length per entry. The average length ``sum(w * len) / sum(w)`` is the minimum over
        all prefix codes whose lengths do not exceed ``max_len``. A single coded entry gets
        length 1.

    Raises
    ------
    HuffmanError
        If ``2**max_len`` is smaller than the number of entries with a nonzero count.
    """
    max_len = check_int("Maximum code length", max_len, 1, MAX_LEN_LIMIT)
    w = np.asarray(weights)
    if w.ndim != 1 or (w.size and not np.issubdtype(w.dtype, np.integer)):
        raise TypeError("Weights must be a 1-D array of integers")
    w = w.astype(np.int64)
    if np.any(w < 0):
        raise ValueError("Weights must not be negative")
    lengths = np.zeros(w.size, dtype=np.int64)
    used = np.flatnonzero(w)
    n = used.size
    if n == 0:
        return lengths
    if n > (1 << max_len):
        raise HuffmanError(f"Maximum code length {max_len} cannot code {n} symbols")
    if n == 1:
        lengths[used] = 1
        return lengths
    # Leaves in ascending weight, ties by descending index, so the result is deterministic and
    # ESC (the highest index, count 1) is among the longest codes of its weight.
    order = used[np.lexsort((-used, w[used]))]
    leaf_w = w[order]
    # Package-merge (Larmore and Hirschberg): level L holds the leaves; each shallower level
    # merges the leaves with the pairwise packages of the level below. Only whether each merged
    # item is a leaf is kept; the leaves among the first m items are the m' lightest leaves.
    levels = []  # per level, boolean "is leaf" of the merged list, deepest first
    prev = leaf_w
    levels.append(np.ones(n, dtype=bool))
    for _ in range(max_len - 1):
        packages = prev[0:(prev.size // 2) * 2:2] + prev[1:(prev.size // 2) * 2:2]
        items = np.concatenate([leaf_w, packages])
        is_leaf = np.concatenate([np.ones(n, dtype=bool), np.zeros(packages.size, dtype=bool)])
        # Stable sort puts a leaf before a package of equal weight.
        sel = np.argsort(items, kind="stable")
        prev = items[sel]
        levels.append(is_leaf[sel])
    # Take the 2n - 2 lightest items at the shallowest level, then follow packages down.
    take = 2 * n - 2
    depth = np.zeros(n, dtype=np.int64)
    for is_leaf in reversed(levels):
        head = is_leaf[:take]
        n_leaves = int(head.sum())
        depth[:n_leaves] += 1
        take = 2 * (take - n_leaves)
    lengths[order] = depth
    return lengths
