"""The Cell Tracking Challenge layout with partial annotations, the annotated-region masks of the folder layout, and
the challenge's SEG measure: tiny synthetic datasets written with tifffile (LZW, as the challenge writes them) and,
when present, the shared Fluo-N2DL-HeLa sample read in place."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image
from scipy import ndimage

from unetseg.data.inspect import format_fingerprint, inspect_dataset
from unetseg.data.io import DataError
from unetseg.data.layouts import detect_layout, load_dataset
from unetseg.data.layouts.ctc import MARGIN, annotation_counts, frame_truth, seeded_regions
from unetseg.data.masks import IGNORE
from unetseg.engine.evaluate import evaluate_folders, format_report
from unetseg.metrics import instance_metrics, seg_score

from conftest import shared_data

HELA = shared_data() / "ctc_fluo_n2dl_hela"
needs_hela = pytest.mark.skipif(not (HELA / "01_GT" / "TRA").is_dir(),
                                reason="the shared Cell Tracking Challenge sample (ctc_fluo_n2dl_hela) is not present")

# --------------------------------------------------------------------------------------------- a synthetic frame
# 32 x 40 pixels, three bright 8 x 8 cells on a dark background: A (rows 4-11, cols 4-11), B (rows 4-11, cols
# 24-31), C (rows 20-27, cols 12-19). Gold labels only A (id 7); the tracking markers (3 x 3 at each centre) mark
# all three (track ids 1, 2, 3); silver has all three (ids 1, 2, 3), with B one column narrower (cols 24-30).
H, W = 32, 40
CELLS = {"A": (slice(4, 12), slice(4, 12)), "B": (slice(4, 12), slice(24, 32)), "C": (slice(20, 28), slice(12, 20))}


def cell(name: str) -> np.ndarray:
    out = np.zeros((H, W), bool)
    out[CELLS[name]] = True
    return out


def frame_arrays() -> dict[str, np.ndarray]:
    image = np.full((H, W), 100, np.uint16)
    markers, silver = np.zeros((H, W), np.uint16), np.zeros((H, W), np.uint16)
    for i, name in enumerate("ABC", start=1):
        image[cell(name)] = 1000
        rows, cols = CELLS[name]
        markers[rows.start + 3:rows.start + 6, cols.start + 3:cols.start + 6] = i
        silver[cell(name)] = i
    silver[4:12, 31] = 0  # silver's B is one column narrower
    gold = np.where(cell("A"), 7, 0).astype(np.uint16)
    return {"image": image, "gold": gold, "markers": markers, "silver": silver}


def write_tif(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array, compression="lzw", photometric="minisblack")


def write_ctc(root: Path, seq: str = "01", frames: tuple[int, ...] = (0, 1, 2), gold: tuple[int, ...] = (1,),
              markers: bool = True, silver: tuple[int, ...] = (0, 1, 2)) -> Path:
    """A CTC sequence: raw frames, gold for ``gold`` frames (with tracking markers), silver for ``silver``."""
    a = frame_arrays()
    for t in frames:
        write_tif(root / seq / f"t{t:03d}.tif", a["image"])
    for t in gold:
        write_tif(root / f"{seq}_GT" / "SEG" / f"man_seg{t:03d}.tif", a["gold"])
        if markers:
            write_tif(root / f"{seq}_GT" / "TRA" / f"man_track{t:03d}.tif", a["markers"])
    for t in silver:
        write_tif(root / f"{seq}_ST" / "SEG" / f"man_seg{t:03d}.tif", a["silver"])
    return root


def widened(mask: np.ndarray) -> np.ndarray:
    """``mask`` widened by MARGIN pixels in city-block distance (4-connected steps)."""
    return ndimage.binary_dilation(mask, iterations=MARGIN)


# -------------------------------------------------------------------------------------------- layout and truths

def test_gold_frames_with_unannotated_cells_ignored(tmp_path):
    root = write_ctc(tmp_path / "ctc")
    assert detect_layout(root) == "ctc"
    data = load_dataset(root)
    assert [s.name for s in data.samples] == ["01/t001"]  # only the frame with gold truth
    assert data.num_classes == 2 and data.ignore_index == IGNORE and data.channels == 1
    s = data.samples[0]
    assert s.image.dtype == np.uint16 and s.image[5, 5] == 1000  # the LZW frame read as stored
    assert (s.labels[cell("A")] == 1).all() and set(np.unique(s.instances)) == {0, 7}
    # B's region is its silver object (cols 24-30), C's likewise; both widened by MARGIN px and ignored
    silver_bc = cell("C") | (cell("B") & (np.arange(W) < 31))
    assert np.array_equal(s.labels == IGNORE, widened(silver_bc) & ~cell("A"))
    assert s.labels[4, 31] == IGNORE and s.labels[4, 30 + MARGIN] == IGNORE and s.labels[4, 31 + MARGIN] == 0
    assert s.labels[20, 12 - MARGIN] == IGNORE and s.labels[20, 11 - MARGIN] == 0 and s.labels[0, 0] == 0


def test_without_silver_the_regions_come_from_a_seeded_watershed():
    a = frame_arrays()
    labels, instances = frame_truth(a["image"], a["gold"], None, a["markers"], "gold")
    # each unannotated marker floods its own cell; the smoothing (sigma 1 px) makes the pixels that share a side
    # with a cell bright enough for the foreground estimate too (those at a corner are not)
    region = ndimage.binary_dilation(cell("B") | cell("C"))
    assert np.array_equal(seeded_regions(a["image"], a["markers"]) > 1, region)
    assert np.array_equal(labels == IGNORE, widened(region) & ~cell("A"))
    assert np.array_equal(labels == 1, cell("A")) and np.array_equal(instances, a["gold"].astype(np.int32))


def test_without_markers_silver_tells_the_unannotated_cells_and_without_both_gold_is_complete():
    a = frame_arrays()
    labels, _ = frame_truth(a["image"], a["gold"], a["silver"], None, "gold")
    assert np.array_equal(labels == IGNORE, widened(cell("C") | (cell("B") & (np.arange(W) < 31))) & ~cell("A"))
    labels, _ = frame_truth(a["image"], a["gold"], None, None, "gold")
    assert set(np.unique(labels)) == {0, 1}


def test_silver_and_gold_plus_silver(tmp_path):
    root = write_ctc(tmp_path / "ctc")
    silver = load_dataset(root, truth="silver")
    assert [s.name for s in silver.samples] == ["01/t000", "01/t001", "01/t002"] and silver.ignore_index is None
    a = frame_arrays()
    for s in silver.samples:  # complete: every silver object is a cell, nothing ignored
        assert np.array_equal(s.labels, (a["silver"] > 0).astype(np.uint8))
        assert np.array_equal(s.instances, a["silver"].astype(np.int32))
    both = load_dataset(root, truth="gold+silver")
    assert [s.name for s in both.samples] == ["01/t000", "01/t001", "01/t002"]
    merged = both.samples[1]  # gold A (id 7), silver B and C added with ids above gold's: 7 + 2, 7 + 3
    assert set(np.unique(merged.labels)) == {0, 1} and both.ignore_index is None
    assert np.array_equal(merged.instances, np.where(cell("A"), 7, a["silver"] + 7 * (a["silver"] > 0)))


def test_gold_plus_silver_ignores_the_cells_silver_misses_too():
    a = frame_arrays()
    silver = np.where(cell("C"), 0, a["silver"])  # silver misses C
    labels, instances = frame_truth(a["image"], a["gold"], silver, a["markers"], "gold+silver")
    # C's region from the watershed: the cell and the pixels sharing a side with it (see the test above)
    assert np.array_equal(labels == IGNORE, widened(ndimage.binary_dilation(cell("C"))) & (instances == 0))
    assert set(np.unique(instances)) == {0, 7, 9}  # A, and silver's B (id 2 + 7)


def test_annotated_regions_off_teaches_unannotated_cells_as_background(tmp_path):
    data = load_dataset(write_ctc(tmp_path / "ctc"), annotated_regions=False)
    assert data.ignore_index is None and np.array_equal(data.samples[0].labels, cell("A").astype(np.uint8))


def test_sequences_split_and_folders(tmp_path):
    root = write_ctc(tmp_path / "ctc")
    write_ctc(root, "02", frames=(5, 6), gold=(6,), silver=(5, 6))
    assert [s.name for s in load_dataset(root).samples] == ["01/t001", "02/t006"]
    assert [s.name for s in load_dataset(root, split="02").samples] == ["02/t006"]
    assert [s.name for s in load_dataset(root, split="02, 01").samples] == ["02/t006", "01/t001"]
    assert [s.name for s in load_dataset(root / "02").samples] == ["02/t006"]  # a sequence folder
    assert [s.name for s in load_dataset(root / "02_ST").samples] == ["02/t005", "02/t006"]  # its silver truth
    assert detect_layout(root / "01") == detect_layout(root / "01_GT") == "ctc"
    with pytest.raises(DataError, match=r"no sequence 03 with a truth folder; the sequences are 01, 02"):
        load_dataset(root, split="03")
    with pytest.raises(DataError, match=r"02_ST holds the silver truth, but truth 'gold' was asked for"):
        load_dataset(root / "02_ST", truth="gold")
    with pytest.raises(DataError, match=r"truth 'bronze' is not a Cell Tracking Challenge truth; expected one of "
                                        r"gold, silver, gold\+silver"):
        load_dataset(root, truth="bronze")


def test_problems_are_named(tmp_path):
    root = write_ctc(tmp_path / "ctc", frames=(0, 2), gold=(1, 2))  # gold frame 1 has no raw frame
    with pytest.raises(DataError, match=r"man_seg001\.tif: no raw frame t001\.tif in .*01; expected the frame"):
        load_dataset(root)
    root = write_ctc(tmp_path / "small", gold=(1,))
    write_tif(root / "01_GT" / "SEG" / "man_seg001.tif", np.zeros((H, W - 1), np.uint16))
    with pytest.raises(DataError, match=r"man_seg001\.tif: label image is 39x32, its image 40x32"):
        load_dataset(root)
    bare = tmp_path / "bare"
    write_tif(bare / "01" / "t000.tif", frame_arrays()["image"])
    with pytest.raises(DataError, match=r"sequences \(01\) without truth: expected 01_GT/SEG/man_segTTT\.tif"):
        load_dataset(bare)
    only_silver = write_ctc(tmp_path / "st", gold=())
    assert len(load_dataset(only_silver).samples) == 3  # no gold anywhere: silver by default
    with pytest.raises(DataError, match=r"no frame of sequence\(s\) 01 has a gold segmentation .* try --truth silver"):
        load_dataset(only_silver, truth="gold")


def test_inspect_reports_annotated_cells_per_frame(tmp_path):
    root = write_ctc(tmp_path / "ctc")
    assert annotation_counts(root) == {"01/t001": {"cells": 3, "annotated": 1, "unannotated": 2, "gold_objects": 1}}
    fp = inspect_dataset(root)
    assert fp["layout"] == "ctc" and fp["annotations"]["01/t001"]["annotated"] == 1
    text = format_fingerprint(fp)
    assert "01/t001: 1 of 3 cells annotated" in text and "annotated 1 of 3 cells in 1 frames (0 complete" in text


# ----------------------------------------------------------------------------------- folder: annotated regions

def png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def region_data(root: Path) -> Path:
    mask = np.zeros((10, 12), np.uint8)
    mask[2:5, 2:5] = 1
    region = np.zeros((10, 12), np.uint8)
    region[:, :6] = 1  # the left half is annotated
    for stem in ("a", "b"):
        png(root / "images" / f"{stem}.png", np.arange(120).reshape(10, 12))
        png(root / "masks" / f"{stem}.png", mask)
    png(root / "regions" / "a.png", region)  # b has none: annotated everywhere
    return root


def test_folder_regions_mark_unannotated_pixels(tmp_path):
    data = load_dataset(region_data(tmp_path / "d"))
    a, b = data.samples
    assert data.ignore_index == IGNORE and data.num_classes == 2
    expected = np.zeros((10, 12), np.uint8)
    expected[2:5, 2:5] = 1
    expected[:, 6:] = IGNORE
    assert np.array_equal(a.labels, expected) and set(np.unique(b.labels)) == {0, 1}
    assert load_dataset(tmp_path / "d", annotated_regions=False).ignore_index is None
    assert set(np.unique(load_dataset(tmp_path / "d", ignore_index=200).samples[0].labels)) == {0, 1, 200}


def test_folder_regions_of_a_stack(tmp_path):
    root = tmp_path / "s"
    masks = np.zeros((3, 10, 12), np.uint8)
    masks[:, 2:5, 2:5] = 1
    write_tif(root / "images" / "v.tif", np.arange(360, dtype=np.uint16).reshape(3, 10, 12))
    write_tif(root / "masks" / "v.tif", masks)
    region = np.ones((10, 12), np.uint8)
    region[:, 8:] = 0
    png(root / "regions" / "v.png", region)  # one page: the region of every page
    data = load_dataset(root)
    assert [s.name for s in data.samples] == ["v_000", "v_001", "v_002"] and data.ignore_index == IGNORE
    assert all((s.labels[:, 8:] == IGNORE).all() and (s.labels[2:5, 2:5] == 1).all() for s in data.samples)
    (root / "regions" / "v.png").unlink()
    write_tif(root / "regions" / "v.tif", np.ones((2, 10, 12), np.uint8))
    with pytest.raises(DataError, match=r"v\.tif: an annotated-region stack of 2 pages for 3 image page\(s\)"):
        load_dataset(root)


def test_folder_region_problems(tmp_path):
    root = region_data(tmp_path / "d")
    png(root / "regions" / "c.png", np.ones((10, 12)))
    png(root / "regions" / "b.png", np.ones((9, 12)))
    with pytest.raises(DataError) as err:
        load_dataset(root)
    assert "c.png: an annotated-region mask without an image" in str(err.value)
    assert "b.png: annotated region size 12x9 differs from its image" in str(err.value)
    three = region_data(tmp_path / "k")
    png(three / "masks" / "a.png", np.eye(10, 12) * 2)  # classes 0, 1, 2 ... and the region's 255 is not one
    png(three / "masks" / "b.png", np.eye(10, 12))
    assert set(np.unique(load_dataset(three).samples[0].labels)) == {0, 2, IGNORE}
    with pytest.raises(DataError, match=r"ignore value 1, which is one of the 3 classes"):
        load_dataset(three, ignore_index=1)


# ------------------------------------------------------------------------------------------------- SEG measure

def row(*segments: tuple[int, int, int], width: int = 40) -> np.ndarray:
    """A (1, width) label image; each segment (label, first column, last column) inclusive."""
    out = np.zeros((1, width), dtype=np.int64)
    for label, a, b in segments:
        out[0, a:b + 1] = label
    return out


def test_seg_by_hand():
    # reference R1 = cols 0-9 (10 px), R2 = 12-21 (10 px), R3 = 24-33 (10 px), R4 = 36-39 (4 px)
    true = row((1, 0, 9), (2, 12, 21), (3, 24, 33), (4, 36, 39))
    # R1 matched: S = cols 2-11 covers 8 of 10 (> half): J = 8 / 12
    # R2 covered less than half: S = cols 17-21 covers 5 of 10 (exactly half is not more than half): 0
    # R3 split: S = 24-29 (6 px, 60% of R3: J = 6 / 10) and S' = 30-33 (4 px): the larger piece matches
    # R4 missed: 0; a predicted object with no reference (none here) would change nothing
    pred = row((5, 2, 11), (6, 17, 21), (7, 24, 29), (8, 30, 33))
    s = seg_score(pred, true)
    assert s["jaccard"] == pytest.approx([8 / 12, 0.0, 0.6, 0.0])
    assert s["seg"] == pytest.approx((8 / 12 + 0.6) / 4) and (s["n_ref"], s["matched"]) == (4, 2)
    assert s["jaccard_sum"] == pytest.approx(8 / 12 + 0.6)
    # an even split (5 + 5 of 10) matches neither piece
    assert seg_score(row((1, 0, 4), (2, 5, 9)), row((1, 0, 9)))["seg"] == 0.0
    # a merge: S covers R1 and R2 (10 + 10 of 24 px): each is covered fully, J = 10 / 24 for both
    assert seg_score(row((1, 0, 23)), row((1, 0, 9), (2, 14, 23)))["jaccard"] == pytest.approx([10 / 24] * 2)
    m = instance_metrics(pred, true)
    assert m["seg"] == pytest.approx(s["seg"]) and m["seg_jaccard_sum"] == pytest.approx(s["jaccard_sum"])
    nothing = seg_score(row((1, 0, 3)), np.zeros((1, 40), np.int64))
    assert math.isnan(nothing["seg"]) and nothing["n_ref"] == 0  # no reference object: no SEG
    # a predicted object where the reference has none (cols 34-35) changes nothing (partial annotations)
    assert seg_score(np.where(np.arange(40) // 2 == 17, 9, pred), true)["seg"] == pytest.approx(s["seg"])


def write16(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint16)).save(path)


def test_evaluate_reports_seg_pooled_over_objects(tmp_path, capsys):
    # image a: one true object, predicted exactly (J 1); image b: three true objects, predictions J 0, 0, 0.5
    true_a, true_b = row((1, 0, 9)), row((1, 0, 3), (2, 10, 13), (3, 20, 27))
    # b: object 1 (cols 0-3) covered 2 of 4 px (not more than half): 0; object 2 (10-13) missed: 0; object 3
    # (20-27) split 5 + 3 px: the 5-px piece covers more than half, J = 5 / 8
    pred_a, pred_b = true_a, row((1, 0, 1), (2, 20, 24), (3, 25, 27))
    for stem, p, t in (("a", pred_a, true_a), ("b", pred_b, true_b)):
        write16(tmp_path / "pred" / f"{stem}.png", p)
        png(tmp_path / "data" / "masks" / f"{stem}.png", (t > 0) * 255)
        write16(tmp_path / "data" / "labels" / f"{stem}.png", t)
    report = evaluate_folders(tmp_path / "pred", tmp_path / "data", truth_instances=tmp_path / "data" / "labels")
    inst = report["instances"]
    assert inst["per_image"]["a"]["seg"] == 1.0 and inst["per_image"]["b"]["seg"] == pytest.approx(5 / 8 / 3)
    assert inst["seg"] == pytest.approx((1 + 5 / 8) / 4)  # the challenge's pooling: over all true objects
    assert inst["mean_per_image"]["seg"] == pytest.approx((1 + 5 / 24) / 2)
    text = format_report(report)
    assert re.search(r"\baji\s+seg\s+hd95\b", text)  # a column of the instance table
    assert f"SEG (Cell Tracking Challenge, mean Jaccard over the 4 true objects): {(1 + 5 / 8) / 4:.4f}" in text


def test_evaluate_against_a_ctc_sequence_leaves_unannotated_cells_out(tmp_path):
    root = write_ctc(tmp_path / "ctc")
    # predicted: A exactly, B exactly (unannotated in gold: left out of AP), and a false object in the background
    objects = np.where(cell("A"), 1, np.where(cell("B"), 2, 0))
    objects[28:31, 30:34] = 3
    for t in (0, 1, 2):
        write16(tmp_path / "pred" / f"t{t:03d}_instances.png", objects)
        png(tmp_path / "pred" / f"t{t:03d}.png", (objects > 0) * 255)
    report = evaluate_folders(tmp_path / "pred", root / "01", instances=True)
    one = report["instances"]["per_image"]["01/t001"]
    assert one["seg"] == 1.0 and (one["n_true"], one["n_pred"], one["tp_50"], one["fp_50"]) == (1, 2, 1, 1)
    assert report["instances"]["truth_source"] == "the truth's objects"
    # pixels: A is TP (64), the false object FP (12); B and C are ignored -> foreground IoU 64 / 76
    assert report["per_image"]["01/t001"]["iou"][1] == pytest.approx(64 / 76)
    # against the silver truth (all three frames): A J 1, B (silver 56 px inside the predicted 64) J 56 / 64, C 0
    silver = evaluate_folders(tmp_path / "pred", root / "01_ST", instances=True)["instances"]
    assert sorted(silver["per_image"]) == ["01/t000", "01/t001", "01/t002"]
    assert silver["seg"] == pytest.approx((1 + 56 / 64) / 3)


@needs_hela
def test_shared_sample_annotation_counts_match_the_raw_files():
    counts = annotation_counts(HELA)
    assert len(counts) == 36 and counts["01/t012"]["annotated"] == 2 and counts["01/t012"]["cells"] == 57
    for seq, t in (("01", 12), ("01", 13), ("01", 52), ("02", 87)):
        seg = tifffile.imread(HELA / f"{seq}_GT" / "SEG" / f"man_seg{t:03d}.tif")
        tra = tifffile.imread(HELA / f"{seq}_GT" / "TRA" / f"man_track{t:03d}.tif")
        with_label = sum(bool((seg[tra == m] > 0).any()) for m in np.unique(tra) if m)
        without = len(np.unique(tra[tra > 0])) - with_label
        c = counts[f"{seq}/t{t:03d}"]
        assert (c["annotated"], c["unannotated"]) == (with_label, without)


@needs_hela
def test_shared_sample_loads_with_ignored_unannotated_cells():
    assert detect_layout(HELA) == "ctc"
    data = load_dataset(HELA, split="02")
    assert len(data.samples) == 8 and data.ignore_index == IGNORE
    s = next(s for s in data.samples if s.name == "02/t087")
    seg = tifffile.imread(HELA / "02_GT" / "SEG" / "man_seg087.tif")
    tra = tifffile.imread(HELA / "02_GT" / "TRA" / "man_track087.tif")
    assert (s.labels[seg > 0] == 1).all()  # annotated cells are foreground
    unannotated = [m for m in np.unique(tra) if m and not (seg[tra == m] > 0).any()]
    assert len(unannotated) == 362 - 54
    assert (s.labels[np.isin(tra, unannotated)] == IGNORE).all()  # every unannotated cell's marker is ignored
    silver = load_dataset(HELA, split="02", truth="silver")
    st = tifffile.imread(HELA / "02_ST" / "SEG" / "man_seg087.tif")
    t087 = next(s for s in silver.samples if s.name == "02/t087")
    assert silver.ignore_index is None and np.array_equal(t087.labels, (st > 0).astype(np.uint8))
    json.dumps(annotation_counts(HELA / "02"))  # a sequence folder reports its own frames, JSON-serialisable


def test_training_leaves_the_unannotated_cells_out(tmp_path):
    from unetseg import train
    from unetseg.config import load_config

    from conftest import tiny_config

    root = write_ctc(tmp_path / "ctc", frames=(0, 1, 2, 3), gold=(0, 1, 2, 3), silver=())
    config = tiny_config(root, tmp_path / "runs", epochs=1)
    config.train.tune_prediction = False
    result = train(config, progress=False)
    assert np.isfinite(result.history[0]["train_loss"]) and np.isfinite(result.history[0]["val_loss"])
    assert load_config(result.run_dir / "config.yaml").data.ignore_index == IGNORE  # from the layout, via the plan


@pytest.mark.parametrize("truth, annotated_regions", [("gold", True), ("gold", False), ("silver", True),
                                                      ("gold+silver", True)])
def test_the_truth_options_reach_a_runs_data_loader(tmp_path, truth, annotated_regions):
    """`--truth` and `--no-annotated-regions` reach the loader a training run uses (engine.setup.load_datasets):
    the labels equal those load_dataset gives with the same options."""
    from unetseg import Config
    from unetseg.engine.setup import load_datasets

    root = write_ctc(tmp_path / "ctc", gold=(0, 1, 2))
    config = Config()
    config.data.train, config.data.truth, config.data.annotated_regions = str(root), truth, annotated_regions
    run_data, _ = load_datasets(config)
    direct = load_dataset(root, truth=truth, annotated_regions=annotated_regions)
    assert [s.name for s in run_data.samples] == [s.name for s in direct.samples]
    assert all(np.array_equal(a.labels, b.labels) for a, b in zip(run_data.samples, direct.samples))
    default = load_dataset(root)
    differs = any(not np.array_equal(a.labels, b.labels) for a, b in zip(direct.samples, default.samples))
    assert differs == (truth != "gold" or not annotated_regions)  # the options change the labels
