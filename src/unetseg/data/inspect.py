"""Dataset fingerprint: counts, sizes, channels, dtypes, classes, intensities, objects and problems.

:func:`inspect_dataset` loads a dataset in *collecting* mode (:func:`.layouts.scan_dataset`): every unpaired or
missing file, every unreadable file, size mismatch and bad mask value is listed under ``problems`` and the readable
samples are fingerprinted. Still raised (nothing can be fingerprinted): an unknown or undetectable layout, missing
top-level folders (``images/``, ``imagesTr/``, ...), an unreadable or incomplete ``dataset.json``, a missing VOC
split file. :func:`fingerprint` adds the problems it sees in the data itself: empty masks (no foreground), masks
that are all ignore (255), constant images, declared classes that never occur, channel counts or dtypes that differ
between images.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np

from .folder import FolderData

IGNORE = 255
PIXELS_PER_IMAGE = 4096  # intensity percentiles use a random subsample of at most this many pixels per image


def fingerprint(data: FolderData, problems: list[str] | None = None, layout: str | None = None,
                seed: int = 0) -> dict:
    """A JSON-serialisable summary of ``data`` (see the module docstring); ``problems`` found while loading are
    listed first."""
    rng = np.random.default_rng(seed)
    sizes: Counter[str] = Counter()
    channels: Counter[int] = Counter()
    dtypes: Counter[str] = Counter()
    class_pixels: Counter[int] = Counter()
    samples_per_class: Counter[int] = Counter()
    per_channel: dict[int, list[np.ndarray]] = {}
    objects: list[int] = []
    found = list(problems or [])
    for s in data.samples:
        h, w = s.image.shape[:2]
        sizes[f"{w}x{h}"] += 1
        image = s.image if s.image.ndim == 3 else s.image[:, :, None]
        c = image.shape[2]
        if c in (2, 4):
            image = image[:, :, : c - 1]  # alpha is dropped when training
        channels[c] += 1
        dtypes[str(s.image.dtype)] += 1
        flat = image.reshape(-1, image.shape[2])
        pick = flat if len(flat) <= PIXELS_PER_IMAGE else flat[rng.choice(len(flat), PIXELS_PER_IMAGE, replace=False)]
        for k in range(pick.shape[1]):
            per_channel.setdefault(k, []).append(pick[:, k].astype(np.float64))
        if flat.size and (flat == flat[0]).all():
            found.append(f"{s.image_path}: constant image (every pixel {flat[0].tolist()})")
        values, counts = np.unique(s.labels, return_counts=True)
        for v, n in zip(values.tolist(), counts.tolist()):
            class_pixels[int(v)] += int(n)
            samples_per_class[int(v)] += 1
        real = values[values != IGNORE] if data.num_classes <= IGNORE else values
        if real.size == 0:
            found.append(f"{s.mask_path}: {s.name}: every pixel is ignore ({IGNORE})")
        elif not (real > 0).any():
            found.append(f"{s.mask_path}: {s.name}: empty mask (background only)")
        if s.instances is not None:
            ids = np.unique(s.instances)
            objects.append(int((ids > 0).sum()))
    total = sum(class_pixels.values())
    classes = {
        str(v): {"pixels": n, "fraction": n / total if total else 0.0, "samples": samples_per_class[v],
                 **({"ignore": True} if v == IGNORE and data.num_classes <= IGNORE else {})}
        for v, n in sorted(class_pixels.items())
    }
    never = [k for k in range(data.num_classes) if k not in class_pixels]
    if never and data.samples:
        found.append(f"{data.root}: declared class(es) {never[:20]} never occur in the masks")
    if len(channels) > 1:
        found.append(f"{data.root}: images have different channel counts {dict(sorted(channels.items()))}")
    if len(dtypes) > 1:
        found.append(f"{data.root}: images have different dtypes {dict(sorted(dtypes.items()))}")
    intensity = {}
    for k, parts in sorted(per_channel.items()):
        v = np.concatenate(parts)
        p1, p50, p99 = np.percentile(v, [1, 50, 99])
        intensity[str(k)] = {"p1": float(p1), "p50": float(p50), "p99": float(p99),
                             "min": float(v.min()), "max": float(v.max()), "pixels_sampled": int(v.size)}
    fp = {
        "root": str(data.root),
        "layout": layout,
        "samples": len(data.samples),
        "num_classes": data.num_classes,
        "channels": data.channels,
        "image_sizes": dict(sizes.most_common()),
        "image_channels": {str(k): n for k, n in sorted(channels.items())},
        "dtypes": dict(sorted(dtypes.items())),
        "classes": classes,
        "intensity": intensity,
        "objects": None,
        "problems": found,
    }
    if objects:
        fp["objects"] = {"images": len(objects), "total": int(sum(objects)), "min": int(min(objects)),
                         "mean": float(np.mean(objects)), "max": int(max(objects)),
                         "per_image": {s.name: n for s, n in zip(
                             [s for s in data.samples if s.instances is not None], objects)}}
    return fp


def inspect_dataset(root: str | os.PathLike, layout: str = "auto", **kwargs) -> dict:
    """Load ``root`` collecting problems (keyword arguments as :func:`.layouts.load_dataset`) and fingerprint it."""
    from .layouts import scan_dataset

    data, problems, chosen = scan_dataset(root, layout, **kwargs)
    if data is None:
        return {"root": str(root), "layout": chosen, "samples": 0, "problems": problems}
    return fingerprint(data, problems, chosen)


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
    problems = fp.get("problems", [])
    lines.append(f"problems  {len(problems)}" + (":" if problems else " (none found)"))
    lines += [f"  - {p}" for p in problems[:max_problems]]
    if len(problems) > max_problems:
        lines.append(f"  ... and {len(problems) - max_problems} more (see the JSON)")
    return "\n".join(lines)


def write_fingerprint(fp: dict, path: str | os.PathLike) -> None:
    from ..fileio import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(fp, indent=2))
