"""Where the tools of a ``bench/peers.py`` run differ: its per-image metrics, averaged over groups of DSB2018 images.

    python bench/peers_breakdown.py bench_runs/peers/dsb-<time>/peers.json [--data ../shared/data/dsb2018]

DSB2018 mixes imaging modalities; the groups follow from each test image's pixels (read from ``DATA/images``):
``colour`` (stained tissue: the channels differ), ``light background`` (grey, median above mid-grey: brightfield)
and ``fluorescence`` (grey, dark background). Prints one table: every per-image metric of every tool, per group.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

GROUPS = ("fluorescence", "light background", "colour")


def modality(path: Path) -> str:
    """The group of one image: ``colour`` when its RGB channels differ, else by its median grey value."""
    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)
    if np.abs(rgb[..., 0] - rgb[..., 1]).mean() + np.abs(rgb[..., 1] - rgb[..., 2]).mean() > 2:
        return "colour"
    return "light background" if np.median(rgb[..., 0]) > 127 else "fluorescence"


def breakdown(report: dict, images: Path) -> dict[str, dict[str, dict[str, float]]]:
    """{group: {tool: {metric: mean over the group's images}}}, with ``images`` the count, for every tool."""
    tools = report["tools"]
    first = next(iter(tools.values()))["scores"]["per_image"]
    groups = {row["name"]: modality(images / f"{row['name']}.png") for row in first}
    result: dict[str, dict[str, dict[str, float]]] = {}
    for group in GROUPS:
        names = {name for name, g in groups.items() if g == group}
        if not names:
            continue
        result[group] = {}
        for tool, values in tools.items():
            rows = [r for r in values["scores"]["per_image"] if r["name"] in names]
            keys = [k for k in rows[0] if k != "name"]
            result[group][tool] = {"images": len(rows)} | {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
    return result


def table(result: dict[str, dict[str, dict[str, float]]]) -> str:
    """A Markdown table: a row per group and metric, a column per tool (the best value in bold)."""
    tools = list(next(iter(result.values())))
    lines = ["| group (images) | metric | " + " | ".join(tools) + " |", "|---|---|" + "---|" * len(tools)]
    for group, by_tool in result.items():
        metrics = [k for k in by_tool[tools[0]] if k != "images"]
        for metric in metrics:
            values = [by_tool[t][metric] for t in tools]
            best = min(values) if "error" in metric else max(values)
            cells = [f"**{v:.4f}**" if v == best else f"{v:.4f}" for v in values]
            lines.append(f"| {group} ({by_tool[tools[0]]['images']}) | {metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peers_json", type=Path)
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018"))
    args = parser.parse_args()
    report = json.loads(args.peers_json.read_text())
    print(table(breakdown(report, args.data / "images")))


if __name__ == "__main__":
    main()
