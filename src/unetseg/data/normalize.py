"""Intensity normalisation, stored in checkpoints so prediction repeats exactly what training did."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

MODES = ("percentile", "zscore", "scale")
SCOPES = ("image", "dataset")  # statistics of each image, or of the training set (stored in the checkpoint)


@dataclass(frozen=True)
class Normalization:
    """Per-image, per-channel intensity normalisation.

    - ``percentile``: ``(x - p_low) / (p_high - p_low)`` with the image's own percentiles (default 1 and 99.8),
      robust to hot pixels and uneven exposure, as microscopy tools do.
    - ``zscore``: ``(x - mean) / std``.
    - ``scale``: ``x / max`` of the dtype (255 for uint8, 65535 for uint16; floats unchanged).

    ``scope="image"`` computes the statistics of each image; ``scope="dataset"`` uses ``stats`` (per channel
    ``(offset, spread)``), fitted once on the training images with :meth:`fit` and stored in the checkpoint, so
    that every image is mapped the same way (for data whose absolute intensities mean something, such as CT).
    """

    mode: str = "percentile"
    low: float = 1.0
    high: float = 99.8
    scope: str = "image"
    stats: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"normalization={self.mode!r} is not one of {', '.join(MODES)}")
        if not 0.0 <= self.low < self.high <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={self.low}, high={self.high}")
        if self.scope not in SCOPES:
            raise ValueError(f"normalization scope={self.scope!r} is not one of {', '.join(SCOPES)}")

    def _statistics(self, flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (offset, spread) of (C, N) values."""
        if self.mode == "percentile":
            lo, hi = np.percentile(flat, [self.low, self.high], axis=1)
            return lo, hi - lo
        return flat.mean(axis=1), flat.std(axis=1)

    def fit(self, images: list[np.ndarray], max_pixels: int = 2_000_000, seed: int = 0) -> "Normalization":
        """A dataset-scope copy with statistics of ``images`` ((H, W, C) each; up to ``max_pixels`` sampled
        pixels per channel in all). Returns ``self`` unchanged for ``scope="image"`` or ``mode="scale"``."""
        if self.scope != "dataset" or self.mode == "scale":
            return self
        rng = np.random.default_rng(seed)
        per_image = max(1, max_pixels // max(len(images), 1))
        parts = []
        for image in images:
            flat = np.moveaxis(np.asarray(image), -1, 0).reshape(image.shape[-1], -1).astype(np.float32)
            if flat.shape[1] > per_image:
                flat = flat[:, rng.choice(flat.shape[1], per_image, replace=False)]
            parts.append(flat)
        offset, spread = self._statistics(np.concatenate(parts, axis=1))
        stats = tuple((float(o), float(s)) for o, s in zip(offset, spread))
        return Normalization(self.mode, self.low, self.high, self.scope, stats)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Normalise an (H, W, C) image; returns float32 (C, H, W)."""
        x = np.moveaxis(np.asarray(image), -1, 0)
        if self.mode == "scale":
            scale = np.iinfo(x.dtype).max if np.issubdtype(x.dtype, np.integer) else 1.0
            return (x.astype(np.float32) / np.float32(scale)).astype(np.float32)
        x = x.astype(np.float32)
        if self.scope == "dataset":
            if self.stats is None or len(self.stats) != x.shape[0]:
                raise ValueError(f"dataset normalization needs statistics for {x.shape[0]} channel(s) (call fit)")
            offset, spread = (np.array(v, dtype=np.float32) for v in zip(*self.stats))
        else:
            offset, spread = self._statistics(x.reshape(x.shape[0], -1))
        spread = np.maximum(spread, 1e-6)
        return ((x - offset[:, None, None]) / spread[:, None, None]).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Normalization":
        """Inverse of :meth:`to_dict`."""
        raw = dict(raw)
        if raw.get("stats") is not None:
            raw["stats"] = tuple(tuple(v) for v in raw["stats"])
        return cls(**raw)
