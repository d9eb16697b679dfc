"""Statistics of the instance labels of a training set: what a rule for the training target could rest on.

    python bench/instance_stats.py ctc_fluo                  # gold truth of the training sequence 01
    python bench/instance_stats.py ctc_fluo --truth silver
    python bench/instance_stats.py dsb                       # DSB2018's training split

Prints, over the training images of ``bench/quality.py``'s protocol (read with unetseg's own loader, from
``--data`` or ../shared/data/<dataset>):

- the share of objects that touch another object (a pixel of a different object among the 8 neighbours of one of
  theirs: the contacts the border weight map is made for), over all objects and the median per image;
- the weight the class balance of the border weight map gives the foreground (background pixels / foreground
  pixels of an image, not annotated pixels left out): median and 90th percentile over the images;
- the objects' equivalent diameters (median, 10th and 90th percentile), to compare with the map's sigma (5 px).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

import quality

from unetseg.data.layouts import load_dataset
from unetseg.data.masks import touching_borders


def instance_stats(root: Path, split: str | None = None, truth: str | None = None) -> dict[str, float]:
    """The statistics above for the images of ``root`` that have instance labels (``split``: a sequence)."""
    options = {"split": split} if split else {}
    data = load_dataset(root, "auto", instances=True, truth=truth, **options)
    objects = touching = 0
    per_image, weights, diameters = [], [], []
    for sample in data.samples:
        if sample.instances is None:
            continue
        ids, sizes = np.unique(sample.instances[sample.instances > 0], return_counts=True)
        contact = sample.instances[touching_borders(sample.instances)]
        n_touching = np.unique(contact[contact > 0]).size
        objects, touching = objects + ids.size, touching + n_touching
        per_image.append(n_touching / max(ids.size, 1))
        foreground = int((sample.labels == 1).sum())
        weights.append(int((sample.labels == 0).sum()) / max(foreground, 1))
        diameters.extend(2 * np.sqrt(sizes / np.pi))
    return {"images": len(per_image), "objects": objects, "touching_share": touching / max(objects, 1),
            "touching_share_median_image": float(np.median(per_image)),
            "foreground_weight_median": float(np.median(weights)),
            "foreground_weight_p90": float(np.percentile(weights, 90)),
            "diameter_median": float(np.median(diameters)), "diameter_p10": float(np.percentile(diameters, 10)),
            "diameter_p90": float(np.percentile(diameters, 90))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=["ctc_fluo", "dsb"])
    parser.add_argument("--data", type=Path, help="the dataset folder (default ../shared/data/<dataset>)")
    parser.add_argument("--truth", help="ctc_fluo: gold (default), silver or gold+silver")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, _ = quality.prepare(args.dataset, args.data or Path(quality.DEFAULT_DATA[args.dataset]), Path(tmp))
        split = quality.CTC_TRAIN if args.dataset == "ctc_fluo" else None
        stats = instance_stats(train_dir, split, args.truth)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in stats.items()}, indent=1))


if __name__ == "__main__":
    main()
