"""Dataset layouts (folder + suffix + TIFF stacks, dsb2018, nnunet, voc, cityscapes), the layout registry, detection,
formats, errors collected on loading."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from unetseg.data.channels import real_channels
from unetseg.data.inspect import inspect_dataset
from unetseg.data.io import (
    DataError,
    colour_mask_to_labels,
    files_by_stem,
    load_colormap,
    read_image,
    read_stack,
    to_channels,
)
from unetseg.data.layouts import LAYOUTS, Raw, Scan, detect_layout, has_alpha, load_dataset, scan_dataset
from unetseg.data.layouts.cityscapes import LABELS, TRAIN_ID_LUT

RNG = np.random.default_rng(0)


def png(path: Path, array: np.ndarray, palette: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if palette:
        image = Image.frombytes("P", (array.shape[1], array.shape[0]), np.ascontiguousarray(array).tobytes())
        image.putpalette([(i * 7) % 256 for i in range(768)])
    else:
        image = Image.fromarray(array)
    image.save(path)


def rgb(h=8, w=10):
    return RNG.integers(0, 255, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------- folder layout

def test_folder_with_mask_suffix(tmp_path):
    mask = np.zeros((8, 10), np.uint8)
    mask[2:5, 3:7] = 255
    png(tmp_path / "images" / "a.png", rgb())
    png(tmp_path / "masks" / "a_mask.png", mask)
    data = load_dataset(tmp_path, mask_suffix="_mask")
    assert [s.name for s in data.samples] == ["a"] and data.num_classes == 2
    np.testing.assert_array_equal(data.samples[0].labels, mask // 255)
    png(tmp_path / "images" / "b.png", rgb())
    with pytest.raises(DataError, match=r"images/b\.png has no mask.*<stem>_mask"):
        load_dataset(tmp_path, mask_suffix="_mask")


def test_folder_lists_every_unpaired_file(tmp_path):
    for n in "abc":
        png(tmp_path / "images" / f"{n}.png", rgb())
    png(tmp_path / "masks" / "a.png", np.zeros((8, 10), np.uint8))
    png(tmp_path / "masks" / "zz.png", np.zeros((8, 10), np.uint8))
    data, problems, layout = scan_dataset(tmp_path)
    assert layout == "folder" and len(data.samples) == 1
    assert any("images/b.png has no mask" in p for p in problems)
    assert any("images/c.png has no mask" in p for p in problems)
    assert any("masks/zz.png has no image" in p for p in problems)


def test_tiff_stack_16bit(tmp_path):
    stack = RNG.integers(0, 65535, (5, 12, 14), dtype=np.uint16)
    labels = np.zeros((5, 12, 14), np.uint8)
    labels[:, 3:8, 4:9] = 255
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    tifffile.imwrite(tmp_path / "images" / "vol.tif", stack, photometric="minisblack")
    tifffile.imwrite(tmp_path / "masks" / "vol.tif", labels, photometric="minisblack")
    np.testing.assert_array_equal(read_stack(tmp_path / "images" / "vol.tif"), stack)
    data = load_dataset(tmp_path)
    assert [s.name for s in data.samples] == [f"vol_{i:03d}" for i in range(5)]
    assert data.samples[3].image.dtype == np.uint16
    np.testing.assert_array_equal(data.samples[3].image, stack[3])
    np.testing.assert_array_equal(data.samples[3].labels, labels[3] // 255)
    assert data.num_classes == 2 and data.channels == 1
    tifffile.imwrite(tmp_path / "masks" / "vol.tif", labels[:4], photometric="minisblack")
    with pytest.raises(DataError, match=r"masks/vol\.tif: mask stack has 4 pages.*has 5"):
        load_dataset(tmp_path)


def test_read_stack_single_image(tmp_path):
    png(tmp_path / "x.png", rgb())
    assert read_stack(tmp_path / "x.png").shape == (1, 8, 10, 3)


def test_rgba_png_alpha_dropped_with_note(tmp_path, caplog):
    from unetseg.data import io

    rgba = np.dstack([rgb(), np.full((8, 10), 255, np.uint8)])
    png(tmp_path / "images" / "a.png", rgba)
    png(tmp_path / "masks" / "a.png", np.eye(8, 10, dtype=np.uint8))
    data = load_dataset(tmp_path, num_classes=2)
    assert data.samples[0].image.shape == (8, 10, 4) and data.channels == 3
    io._alpha_noted = False
    with caplog.at_level(logging.INFO, logger="unetseg.data.io"):
        out = to_channels(data.samples[0].image, 3, "a.png")
    assert out.shape == (8, 10, 3) and "alpha channel is dropped" in caplog.text


def test_palette_png_read_as_indices(tmp_path):
    idx = np.array([[0, 1, 2], [3, 255, 0]], np.uint8)
    png(tmp_path / "p.png", idx, palette=True)
    assert Image.open(tmp_path / "p.png").mode == "P"
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), idx)


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_colour_mask_with_colormap(tmp_path, suffix):
    cmap = {0: [0, 0, 0], 1: [255, 0, 0], 2: [0, 128, 255]}
    path = tmp_path / f"cmap{suffix}"
    path.write_text(json.dumps({str(k): v for k, v in cmap.items()}))  # JSON is valid YAML
    colormap = load_colormap(path)
    assert colormap == {k: tuple(v) for k, v in cmap.items()}
    mask = np.zeros((3, 4, 3), np.uint8)
    mask[0, 1] = (255, 0, 0)
    mask[2, 3] = (0, 128, 255)
    labels = colour_mask_to_labels(mask, colormap, "m.png")
    assert labels.dtype == np.uint8 and labels[0, 1] == 1 and labels[2, 3] == 2 and labels.sum() == 3
    mask[1, 2] = (9, 9, 9)
    with pytest.raises(DataError, match=r"m\.png: colour \[9, 9, 9\] at \(x=2, y=1\) is not in the colour map"):
        colour_mask_to_labels(mask, colormap, "m.png")


def test_bad_colormap_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("0: [0, 0]\n")
    with pytest.raises(DataError, match=r"bad\.yaml: entry"):
        load_colormap(bad)
    dup = tmp_path / "dup.yaml"
    dup.write_text("0: [1, 2, 3]\n1: [1, 2, 3]\n")
    with pytest.raises(DataError, match=r"dup\.yaml: classes 0 and 1 share"):
        load_colormap(dup)


# ----------------------------------------------------------------------------------------------- dsb2018 (Kaggle)

def make_kaggle(root: Path, objects: dict[str, list[tuple[slice, slice]]]) -> None:
    for sid, boxes in objects.items():
        png(root / sid / "images" / f"{sid}.png", np.dstack([rgb(16, 16), np.full((16, 16), 255, np.uint8)]))
        (root / sid / "masks").mkdir(parents=True)
        for k, box in enumerate(boxes):
            m = np.zeros((16, 16), np.uint8)
            m[box] = 255
            png(root / sid / "masks" / f"obj{k}.png", m)


def test_dsb2018_merges_objects(tmp_path):
    make_kaggle(tmp_path, {"x1": [np.s_[0:3, 0:3], np.s_[5:9, 5:9], np.s_[10:12, 1:4]], "x2": [np.s_[1:2, 1:2]]})
    assert detect_layout(tmp_path) == "dsb2018"
    data = load_dataset(tmp_path)
    s = data.samples[0]
    assert s.name == "x1" and s.instances.dtype == np.uint16 and data.num_classes == 2
    assert s.instances[1, 1] == 1 and s.instances[6, 6] == 2 and s.instances[11, 2] == 3
    np.testing.assert_array_equal(s.labels, (s.instances > 0).astype(np.uint8))


def test_dsb2018_overlap_names_both_files(tmp_path):
    make_kaggle(tmp_path, {"x1": [np.s_[0:4, 0:4], np.s_[3:6, 3:6]]})
    with pytest.raises(DataError, match=r"x1/masks/obj1\.png: object overlaps the object of .*x1/masks/obj0\.png"):
        load_dataset(tmp_path, layout="dsb2018")


def test_dsb2018_missing_masks_folder(tmp_path):
    make_kaggle(tmp_path, {"x1": [np.s_[0:4, 0:4]]})
    png(tmp_path / "x2" / "images" / "x2.png", rgb(16, 16))
    with pytest.raises(DataError, match=r"x2: expected a folder .*x2/masks"):
        load_dataset(tmp_path, layout="dsb2018")


# -------------------------------------------------------------------------------------------------------- nnU-Net

def make_nnunet(root: Path, cases=("c1", "c2"), channels=2, meta=None) -> None:
    meta = meta or {"channel_names": {str(k): f"ch{k}" for k in range(channels)},
                    "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": len(cases), "file_ending": ".png"}
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(meta))
    for c in cases:
        for k in range(channels):
            png(root / "imagesTr" / f"{c}_{k:04d}.png", np.full((8, 9), 10 * (k + 1), np.uint8))
        lab = np.zeros((8, 9), np.uint8)
        lab[1, 1], lab[2, 2] = 1, 2
        png(root / "labelsTr" / f"{c}.png", lab)


def test_nnunet_stacks_channels(tmp_path):
    make_nnunet(tmp_path)
    assert detect_layout(tmp_path) == "nnunet"
    data = load_dataset(tmp_path)
    assert data.num_classes == 3 and data.channels == 2 and [s.name for s in data.samples] == ["c1", "c2"]
    img = data.samples[0].image
    assert img.shape == (8, 9, 2) and img[0, 0].tolist() == [10, 20]
    assert data.samples[0].labels[2, 2] == 2
    assert to_channels(img, 2).shape == (8, 9, 2)  # both channels kept, not grey+alpha


def test_nnunet_ignore_label_becomes_255(tmp_path):
    make_nnunet(tmp_path, channels=1, meta={"channel_names": {"0": "x"}, "labels": {"background": 0, "a": 1,
                                                                                      "ignore": 2},
                                            "file_ending": ".png"})
    data = load_dataset(tmp_path)
    assert data.num_classes == 2 and data.samples[0].labels[2, 2] == 255


def test_nnunet_missing_keys(tmp_path):
    make_nnunet(tmp_path, meta={"channel_names": {"0": "x"}, "numTraining": 2})
    with pytest.raises(DataError, match=r"dataset\.json: missing key\(s\) labels, file_ending"):
        load_dataset(tmp_path)


def test_nnunet_missing_channel_file(tmp_path):
    make_nnunet(tmp_path)
    (tmp_path / "imagesTr" / "c2_0001.png").unlink()
    with pytest.raises(DataError, match=r"imagesTr/c2_0001\.png: file not found"):
        load_dataset(tmp_path)


def test_nnunet_channel_size_mismatch(tmp_path):
    make_nnunet(tmp_path)
    png(tmp_path / "imagesTr" / "c1_0001.png", np.zeros((5, 7), np.uint8))
    with pytest.raises(DataError, match=r"imagesTr/c1_0001\.png: channel size 7x5 differs"):
        load_dataset(tmp_path)


def test_nnunet_bad_label_value(tmp_path):
    make_nnunet(tmp_path)
    png(tmp_path / "labelsTr" / "c1.png", np.full((8, 9), 7, np.uint8))
    with pytest.raises(DataError, match=r"labelsTr/c1\.png: label values \[7\]"):
        load_dataset(tmp_path)


# ------------------------------------------------------------------------------------------------------------ VOC

def make_voc(root: Path, ids=("2007_000001", "2007_000002"), split="train") -> None:
    for i in ids:
        (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb()).save(root / "JPEGImages" / f"{i}.jpg")
        lab = np.zeros((8, 10), np.uint8)
        lab[2:5, 2:5] = 15
        lab[2, 2:5] = 255
        png(root / "SegmentationClass" / f"{i}.png", lab, palette=True)
    (root / "ImageSets" / "Segmentation").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(ids) + "\n")


def test_voc(tmp_path):
    make_voc(tmp_path)
    make_voc(tmp_path, ids=("2007_000003",), split="val")
    assert detect_layout(tmp_path) == "voc"
    data = load_dataset(tmp_path)
    assert data.num_classes == 21 and len(data.samples) == 2
    labels = data.samples[0].labels
    assert labels.dtype == np.uint8 and labels[3, 3] == 15 and labels[2, 3] == 255
    assert [s.name for s in load_dataset(tmp_path, split="val").samples] == ["2007_000003"]


def test_voc_errors(tmp_path):
    make_voc(tmp_path)
    with pytest.raises(DataError, match=r"Segmentation/nope\.txt: split file not found"):
        load_dataset(tmp_path, split="nope")
    (tmp_path / "SegmentationClass" / "2007_000002.png").unlink()
    with pytest.raises(DataError, match=r"SegmentationClass/2007_000002\.png: file not found"):
        load_dataset(tmp_path)
    png(tmp_path / "SegmentationClass" / "2007_000002.png", np.full((8, 10), 40, np.uint8), palette=True)
    with pytest.raises(DataError, match=r"2007_000002\.png: label values \[40\] are not VOC classes"):
        load_dataset(tmp_path)


# ----------------------------------------------------------------------------------------------------- Cityscapes

def make_cityscapes(root: Path, names=("aachen_000000_000019",), split="train", size=(8, 10)) -> np.ndarray:
    ids = np.arange(80, dtype=np.uint8).reshape(size) % 34
    for n in names:
        city = n.split("_")[0]
        png(root / "leftImg8bit" / split / city / f"{n}_leftImg8bit.png", rgb(*size))
        png(root / "gtFine" / split / city / f"{n}_gtFine_labelIds.png", ids)
    return ids


def test_cityscapes(tmp_path):
    ids = make_cityscapes(tmp_path)
    assert detect_layout(tmp_path) == "cityscapes"
    data = load_dataset(tmp_path)
    assert data.num_classes == 19 and data.samples[0].name == "aachen_000000_000019"
    labels = data.samples[0].labels
    assert labels.dtype == np.uint8
    assert labels[ids == 7].tolist()[0] == 0 and labels[ids == 26].tolist()[0] == 13
    assert (labels[ids == 0] == 255).all() and (labels[ids == 33] == 18).all()


def test_cityscapes_table():
    assert len(LABELS) == 34
    train = sorted(t for _, t in LABELS.values() if t != 255)
    assert train == list(range(19))
    assert TRAIN_ID_LUT[24] == 11 and TRAIN_ID_LUT[29] == 255 and TRAIN_ID_LUT[31] == 16


def test_cityscapes_errors(tmp_path):
    make_cityscapes(tmp_path)
    png(tmp_path / "leftImg8bit" / "train" / "bonn" / "bonn_000001_000019_leftImg8bit.png", rgb())
    with pytest.raises(DataError, match=r"bonn_000001_000019_leftImg8bit\.png has no label file"):
        load_dataset(tmp_path)
    with pytest.raises(DataError, match=r"leftImg8bit/val: folder not found"):
        load_dataset(tmp_path, split="val")


def test_cityscapes_size_mismatch(tmp_path):
    make_cityscapes(tmp_path)
    png(tmp_path / "leftImg8bit" / "train" / "aachen" / "aachen_000000_000019_leftImg8bit.png", rgb(9, 10))
    with pytest.raises(DataError, match=r"aachen_000000_000019_gtFine_labelIds\.png: mask size 10x8 differs"):
        load_dataset(tmp_path)


# ------------------------------------------------------------------------------------------------------ detection

def test_detection_failure_lists_what_was_looked_for(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(DataError, match=r"dataset\.json.*JPEGImages.*leftImg8bit.*images/ \+ masks/"):
        load_dataset(tmp_path)
    with pytest.raises(DataError, match="unknown layout 'coco'"):
        load_dataset(tmp_path, layout="coco")


def test_num_classes_contradicting_layout(tmp_path):
    make_voc(tmp_path)
    with pytest.raises(DataError, match="num_classes=5 given, but the voc layout has 21"):
        load_dataset(tmp_path, num_classes=5)


# ------------------------------------------------------------------------------------------- registry and loading

def test_layouts_registry_and_detection_order():
    assert len(LAYOUTS) == 6 and "folder" in LAYOUTS and "coco" not in LAYOUTS
    assert sorted(LAYOUTS) == ["cityscapes", "ctc", "dsb2018", "folder", "nnunet", "voc"]
    for entry in LAYOUTS.entries():
        assert callable(entry.info["detect"]) and entry.info["looks_for"] and entry.description
    order = [e.name for e in sorted(LAYOUTS.entries(), key=lambda e: e.info["priority"])]
    assert order == ["nnunet", "voc", "cityscapes", "ctc", "folder", "dsb2018"]


def test_first_matching_layout_wins(tmp_path):
    make_voc(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    assert detect_layout(tmp_path) == "voc"  # voc comes before folder
    (tmp_path / "dataset.json").write_text("{}")
    assert detect_layout(tmp_path) == "nnunet"


def test_base_imports_no_layout_module():
    import ast

    import unetseg.data.layouts.base as base

    tree = ast.parse(Path(base.__file__).read_text())
    siblings = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 1]
    assert siblings == [] and any(isinstance(n, ast.ImportFrom) and n.level == 2 for n in ast.walk(tree))


def test_a_new_layout_is_one_decorated_scan(tmp_path, monkeypatch):
    monkeypatch.setattr(LAYOUTS, "_entries", dict(LAYOUTS._entries))  # registered for this test only
    seen = {}

    @LAYOUTS.register("toy", priority=5, detect=lambda root: (root / "toy.txt").is_file(), looks_for="toy.txt",
                      description="a test layout")
    def scan(root: Path, split: str | None = None) -> Scan:
        seen["split"] = split
        image = np.zeros((8, 9), np.uint8)
        labels = np.ones((8, 9), np.uint8)
        raw = Raw("t", image, labels, root / "toy.txt", root / "toy.txt", final=True)
        return Scan(readers=[lambda: [raw]], num_classes=3)

    with pytest.raises(DataError, match=r"looked for toy\.txt \(toy\), dataset\.json \(nnunet\)"):
        detect_layout(tmp_path)
    (tmp_path / "toy.txt").write_text("")
    data = load_dataset(tmp_path, mask_suffix="_m", split="val")  # mask_suffix is not passed: toy does not take it
    assert seen == {"split": "val"} and data.num_classes == 3 and data.channels == 1
    assert [s.name for s in data.samples] == ["t"] and data.ignore_index is None
    with pytest.raises(DataError, match="instance labels are not supported for the toy layout"):
        load_dataset(tmp_path, instances=True)


def test_load_reads_everything_then_lists_every_problem(tmp_path):
    mask = np.eye(8, 10, dtype=np.uint8)
    for n in "abc":
        png(tmp_path / "images" / f"{n}.png", rgb())
        png(tmp_path / "masks" / f"{n}.png", mask)
    png(tmp_path / "images" / "d.png", rgb())  # scan problem: no mask
    (tmp_path / "images" / "a.png").write_bytes(b"broken")  # read problem
    png(tmp_path / "masks" / "b.png", np.full((8, 10), 7, np.uint8))  # label problem (2 classes declared)
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path, num_classes=2)
    message = str(err.value)
    assert "images/d.png has no mask" in message and "images/a.png: cannot read" in message
    assert "masks/b.png: mask values [7] are outside the 2 declared classes" in message
    data, problems, layout = scan_dataset(tmp_path, num_classes=2)
    assert layout == "folder" and [s.name for s in data.samples] == ["c"] and len(problems) == 3
    assert message == "; ".join(problems)


def test_error_lists_five_problems_and_a_count(tmp_path):
    for n in range(8):
        png(tmp_path / "images" / f"{n}.png", rgb())
    png(tmp_path / "masks" / "0.png", np.eye(8, 10, dtype=np.uint8))
    with pytest.raises(DataError) as err:
        load_dataset(tmp_path)
    message = str(err.value)
    assert message.count("has no mask") == 5 and message.endswith("(and 2 more)") and "images/7.png" not in message


def test_no_readable_samples(tmp_path):
    make_voc(tmp_path)
    for p in (tmp_path / "JPEGImages").iterdir():
        p.write_bytes(b"broken")
    data, problems, _ = scan_dataset(tmp_path)
    assert data is None and problems[-1].endswith("no readable samples") and len(problems) == 3
    with pytest.raises(DataError, match=r"2007_000001\.jpg: cannot read"):
        load_dataset(tmp_path)


def test_alpha_rule_with_the_nnunet_exception(tmp_path):
    assert [real_channels(c) for c in (1, 2, 3, 4, 5)] == [1, 1, 3, 3, 5]
    assert [real_channels(c, alpha=False) for c in (2, 4)] == [2, 4]
    assert has_alpha("folder") and has_alpha(None) and not has_alpha("nnunet")
    make_nnunet(tmp_path / "nn", channels=4)
    assert load_dataset(tmp_path / "nn").channels == 4  # every nnU-Net channel is real
    fp = inspect_dataset(tmp_path / "nn")
    assert sorted(fp["intensity"]) == ["0", "1", "2", "3"] and fp["intensity"]["3"]["p50"] == 40
    png(tmp_path / "f" / "images" / "a.png", np.dstack([rgb(), np.full((8, 10), 255, np.uint8)]))
    png(tmp_path / "f" / "masks" / "a.png", np.eye(8, 10, dtype=np.uint8))
    assert sorted(inspect_dataset(tmp_path / "f")["intensity"]) == ["0", "1", "2"]  # alpha dropped


def test_files_by_stem_names_both_files(tmp_path):
    png(tmp_path / "a.png", rgb())
    png(tmp_path / "b.png", rgb())
    assert sorted(files_by_stem(tmp_path)) == ["a", "b"]
    png(tmp_path / "a.tif", rgb())
    with pytest.raises(DataError, match=r"a\.tif: two files share the stem 'a' \(the other is a\.png\)"):
        files_by_stem(tmp_path)
