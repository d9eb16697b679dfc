"""Folder datasets: pairing, formats, every validation error, mirror crops and training patches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from unetseg.data.layouts import load_folder, pair_files
from unetseg.data.io import DataError, read_image, to_channels
from unetseg.data.masks import mask_to_labels
from unetseg.data.normalize import Normalization
from unetseg.data.patches import PatchDataset
from unetseg.data.sampling import crop_mirror, mirror_indices


def make_dataset(root: Path, masks: dict[str, np.ndarray], image_suffix: str = ".png", rgb: bool = False) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem, mask in masks.items():
        shape = mask.shape + ((3,) if rgb else ())
        image = rng.integers(0, 255, shape, dtype=np.uint8)
        if image_suffix in (".tif", ".tiff"):
            tifffile.imwrite(root / "images" / f"{stem}{image_suffix}", image)
        else:
            Image.fromarray(image).save(root / "images" / f"{stem}{image_suffix}")
        Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
    return root


def binary_mask(value: int = 255, size: int = 16) -> np.ndarray:
    mask = np.zeros((size, size), np.uint8)
    mask[4:10, 3:12] = value
    return mask


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
@pytest.mark.parametrize("rgb", [False, True])
def test_formats_and_binary_masks(tmp_path, suffix, rgb):
    root = make_dataset(tmp_path / "d", {"a": binary_mask(255), "b": binary_mask(255)}, suffix, rgb)
    data = load_folder(root)
    assert data.num_classes == 2 and data.channels == (3 if rgb else 1)
    assert [s.name for s in data.samples] == ["a", "b"]
    np.testing.assert_array_equal(data.samples[0].labels, binary_mask(1))


def test_zero_one_masks_and_multiclass(tmp_path):
    data = load_folder(make_dataset(tmp_path / "b", {"a": binary_mask(1)}))
    assert data.num_classes == 2 and data.samples[0].labels.max() == 1
    multi = binary_mask(2)
    multi[0, 0] = 1
    data = load_folder(make_dataset(tmp_path / "m", {"a": multi}))
    assert data.num_classes == 3
    np.testing.assert_array_equal(data.samples[0].labels, multi)


def test_unpaired_image_is_named(tmp_path):
    root = make_dataset(tmp_path / "d", {"a": binary_mask(), "b": binary_mask()})
    (root / "masks" / "b.png").unlink()
    with pytest.raises(DataError, match=r"images/b\.png has no mask"):
        load_folder(root)


def test_unpaired_mask_is_named(tmp_path):
    root = make_dataset(tmp_path / "d", {"a": binary_mask()})
    Image.fromarray(binary_mask()).save(root / "masks" / "zz.png")
    with pytest.raises(DataError, match=r"masks/zz\.png has no image"):
        load_folder(root)


def test_size_mismatch_is_named(tmp_path):
    root = make_dataset(tmp_path / "d", {"a": binary_mask(), "b": binary_mask()})
    Image.fromarray(binary_mask(size=12)).save(root / "masks" / "b.png")
    with pytest.raises(DataError, match=r"masks/b\.png: mask size 12x12 differs"):
        load_folder(root)


def test_unreadable_file_is_named(tmp_path):
    root = make_dataset(tmp_path / "d", {"a": binary_mask()})
    (root / "images" / "a.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"images/a\.png: cannot read"):
        load_folder(root)


def test_mask_values_outside_declared_classes(tmp_path):
    bad = binary_mask(3)
    root = make_dataset(tmp_path / "d", {"a": binary_mask(1), "b": bad})
    with pytest.raises(DataError, match=r"masks/b\.png: mask values \[3\] are outside the 2 declared classes"):
        load_folder(root, num_classes=2)


def test_255_mixed_with_class_indices(tmp_path):
    mixed = binary_mask(255)
    mixed[0, 0] = 2
    root = make_dataset(tmp_path / "d", {"a": mixed})
    with pytest.raises(DataError, match=r"masks/a\.png: mask value 255"):
        load_folder(root)


def test_missing_folders_and_empty_images(tmp_path):
    with pytest.raises(DataError, match="images"):
        pair_files(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError, match="no image files"):
        pair_files(tmp_path)


def test_duplicate_stems(tmp_path):
    root = make_dataset(tmp_path / "d", {"a": binary_mask()})
    Image.fromarray(binary_mask()).save(root / "images" / "a.tif")
    with pytest.raises(DataError, match="share the stem 'a'"):
        load_folder(root)


def test_colour_mask_is_refused(tmp_path):
    mask = np.zeros((4, 4, 3), np.uint8)
    mask[0, 0] = (255, 0, 0)
    with pytest.raises(DataError, match="colour mask"):
        mask_to_labels(mask, 2, "m.png")


def test_uint16_tiff_round_trip(tmp_path):
    image = (np.arange(100, dtype=np.uint16).reshape(10, 10) * 600)
    tifffile.imwrite(tmp_path / "x.tif", image)
    np.testing.assert_array_equal(read_image(tmp_path / "x.tif"), image)


def test_channel_conversion():
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3)
    assert to_channels(grey, 3).shape == (2, 3, 3)
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., 0] = 30
    rgba[..., 1] = 60
    rgba[..., 2] = 90
    np.testing.assert_allclose(to_channels(rgba, 1)[..., 0], 60.0)
    with pytest.raises(DataError, match="x.png: image has 3 channel"):
        to_channels(rgba, 2, "x.png")


def test_normalization_modes():
    image = np.linspace(0, 200, 1001, dtype=np.float32).reshape(1, 1001, 1)
    out = Normalization("percentile", 1.0, 99.0)(image)
    assert out.shape == (1, 1, 1001)
    assert out[0, 0, 10] == pytest.approx(0.0, abs=1e-5) and out[0, 0, 990] == pytest.approx(1.0, abs=1e-5)
    z = Normalization("zscore")(image)
    assert z.mean() == pytest.approx(0, abs=1e-5) and z.std() == pytest.approx(1, abs=1e-4)
    assert Normalization("scale")(np.full((2, 2), 255, np.uint8)[..., None]).max() == 1.0
    with pytest.raises(ValueError, match="normalization"):
        Normalization("minmax")


@pytest.mark.parametrize("pad", [1, 3, 7])
def test_crop_mirror_equals_reflect_padding(pad):
    a = np.arange(35).reshape(5, 7)
    expected = np.pad(a, pad, mode="reflect")
    np.testing.assert_array_equal(crop_mirror(a, -pad, -pad, 5 + 2 * pad, 7 + 2 * pad), expected)


def test_mirror_indices_by_hand_and_single_pixel():
    assert mirror_indices(-2, 7, 4).tolist() == [2, 1, 0, 1, 2, 3, 2]
    assert mirror_indices(-3, 4, 1).tolist() == [0, 0, 0, 0]
    big = mirror_indices(-10, 30, 3)  # far beyond the image: keeps folding
    assert big.min() == 0 and big.max() == 2


# flips and 90-degree rotations only: exact, so the coordinate-coded image and labels must agree pixel for pixel
FLIPS_ONLY = {"elastic": False, "gamma": False, "brightness_contrast": False}


def test_patches_are_aligned_and_deterministic():
    # The image encodes each pixel's coordinates, so alignment after crops, flips and rotations is checkable.
    h, w = 30, 40
    yy, xx = np.mgrid[0:h, 0:w]
    code = (yy * 100 + xx).astype(np.int64)
    image = code.astype(np.float32)[None]
    labels = code
    ds = PatchDataset([image], [labels], input_size=20, output_size=12, samples_per_epoch=10, seed=1,
                      augmentation=FLIPS_ONLY)
    for i in range(10):
        tile, target = ds[i]
        np.testing.assert_array_equal(tile[0, 4:16, 4:16].numpy().astype(np.int64), target.numpy())
    a, b = ds[3]
    ds.set_epoch(1)
    c, _ = ds[3]
    ds.set_epoch(0)
    assert np.array_equal(ds[3][0], a) and not np.array_equal(c, a)
