"""Dataset fingerprint: counts, sizes, channels, dtypes, classes, intensities, objects and problems.

:func:`inspect_dataset` loads a dataset in *collecting* mode (:func:`.layouts.scan_dataset`): every unpaired or
missing file, every unreadable file, size mismatch and bad mask value is listed under ``problems`` and the readable
samples are fingerprinted; so is every image that cannot be used (NaN or infinite pixels, larger than the pixel
limit, a TIFF stack without its mask stack, too small to segment), a stray mask value (a gap in the detected
classes) and a dataset without any foreground pixel. Still raised (nothing can be fingerprinted): an unknown or
undetectable layout, missing top-level folders (``images/``, ``imagesTr/``, ...), an unreadable or incomplete
``dataset.json``, a missing VOC split file. :func:`fingerprint` adds the problems it sees in the data itself: empty masks (no foreground), masks
that are all ignore (255), constant images, declared classes that never occur, channel counts or dtypes that differ
between images.
"""

from __future__ import annotations

import itertools
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..fileio import atomic_path
from .channels import drop_alpha, stored_channels
from .dataset import Sample, SegmentationData
from .layouts import LAYOUTS, has_alpha, scan_dataset
from .masks import IGNORE

PIXELS_PER_IMAGE = 4096  # intensity percentiles use a random subsample of at most this many pixels per image


@dataclass
class Tally:
    """What :func:`fingerprint` counts over the samples."""

    sizes: Counter[str] = field(default_factory=Counter)
    channels: Counter[int] = field(default_factory=Counter)
    dtypes: Counter[str] = field(default_factory=Counter)
    class_pixels: Counter[int] = field(default_factory=Counter)
    samples_per_class: Counter[int] = field(default_factory=Counter)
    per_channel: dict[int, list[np.ndarray]] = field(default_factory=dict)
    objects: list[tuple[str, int]] = field(default_factory=list)  # (sample, objects) with instance labels


def fingerprint(data: SegmentationData, problems: list[str] | None = None, layout: str | None = None,
                seed: int = 0) -> dict:
    """A JSON-serialisable summary of ``data`` (see the module docstring).

    Args:
        data: the dataset.
        problems: problems found while loading, listed first.
        layout: the layout ``data`` was read in (decides whether a 2nd/4th channel is alpha; None: it is).
        seed: seed of the pixel subsample behind the intensity percentiles.
    """
    rng = np.random.default_rng(seed)
    tally = Tally()
    found = list(problems or [])
    for s in data.samples:
        found += _count_sample(tally, s, data.num_classes, has_alpha(layout), rng)
    found += _dataset_problems(data, tally)
    return {
        "root": str(data.root),
        "layout": layout,
        "samples": len(data.samples),
        "num_classes": data.num_classes,
        "channels": data.channels,
        "image_sizes": dict(tally.sizes.most_common()),
        "image_channels": {str(k): n for k, n in sorted(tally.channels.items())},
        "dtypes": dict(sorted(tally.dtypes.items())),
        "classes": _classes(tally, data.num_classes),
        "intensity": _intensity(tally.per_channel),
        "objects": _objects(tally.objects),
        "problems": found,
    }


def _count_sample(tally: Tally, s: Sample, num_classes: int, alpha: bool, rng: np.random.Generator) -> list[str]:
    """Add one sample to ``tally``; returns the problems seen in it (constant image, empty or all-ignore mask)."""
    found = []
    h, w = s.image.shape[:2]
    tally.sizes[f"{w}x{h}"] += 1
    tally.channels[stored_channels(s.image)] += 1
    tally.dtypes[str(s.image.dtype)] += 1
    image = drop_alpha(s.image, alpha)  # alpha is dropped when training
    flat = image.reshape(-1, image.shape[2])
    pick = flat if len(flat) <= PIXELS_PER_IMAGE else flat[rng.choice(len(flat), PIXELS_PER_IMAGE, replace=False)]
    for k in range(pick.shape[1]):
        tally.per_channel.setdefault(k, []).append(pick[:, k].astype(np.float64))
    if flat.size and (flat == flat[0]).all():
        found.append(f"{s.image_path}: constant image (every pixel {flat[0].tolist()})")
    values, counts = np.unique(s.labels, return_counts=True)
    for v, n in zip(values.tolist(), counts.tolist()):
        tally.class_pixels[int(v)] += int(n)
        tally.samples_per_class[int(v)] += 1
    real = values[values != IGNORE] if num_classes <= IGNORE else values
    if real.size == 0:
        found.append(f"{s.mask_path}: {s.name}: every pixel is ignore ({IGNORE})")
    elif not (real > 0).any():
        found.append(f"{s.mask_path}: {s.name}: empty mask (background only)")
    if s.instances is not None:
        tally.objects.append((s.name, int((np.unique(s.instances) > 0).sum())))
    return found


def _dataset_problems(data: SegmentationData, tally: Tally) -> list[str]:
    """Declared classes that never occur, and channel counts or dtypes that differ between images."""
    found = []
    seen = {k for k in tally.class_pixels if 0 <= k < data.num_classes}
    never = list(itertools.islice((k for k in range(data.num_classes) if k not in seen), 20))  # fast for any count
    if never and data.samples:
        more = data.num_classes - len(seen) - len(never)
        found.append(f"{data.root}: declared class(es) {never}{f' (and {more} more)' if more > 0 else ''} never occur "
                     "in the masks")
    if len(tally.channels) > 1:
        found.append(f"{data.root}: images have different channel counts {dict(sorted(tally.channels.items()))}")
    if len(tally.dtypes) > 1:
        found.append(f"{data.root}: images have different dtypes {dict(sorted(tally.dtypes.items()))}")
    return found


def _classes(tally: Tally, num_classes: int) -> dict[str, dict]:
    """Pixels, pixel fraction and samples of every label value (the ignore value marked as such)."""
    total = sum(tally.class_pixels.values())
    return {
        str(v): {"pixels": n, "fraction": n / total if total else 0.0, "samples": tally.samples_per_class[v],
                 **({"ignore": True} if v == IGNORE and num_classes <= IGNORE else {})}
        for v, n in sorted(tally.class_pixels.items())
    }


def _intensity(per_channel: dict[int, list[np.ndarray]]) -> dict[str, dict]:
    """Percentiles 1/50/99, min and max of the sampled pixels of every channel."""
    intensity = {}
    for k, parts in sorted(per_channel.items()):
        v = np.concatenate(parts)
        p1, p50, p99 = np.percentile(v, [1, 50, 99])
        intensity[str(k)] = {"p1": float(p1), "p50": float(p50), "p99": float(p99),
                             "min": float(v.min()), "max": float(v.max()), "pixels_sampled": int(v.size)}
    return intensity


def _objects(per_image: list[tuple[str, int]]) -> dict | None:
    """Object counts per image and their summary; None without instance labels."""
    if not per_image:
        return None
    counts = [n for _, n in per_image]
    return {"images": len(counts), "total": int(sum(counts)), "min": int(min(counts)),
            "mean": float(np.mean(counts)), "max": int(max(counts)), "per_image": dict(per_image)}


def inspect_dataset(root: str | os.PathLike, layout: str = "auto", **kwargs) -> dict:
    """Load ``root`` collecting problems (keyword arguments as :func:`.layouts.load_dataset`) and fingerprint it.

    Returns:
        The fingerprint; without readable samples only root, layout, ``samples: 0`` and the problems.

    Raises:
        DataError: the errors that stop loading altogether (see :func:`.layouts.scan_dataset`).
    """
    data, problems, chosen = scan_dataset(root, layout, **kwargs)
    if data is None:
        return {"root": str(root), "layout": chosen, "samples": 0, "problems": problems}
    return {**fingerprint(data, problems, chosen), **annotation_report(root, chosen, kwargs.get("split"))}


def annotation_report(root: str | os.PathLike, layout: str, split: str | None = None) -> dict:
    """``{"annotations": {sample: {"cells", "annotated", ...}}}`` for a layout whose truth can be partial (one that
    registers an ``annotations`` function, e.g. ctc: gold labels matched to tracking markers); else ``{}``."""
    hook = LAYOUTS.get(layout).info.get("annotations") if layout in LAYOUTS else None
    counts = hook(Path(root), split) if hook is not None else None
    return {"annotations": counts} if counts else {}


def annotation_lines(counts: dict[str, dict[str, int]]) -> list[str]:
    """The per-sample annotation report: a total, then ``01/t012: 2 of 57 cells annotated`` per sample."""
    cells = sum(c["cells"] for c in counts.values())
    annotated = sum(c["annotated"] for c in counts.values())
    complete = sum(c["annotated"] == c["cells"] for c in counts.values())
    lines = [f"annotated {annotated} of {cells} cells in {len(counts)} frames ({complete} complete; a cell is "
             "annotated when its tracking marker lies on a gold label; the others are left out of training and "
             "scoring unless --no-annotated-regions)"]
    return lines + [f"  {name}: {c['annotated']} of {c['cells']} cells annotated" for name, c in counts.items()]


def format_fingerprint(fp: dict, max_problems: int = 50) -> str:
    """Human-readable text of a fingerprint."""
    lines = [f"dataset   {fp['root']}" + (f"  (layout {fp['layout']})" if fp.get("layout") else ""),
             f"samples   {fp['samples']}"]
    if fp.get("samples"):
        lines.append(f"classes   {fp['num_classes']}   channels {fp['channels']}")
        lines.append("sizes     " + ", ".join(f"{k} ({n})" for k, n in fp["image_sizes"].items()))
        lines.append("channels  " + ", ".join(f"{k}: {n}" for k, n in fp["image_channels"].items())
                     + "   dtypes " + ", ".join(f"{k}: {n}" for k, n in fp["dtypes"].items()))
        lines.append("class     pixels        fraction  samples")
        for v, c in fp["classes"].items():
            tag = "  (ignore)" if c.get("ignore") else ""
            lines.append(f"  {v:>5}   {c['pixels']:>12}  {c['fraction']:8.4f}  {c['samples']:>7}{tag}")
        lines.append("intensity channel: p1 / p50 / p99 (min..max, sampled pixels)")
        for k, i in fp["intensity"].items():
            lines.append(f"  {k}: {i['p1']:.4g} / {i['p50']:.4g} / {i['p99']:.4g}  "
                         f"({i['min']:.4g}..{i['max']:.4g}, {i['pixels_sampled']})")
        if fp.get("objects"):
            o = fp["objects"]
            lines.append(f"objects   per image min {o['min']}  mean {o['mean']:.1f}  max {o['max']}  "
                         f"(total {o['total']} in {o['images']} images)")
        if fp.get("annotations"):
            lines += annotation_lines(fp["annotations"])
    problems = fp.get("problems", [])
    lines.append(f"problems  {len(problems)}" + (":" if problems else " (none found)"))
    lines += [f"  - {p}" for p in problems[:max_problems]]
    if len(problems) > max_problems:
        lines.append(f"  ... and {len(problems) - max_problems} more (see the JSON)")
    return "\n".join(lines)


def write_fingerprint(fp: dict, path: str | os.PathLike) -> None:
    """Write a fingerprint as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(fp, indent=2))
