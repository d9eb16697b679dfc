"""Intensity normalisation, stored in checkpoints so prediction repeats exactly what training did."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MODES = ("percentile", "zscore", "scale")


@dataclass(frozen=True)
class Normalization:
    """Per-image, per-channel intensity normalisation.

    - ``percentile``: ``(x - p_low) / (p_high - p_low)`` with the image's own percentiles (default 1 and 99.8),
      robust to hot pixels and uneven exposure, as microscopy tools do.
    - ``zscore``: ``(x - mean) / std``.
    - ``scale``: ``x / max`` of the dtype (255 for uint8, 65535 for uint16; floats unchanged).
    """

    mode: str = "percentile"
    low: float = 1.0
    high: float = 99.8

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"normalization={self.mode!r} is not one of {', '.join(MODES)}")
        if not 0.0 <= self.low < self.high <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={self.low}, high={self.high}")

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Normalise an (H, W, C) image; returns float32 (C, H, W)."""
        x = np.moveaxis(np.asarray(image), -1, 0)
        if self.mode == "scale":
            scale = np.iinfo(x.dtype).max if np.issubdtype(x.dtype, np.integer) else 1.0
            return (x.astype(np.float32) / np.float32(scale)).astype(np.float32)
        x = x.astype(np.float32)
        flat = x.reshape(x.shape[0], -1)
        if self.mode == "percentile":
            lo, hi = np.percentile(flat, [self.low, self.high], axis=1)
            offset, spread = lo, hi - lo
        else:
            offset, spread = flat.mean(axis=1), flat.std(axis=1)
        spread = np.maximum(spread, 1e-6)
        return ((x - offset[:, None, None]) / spread[:, None, None]).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Normalization":
        """Inverse of :meth:`to_dict`."""
        return cls(**raw)
