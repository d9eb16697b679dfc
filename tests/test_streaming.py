"""Training data read when needed: the bounded cache, patches that do not depend on it (nor on loader processes),
the statistics of the loading pass, lazy validation images, and the loader-process rule."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from unetseg import Config
from unetseg.data.cache import GIB, ByteCache, default_cache_gib, nbytes
from unetseg.data.io import to_channels
from unetseg.data.layouts import load_dataset
from unetseg.data.normalize import Normalization
from unetseg.data.patches import PatchDataset
from unetseg.data.prepared import View
from unetseg.data.stats import DatasetStats
from unetseg.data.synthetic import write_synthetic_dataset
from unetseg.engine.plan import workers_for
from unetseg.engine.setup import border_weight_maps, load_datasets, prepare_data, save_data_stats


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """Forty 32x32 synthetic nuclei images (with instance labels)."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("many") / "data", 40, 32, 32, seed=3)


def _config(root, weight_map=False, val_fraction=0.0, cache_size=None):
    config = Config()
    config.data.train, config.data.val_fraction = str(root), val_fraction
    config.train.weight_map, config.train.cache_size = weight_map, cache_size
    return config


def test_the_byte_cache_drops_the_least_recently_used():
    cache = ByteCache(limit=100)
    loads = []

    def load(n):
        return lambda: loads.append(n) or np.zeros(n, np.uint8)

    cache.get("a", load(40))
    cache.get("b", load(40))
    cache.get("a", load(40))  # a hit: "a" becomes the most recent
    cache.get("c", load(40))  # 120 bytes: "b", the least recent, goes
    assert cache.keys() == ["a", "c"] and cache.bytes == 80 and loads == [40, 40, 40]
    assert (cache.hits, cache.misses) == (1, 3)
    big = cache.get("d", load(101))  # larger than the limit: returned, not kept
    assert big.size == 101 and cache.keys() == ["a", "c"]
    assert pickle.loads(pickle.dumps(cache)).keys() == [] and pickle.loads(pickle.dumps(cache)).limit == 100
    assert nbytes((np.zeros(3, np.float32), None, {1: np.zeros((2, 2), np.int32)})) == 12 + 16
    assert default_cache_gib(64 * GIB) == 2.0 and default_cache_gib(8 * GIB) == 1.0


def test_an_epoch_over_many_images_keeps_only_what_the_cache_allows(many):
    data, _ = load_datasets(_config(many))
    assert all(s.lazy and nbytes(vars(s)) == 0 for s in data.samples)  # the samples hold no pixels
    run = prepare_data(_config(many), data)
    entry = 32 * 32 * 4 + 32 * 32  # a prepared image: float32 (1, 32, 32) and uint8 labels (32, 32)
    dataset = PatchDataset(run.train_images, run.train_labels, 16, 16, 80, augment=False, seed=0,
                           cache_bytes=3 * entry)
    for i in range(len(dataset)):
        dataset[i]
    assert len(dataset.cache) == 3 and dataset.cache.bytes == 3 * entry <= dataset.cache.limit
    assert dataset.cache.misses == 80  # round-robin over 40 images: each patch needs another image than the last 3
    assert len(run.train_images) == 40 and isinstance(run.train_images, View)


def _patches(dataset, indices):
    return [dataset[i] for i in indices]


def _same(a, b):
    return len(a) == len(b) and all(all(torch.equal(x, y) for x, y in zip(p, q)) for p, q in zip(a, b))


def test_a_patch_does_not_depend_on_the_cache_or_the_loader_processes(tiny_data):
    config = _config(tiny_data, weight_map=True)
    run = prepare_data(config, *load_datasets(config))

    def dataset(cache_bytes):
        return PatchDataset(run.train_images, run.train_labels, 28, 20, 12, True, 7, run.train_weights, None, 0.5,
                            cache_bytes=cache_bytes)

    cold = dataset(0)  # nothing kept: every patch prepares its image again
    warm = dataset(None)
    indices = list(range(12))
    first = _patches(cold, indices)
    assert len(first[0]) == 3 and cold.cache.bytes == 0
    assert _same(_patches(warm, indices), first) and _same(_patches(warm, indices[::-1]), first[::-1])
    assert warm.cache.hits >= 12
    assert _same(_patches(pickle.loads(pickle.dumps(warm)), indices), first)  # a spawned loader process's copy
    loaded = [b for b in DataLoader(dataset(None), batch_size=4, num_workers=2)]
    assert all(torch.equal(torch.cat([b[k] for b in loaded]), torch.stack([p[k] for p in first])) for k in range(3))
    # the same patches as from the images prepared in memory, as training did before reading lazily
    samples = load_dataset(tiny_data, instances=True).samples
    weights = border_weight_maps(samples, 2, config)
    images = [run.normalization(to_channels(s.image, 1)) for s in samples]
    memory = PatchDataset(images, [s.labels for s in samples], 28, 20, 12, True, 7, weights, None, 0.5)
    assert _same(_patches(memory, indices), first)


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_the_stored_statistics_are_the_pixel_counts_of_the_labels(tmp_path):
    root = tmp_path / "d"
    a = np.zeros((20, 20), np.uint8)
    a[2:5, 3:7] = 255  # 12 foreground pixels
    b = np.zeros((20, 24), np.uint8)
    b[10:15, 0:1] = 255  # 5
    region = np.zeros((20, 24), np.uint8)
    region[:, :12] = 1  # only the left half of b is annotated: 240 pixels ignored
    for name, mask, grey in (("a", a, 40), ("b", b, 90)):
        _write(root / "images" / f"{name}.png", np.full(mask.shape, grey, np.uint8) + (mask > 0).astype(np.uint8))
        _write(root / "masks" / f"{name}.png", mask)
    _write(root / "regions" / "b.png", region)
    config = _config(root)
    config.data.normalization, config.data.normalization_scope = "zscore", "dataset"
    data, _ = load_datasets(config)
    assert [s.facts.class_pixels for s in data.samples] == [{0: 388, 1: 12}, {0: 235, 1: 5, 255: 240}]
    config.data.ignore_index = data.ignore_index  # 255, as the plan sets it for partly annotated data
    run = prepare_data(config, data)
    assert run.stats == DatasetStats(2, 880, (20, 20), (20, 24), 1, {0: 623, 1: 17, 255: 240})
    memory = load_dataset(root).samples  # the labels in memory, counted independently
    counts = np.bincount(np.concatenate([s.labels.ravel() for s in memory]), minlength=256)
    assert {v: int(counts[v]) for v in np.flatnonzero(counts)} == run.stats.class_pixels
    fitted = Normalization("zscore", scope="dataset").fit([to_channels(s.image, 1) for s in memory])
    pixels = np.repeat([40, 41, 90, 91], [388, 12, 475, 5])  # every pixel of both images
    assert run.normalization == fitted and fitted.stats == ((pytest.approx(pixels.mean()), pytest.approx(pixels.std())),)
    save_data_stats(tmp_path, run)
    stored = json.loads((tmp_path / "data_stats.json").read_text())
    assert stored["train"]["class_pixels"] == {"0": 623, "1": 17, "255": 240}
    assert stored["class_fractions"] == {"0": round(623 / 640, 6), "1": round(17 / 640, 6)}
    assert stored["normalization"]["stats"] == [list(fitted.stats[0])]


def test_large_validation_sets_are_read_when_needed(many):
    config = _config(many, val_fraction=0.5)
    small = prepare_data(config, *load_datasets(config))
    assert isinstance(small.val_images, list) and len(small.val_images) == 20  # 20 x 12 KiB: in memory
    config.train.cache_size = 20 * 32 * 32 * 12 / GIB  # a quarter of it is less than the validation images need
    lazy = prepare_data(config, *load_datasets(config))
    assert isinstance(lazy.val_images, View) and lazy.val_names == small.val_names
    assert all(np.array_equal(x, y) for x, y in zip(lazy.val_images, small.val_images))
    assert all(np.array_equal(x, y) for x, y in zip(lazy.val_labels, small.val_labels))
    assert all(np.array_equal(x, y) for x, y in zip(lazy.val_instances, small.val_instances))


def test_loader_processes_only_on_machines_with_more_than_four_cores():
    assert [workers_for(c) for c in (1, 2, 4, 5, 8, 16, 32, 64)] == [0, 0, 0, 1, 2, 4, 8, 8]
