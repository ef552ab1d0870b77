"""Channel projections: the float model that the integer artifacts are made from.

A projection of a ``C``-channel feature map onto ``K`` components is the pair

    y = S1 (x - mean)        (forward, ``S1`` is K x C)
    x_hat = S2 y + mean      (inverse or lift, ``S2`` is C x K)

PCA gives ``S1 = U^T`` and ``S2 = U`` for the top-``K`` eigenvectors ``U`` of the mean-centred
channel covariance; the learned methods (CAP, Price and Tanner) start from there and train
``S1``, ``S2`` (and the mean) freely. Every method returns a ``Projection``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Projection", "k_for_energy", "pca_fit"]


@dataclass
class Projection:
    """A float projection: ``mean`` (C,), ``forward`` S1 (K, C), ``inverse`` S2 (C, K).

    ``eigenvalues`` (C,) holds the channel covariance spectrum, largest first, when the
    projection came from (or was initialised by) PCA; the allocation methods use it.
    """

    mean: np.ndarray
    forward: np.ndarray
    inverse: np.ndarray
    eigenvalues: np.ndarray | None = None

    def __post_init__(self):
        self.mean = np.asarray(self.mean, dtype=np.float64)
        self.forward = np.asarray(self.forward, dtype=np.float64)
        self.inverse = np.asarray(self.inverse, dtype=np.float64)
        c = self.mean.shape[0]
        if self.mean.ndim != 1:
            raise ValueError(f"Projection mean must be 1-D, not shape {self.mean.shape}")
        k = self.forward.shape[0]
        if self.forward.shape != (k, c) or self.inverse.shape != (c, k):
            raise ValueError(f"Projection shapes do not agree: mean {self.mean.shape}, "
                             f"forward {self.forward.shape}, inverse {self.inverse.shape}")

    @property
    def channels(self) -> int:
        return self.mean.shape[0]

    @property
    def k(self) -> int:
        return self.forward.shape[0]

    def project(self, x: np.ndarray) -> np.ndarray:
        """Coefficients ``(x - mean) @ S1^T`` for channels-last ``x`` (..., C)."""
        return (np.asarray(x, dtype=np.float64) - self.mean) @ self.forward.T

    def reconstruct(self, y: np.ndarray) -> np.ndarray:
        """Channels-last reconstruction ``y @ S2^T + mean`` for coefficients (..., K)."""
        return np.asarray(y, dtype=np.float64) @ self.inverse.T + self.mean

    def truncate(self, k: int) -> Projection:
        """The first ``k`` components (meaningful for PCA-ordered projections)."""
        if not 1 <= k <= self.k:
            raise ValueError(f"Component count must be between 1 and {self.k}, not {k}")
        return Projection(self.mean, self.forward[:k], self.inverse[:, :k], self.eigenvalues)


def pca_fit(x: np.ndarray, k: int | None = None) -> Projection:
    """PCA of channels-last samples ``x`` (N, C) (or (..., C), flattened).

    Returns all ``C`` components when ``k`` is None, else the top ``k``. Eigenvectors are
    sign-normalised (largest-magnitude entry positive) so results are reproducible.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim < 2 or x.shape[-1] < 1:
        raise ValueError(f"PCA needs channels-last samples (N, C), not shape {x.shape}")
    x = x.reshape(-1, x.shape[-1])
    if x.shape[0] < 2:
        raise ValueError(f"PCA needs at least 2 samples, not {x.shape[0]}")
    c = x.shape[1]
    if k is not None and not 1 <= k <= c:
        raise ValueError(f"Component count must be between 1 and {c}, not {k}")
    mean = x.mean(axis=0)
    xc = x - mean
    cov = xc.T @ xc / (x.shape[0] - 1)
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    vals = np.clip(vals[order], 0.0, None)
    vecs = vecs[:, order]
    flip = np.sign(vecs[np.abs(vecs).argmax(axis=0), np.arange(c)])
    vecs = vecs * np.where(flip == 0, 1.0, flip)
    k = c if k is None else k
    return Projection(mean, vecs[:, :k].T, vecs[:, :k], vals)


def k_for_energy(eigenvalues: np.ndarray, threshold: float) -> int:
    """Smallest ``k`` whose top eigenvalues hold at least ``threshold`` of the total energy."""
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"Energy threshold must be in (0, 1], not {threshold}")
    ev = np.clip(np.asarray(eigenvalues, dtype=np.float64), 0.0, None)
    total = ev.sum()
    if total <= 0:
        return 1
    share = np.cumsum(ev) / total
    return int(min(len(ev), np.searchsorted(share, threshold - 1e-12) + 1))
