"""MONAI's BasicUNet with the recipe of MONAI's 2D segmentation tutorial, trained to a wall-clock deadline (run by
``bench/peers.py`` in its own process).

The tutorial's recipe (``2d_segmentation/torch/unet_training_array.py``), with its UNet replaced by ``BasicUNet``
as the benchmark asks: every image scaled to [0, 1] (``ScaleIntensity``), random 96x96 crops and random 90-degree
rotations, Dice loss on the sigmoid output, Adam at 1e-3, batches of 4, validation every 2 epochs by
sliding-window inference (96x96 windows, 4 at a time) with the model of the best validation Dice kept, and the
sigmoid output thresholded at 0.5. Not annotated pixels (the label 255) are left out of the loss with MONAI's own
``MaskedDiceLoss`` (the tutorial's data have none). Training stops at the deadline (between steps); the test images
are then predicted with the best model and written as ``<name>.npy`` label images.

    python bench/peers_monai.py ARRAYS_DIR OUT_DIR --deadline UNIX_TIME [--seed 0]

``ARRAYS_DIR`` holds ``train/``, ``val/`` and ``test/`` with ``<name>_image.npy`` (H, W, C) and, for train and
val, ``<name>_labels.npy`` (H, W; 0, 1, 255 = not annotated).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from monai.inferers import sliding_window_inference
from monai.losses import DiceLoss, MaskedDiceLoss
from monai.networks.nets import BasicUNet
from monai.transforms import RandRotate90, RandSpatialCrop, ScaleIntensity
from monai.utils import set_determinism

ROI, BATCH, LR, VAL_EVERY = (96, 96), 4, 1e-3, 2


def load(folder: Path, labels: bool = True) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """(name, image (C, H, W) float32 scaled to [0, 1], labels (1, H, W) or None) of every image in ``folder``."""
    scale = ScaleIntensity()
    items = []
    for path in sorted(folder.glob("*_image.npy")):
        name = path.name[: -len("_image.npy")]
        image = np.load(path).astype(np.float32).transpose(2, 0, 1)
        label = np.load(folder / f"{name}_labels.npy")[None] if labels else None
        items.append((name, np.asarray(scale(image), dtype=np.float32), label))
    return items


def batches(train: list, rng: np.random.Generator):
    """Endless batches of 4 random 96x96 crops (with random 90-degree rotations) of shuffled training images."""
    crop, rotate = RandSpatialCrop(ROI, random_size=False), RandRotate90(prob=0.5, spatial_axes=(0, 1))
    while True:
        order = rng.permutation(len(train))
        for start in range(0, len(order) - BATCH + 1, BATCH):
            xs, ys = [], []
            for i in order[start:start + BATCH]:
                _, image, label = train[i]
                stacked = np.concatenate([image, label.astype(np.float32)])
                seed = int(rng.integers(2 ** 31))
                crop.set_random_state(seed), rotate.set_random_state(seed)
                out = np.asarray(rotate(crop(stacked)))
                xs.append(out[:-1]), ys.append(out[-1:])
            yield torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))


def predict(model: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """The thresholded sigmoid output (H, W) of sliding-window inference over ``image`` (C, H, W)."""
    with torch.no_grad():
        logits = sliding_window_inference(torch.from_numpy(image)[None], ROI, 4, model)
    return (torch.sigmoid(logits)[0, 0] > 0.5).numpy().astype(np.uint8)


def dice(pred: np.ndarray, label: np.ndarray) -> float:
    keep = label != 255
    p, t = pred[keep] == 1, label[keep] == 1
    total = p.sum() + t.sum()
    return 1.0 if total == 0 else float(2 * (p & t).sum() / total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("arrays", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--deadline", type=float, required=True, help="time.time() at which training stops")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    set_determinism(args.seed)
    train, val = load(args.arrays / "train"), load(args.arrays / "val")
    channels, masked = train[0][1].shape[0], any((t[2] == 255).any() for t in train)
    model = BasicUNet(spatial_dims=2, in_channels=channels, out_channels=1)
    loss_fn = MaskedDiceLoss(sigmoid=True) if masked else DiceLoss(sigmoid=True)
    optimizer = torch.optim.Adam(model.parameters(), LR)
    rng, best, best_state, epoch, steps = np.random.default_rng(args.seed), -1.0, None, 0, 0
    stream, per_epoch = batches(train, rng), max(1, len(train) // BATCH)
    while time.time() < args.deadline:
        model.train()
        for _ in range(per_epoch):
            x, y = next(stream)
            optimizer.zero_grad()
            keep = (y != 255).float()
            y = torch.where(y == 255, 0.0, y)
            loss = loss_fn(model(x), y, mask=keep) if masked else loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            steps += 1
            if time.time() >= args.deadline:
                break
        epoch += 1
        if epoch % VAL_EVERY == 0 or time.time() >= args.deadline:
            model.eval()
            score = float(np.mean([dice(predict(model, image), label[0]) for _, image, label in val]))
            if score > best:
                best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
            print(f"epoch {epoch}: val dice {score:.4f} (best {best:.4f})", flush=True)
    if best_state is not None:  # else no epoch ended before the deadline: the weights as they are
        model.load_state_dict(best_state)
    model.eval()
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    for name, image, _ in load(args.arrays / "test", labels=False):
        np.save(args.out / f"{name}.npy", predict(model, image))
    (args.out / "monai.json").write_text(json.dumps({"epochs": epoch, "steps": steps, "best_val_dice": best,
                                                     "predict_seconds": round(time.time() - started, 1)}))


if __name__ == "__main__":
    main()
