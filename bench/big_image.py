"""Bounded-memory prediction of huge images: peak resident memory and time for 4096^2 and 16384^2 TIFFs.

Generates synthetic nuclei TIFFs of each size (tiled, written region by region), builds a `unet_bn` checkpoint of
the given width (untrained: the cost of prediction does not depend on the weights), and predicts each TIFF with
`unetseg predict --block` in a fresh process, reading the process's peak resident memory (VmHWM) and wall time.
Targets: peak memory of the large case within 1.5x of the small one, time within 1.2x of the pixel ratio.

    python bench/big_image.py --sizes 4096 16384 --base-channels 8
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import machine
from unetseg.data.synthetic import make_nuclei_image
from unetseg.checkpoint import Checkpoint, save_checkpoint
from unetseg.inference.bigimage import TiledTiffWriter
from unetseg.models import create_model

CHILD = """
import json, sys, time
from unetseg.inference.files import predict
started = time.perf_counter()
predict(sys.argv[1], [sys.argv[2]], sys.argv[3], device="cpu", block=int(sys.argv[4]), halo=int(sys.argv[5]),
        tile=int(sys.argv[6]), batch_size=4)
seconds = time.perf_counter() - started
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(json.dumps({"seconds": seconds, "peak_rss_mib": hwm / 1024}))
"""


def write_image(path: Path, size: int, tile: int = 512) -> None:
    """A size x size uint8 TIFF made of synthetic nuclei tiles, written region by region."""
    rng = np.random.default_rng(0)
    patterns = [make_nuclei_image(rng, tile, tile, n_nuclei=(40, 60))[0] for _ in range(4)]
    with TiledTiffWriter(path, (size, size), np.uint8, tile=(256, 256)) as writer:
        for i, y in enumerate(range(0, size, tile)):
            for j, x in enumerate(range(0, size, tile)):
                writer.write(y, x, patterns[(i + j) % 4][: size - y, : size - x])  # a last tile cut to size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384])
    parser.add_argument("--base-channels", type=int, default=8)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--halo", type=int, default=64)
    parser.add_argument("--tile", type=int, default=512)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.manual_seed(0)
        model = create_model("unet_bn", in_channels=1, num_classes=1, base_channels=args.base_channels)
        save_checkpoint(tmp / "model.safetensors", Checkpoint(
            model_config=model.config, num_classes=2, class_names=["background", "nucleus"],
            normalization={"mode": "scale", "low": 1.0, "high": 99.8}, run_config={}, epoch=0,
            model_state=model.state_dict()))
        for size in args.sizes:
            image = tmp / f"image{size}.tif"
            started = time.perf_counter()
            write_image(image, size)
            generate = time.perf_counter() - started
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(tmp / "model.safetensors"), str(image), str(tmp / f"out{size}"),
                 str(args.block), str(args.halo), str(args.tile)], capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"size": size, "pixels": size * size, **result, "generate_seconds": round(generate, 1)})
            print(json.dumps(rows[-1]), flush=True)
            image.unlink()
    small, large = rows[0], rows[-1]
    summary = {
        "machine": machine(), "date": time.strftime("%Y-%m-%d"), "model": f"unet_bn base {args.base_channels}",
        "block": args.block, "halo": args.halo, "tile": args.tile, "rows": rows,
        "memory_ratio": large["peak_rss_mib"] / small["peak_rss_mib"],
        "time_ratio": large["seconds"] / small["seconds"], "pixel_ratio": large["pixels"] / small["pixels"],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
