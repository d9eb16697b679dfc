"""Overlays of `unetseg predict --overlay`: every object outlined in its own colour, touching objects in different
ones (colours and outline pixels checked against hand-made label images)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from unetseg.data.io import read_image
from unetseg.inference.outputs import (OBJECT_PALETTE, PALETTE, PredictionWriter, class_regions, colour_objects,
                                       outline_objects, overlay)


def test_objects_take_the_palette_by_label_and_touching_ones_differ():
    objects = np.array([[1, 1, 11, 0, 21],
                        [1, 1, 11, 0, 0],
                        [0, 0, 0, 0, 2]])
    colours = colour_objects(objects)
    assert colours[0, 0].tolist() == OBJECT_PALETTE[0].tolist()  # label 1: the first colour
    # label 11 would take the first colour too ((11 - 1) mod 10 = 0), but it touches label 1: the next one
    assert colours[0, 2].tolist() == OBJECT_PALETTE[1].tolist()
    # label 21 touches nothing: the first colour; label 2: the second
    assert colours[0, 4].tolist() == OBJECT_PALETTE[0].tolist()
    assert colours[2, 4].tolist() == OBJECT_PALETTE[1].tolist()
    assert colours[2, 0].tolist() == [0, 0, 0]  # background


def test_diagonal_neighbours_count_as_touching():
    objects = np.array([[1, 0], [0, 11]])
    colours = colour_objects(objects)
    assert colours[0, 0].tolist() != colours[1, 1].tolist()


def test_outline_is_the_inner_boundary_of_each_object():
    objects = np.zeros((7, 9), np.int32)
    objects[1:6, 1:4] = 3  # a 5x3 block: its interior is the 3x1 column in the middle
    objects[1:6, 4:8] = 4  # touching block to its right: 5x4, interior 3x2
    rgb = np.full((7, 9, 3), 100, np.uint8)
    out = outline_objects(rgb, objects)
    expected = np.zeros((7, 9), bool)
    expected[1:6, 1:8] = True
    expected[2:5, 2] = False  # interior of object 3
    expected[2:5, 5:7] = False  # interior of object 4
    changed = (out != 100).any(axis=2)
    np.testing.assert_array_equal(changed, expected)
    assert out[1, 1].tolist() == OBJECT_PALETTE[2].tolist()  # label 3: the third colour
    assert out[1, 7].tolist() == OBJECT_PALETTE[3].tolist()  # label 4: the fourth
    assert rgb[1, 1].tolist() == [100, 100, 100]  # the input is left as it was


def test_overlay_blends_classes_inside_and_outlines_objects():
    image = np.zeros((5, 5), np.uint8)
    image[0, 0] = 100  # stretched: 0 -> 0, 100 -> 255
    labels = np.zeros((5, 5), np.uint8)
    labels[1:4, 1:4] = 1
    objects = labels.astype(np.int32) * 5
    rgb = overlay(image, labels, objects=objects)
    # centre: class 1 blended over black, 0.45 * (230, 25, 75) rounded
    assert rgb[2, 2].tolist() == [104, 11, 34]
    assert rgb[1, 1].tolist() == OBJECT_PALETTE[4].tolist()  # border pixel of object 5: the fifth colour
    assert rgb[4, 4].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(overlay(image, labels)[2, 2], rgb[2, 2])


def test_class_regions_are_the_connected_regions_of_each_class():
    labels = np.array([[1, 1, 2], [0, 0, 2], [1, 0, 0]])
    regions = class_regions(labels)
    assert regions[0, 0] == regions[0, 1] != regions[0, 2] == regions[1, 2]
    assert regions[2, 0] not in (0, regions[0, 0], regions[0, 2]) and regions[1, 0] == 0


def test_writer_outlines_the_objects_given_else_the_class_regions(tmp_path: Path):
    image = np.zeros((8, 8), np.uint8)
    labels = np.zeros((8, 8), np.uint8)
    labels[1:7, 1:7] = 1
    objects = np.zeros((8, 8), np.int32)
    objects[1:7, 1:4], objects[1:7, 4:7] = 1, 2  # one class region cut into two touching objects
    writer = PredictionWriter(tmp_path / "with", 2, overlays=True)
    writer.write(Path("cells.png"), image, np.zeros((2, 8, 8), np.float32), labels, objects)
    with_objects = read_image(tmp_path / "with" / "cells_overlay.png")
    assert with_objects[3, 3].tolist() == OBJECT_PALETTE[0].tolist()  # the cut: object 1's right edge
    assert with_objects[3, 4].tolist() == OBJECT_PALETTE[1].tolist()  # and object 2's left edge
    PredictionWriter(tmp_path / "without", 2, overlays=True).write(
        Path("cells.png"), image, np.zeros((2, 8, 8), np.float32), labels)
    without = read_image(tmp_path / "without" / "cells_overlay.png")
    inside = np.rint(0.45 * PALETTE[0]).astype(int).tolist()
    assert without[3, 3].tolist() == without[3, 4].tolist() == inside  # one region: no outline through it
    assert without[1, 1].tolist() == OBJECT_PALETTE[0].tolist()  # its own outline
