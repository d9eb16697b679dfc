"""Figure of the U-Net weight map (Ronneberger et al. 2015, eq. 2 and Fig. 3) on a DSB2018 image.

Three panels: the image, its instance labels (one colour per nucleus) and the weight map
``w = w_c + w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` with a colour bar. The map is computed on the whole image and a
window of ``--crop`` pixels with the most touching nuclei is shown at full resolution (``--crop 0``: whole image).

    python bench/weightmap_figure.py                  # the default id (the one with most touching pairs)
    python bench/weightmap_figure.py --pick           # scan all label images for the most touching pairs first
    python bench/weightmap_figure.py --id <id> --crop 0
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

from unetseg.data.io import read_image
from unetseg.data.weightmap import unet_weight_map
from unetseg.fileio import atomic_path

ROOT = Path(__file__).resolve().parents[1]
# 696x520, 369 nuclei, 156 touching pairs (8-connectivity): the most of all 670 stage1_train images (see --pick)
DEFAULT_ID = "0ea221716cf13710214dcd331a61cea48308c3940df1d28cfc7fd817c83714e1"
NEIGHBOURS = ((0, 1), (1, 0), (1, 1), (1, -1))  # half of the 8-neighbourhood; the other half is symmetric


def touching_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    """Pairs (a, b), a < b, of different objects with 8-adjacent pixels."""
    pairs: set[tuple[int, int]] = set()
    height, width = labels.shape
    for dr, dc in NEIGHBOURS:
        a = labels[0:height - dr, max(0, -dc):width - max(0, dc)]
        b = labels[dr:height, max(0, dc):width - max(0, -dc)]
        touch = (a > 0) & (b > 0) & (a != b)
        if touch.any():
            lo, hi = np.minimum(a[touch], b[touch]), np.maximum(a[touch], b[touch])
            pairs.update(zip(lo.tolist(), hi.tolist()))
    return pairs


def touching_pixels(labels: np.ndarray) -> np.ndarray:
    """Boolean (H, W): object pixels 8-adjacent to a pixel of another object."""
    out = np.zeros(labels.shape, dtype=bool)
    height, width = labels.shape
    for dr, dc in NEIGHBOURS:
        rows_a, rows_b = slice(0, height - dr), slice(dr, height)
        cols_a, cols_b = slice(max(0, -dc), width - max(0, dc)), slice(max(0, dc), width - max(0, -dc))
        a, b = labels[rows_a, cols_a], labels[rows_b, cols_b]
        touch = (a > 0) & (b > 0) & (a != b)
        out[rows_a, cols_a] |= touch
        out[rows_b, cols_b] |= touch
    return out


def pick_id(data: Path) -> str:
    """The id whose label image has the most touching pairs of nuclei."""
    best = (-1, "")
    for path in sorted((data / "labels").glob("*.png")):
        count = len(touching_pairs(read_image(path).astype(np.int64)))
        best = max(best, (count, path.stem))
    return best[1]


def densest_window(mask: np.ndarray, size: int, step: int = 8) -> tuple[int, int]:
    """Top-left corner of the size x size window holding the most True pixels of ``mask`` (on a step grid)."""
    height, width = mask.shape
    integral = np.zeros((height + 1, width + 1), dtype=np.int64)
    integral[1:, 1:] = mask.cumsum(0).cumsum(1)
    tops = np.arange(0, max(height - size, 0) + 1, step)
    lefts = np.arange(0, max(width - size, 0) + 1, step)
    t, lf = np.meshgrid(tops, lefts, indexing="ij")
    b, r = np.minimum(t + size, height), np.minimum(lf + size, width)
    counts = integral[b, r] - integral[t, r] - integral[b, lf] + integral[t, lf]
    i, j = np.unravel_index(np.argmax(counts), counts.shape)
    return int(tops[i]), int(lefts[j])


def label_colours(count: int, seed: int = 0) -> ListedColormap:
    """Black for the background, then random bright colours, one per label value."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(0.25, 1.0, size=(count + 1, 3))
    colours[0] = 0.0
    return ListedColormap(colours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "dsb2018"))
    parser.add_argument("--id", default=DEFAULT_ID, help="image id (file stem in images/ and labels/)")
    parser.add_argument("--pick", action="store_true", help="use the id with the most touching nuclei")
    parser.add_argument("--crop", type=int, default=256, help="window shown, in pixels (0: whole image)")
    parser.add_argument("--w0", type=float, default=10.0)
    parser.add_argument("--sigma", type=float, default=5.0)
    parser.add_argument("--output", default=str(ROOT / "docs" / "figures" / "weightmap_dsb2018.png"))
    args = parser.parse_args()
    data = Path(args.data)
    image_id = pick_id(data) if args.pick else args.id

    image = read_image(data / "images" / f"{image_id}.png")
    image = image[..., :3] if image.ndim == 3 else image  # drop alpha
    labels = read_image(data / "labels" / f"{image_id}.png").astype(np.int64)
    started = time.perf_counter()
    weights = unet_weight_map(labels, w0=args.w0, sigma=args.sigma)
    seconds = time.perf_counter() - started
    n_objects, n_pairs = len(np.unique(labels)) - 1, len(touching_pairs(labels))
    print(f"{image_id}: {labels.shape[1]}x{labels.shape[0]}, {n_objects} nuclei, {n_pairs} touching pairs; "
          f"weight map in {seconds * 1000:.0f} ms, range {weights.min():.2f}..{weights.max():.2f}")

    height, width = labels.shape
    if args.crop and args.crop < max(height, width):
        top, left = densest_window(touching_pixels(labels), args.crop)
        window = (slice(top, top + args.crop), slice(left, left + args.crop))
        where = f"window x {left}..{left + args.crop - 1}, y {top}..{top + args.crop - 1}"
    else:
        window, where = (slice(None), slice(None)), "whole image"

    fig, axes = plt.subplots(1, 3, figsize=(12, 4.3), constrained_layout=True)
    axes[0].imshow(image[window], cmap="gray", interpolation="nearest")
    axes[0].set_title("image")
    axes[1].imshow(labels[window], cmap=label_colours(int(labels.max())), vmin=0, vmax=int(labels.max()),
                   interpolation="nearest")
    axes[1].set_title(f"instance labels ({n_objects} nuclei, {n_pairs} touching pairs)")
    shown = axes[2].imshow(weights[window], cmap="jet", interpolation="nearest")
    axes[2].set_title(f"weight map (w0={args.w0:g}, sigma={args.sigma:g} px)")
    fig.colorbar(shown, ax=axes[2], fraction=0.046, pad=0.02)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"DSB2018 {image_id[:12]}..., {where}", fontsize=10)
    output = Path(args.output)
    with atomic_path(output) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    print(f"wrote {output} ({output.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
