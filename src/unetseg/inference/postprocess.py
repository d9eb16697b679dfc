"""Post-processing of predicted segmentations: clean-up and instance separation.

Three kinds of label images appear here:

* a **mask**: ``bool`` array, ``True`` is foreground;
* a **class-index image**: integer array, ``0`` is background and ``1..K`` are foreground classes;
* an **instance image**: integer array, ``0`` is background and every object has its own id.

All functions work on 2-D arrays and return new arrays (inputs are never modified).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike
from scipy import ndimage
from skimage.feature import peak_local_max
from skimage.segmentation import relabel_sequential, watershed

from ..registry import Registry, RegistryError

__all__ = ["INSTANCE_METHODS", "fill_holes", "instances_from_semantic", "prediction_objects", "remove_small_objects"]

#: how :func:`instances_from_semantic` separates objects. A method is registered as
#: ``method(image, mask, structure, /, **settings) -> labels``: ``image`` the input as given, ``mask`` its
#: foreground, ``structure`` the connectivity of :func:`scipy.ndimage.label`; its keyword settings are among
#: ``min_distance``, ``smooth_sigma`` and ``seed_threshold``. The first method is the default.
INSTANCE_METHODS: Registry[np.ndarray] = Registry("instance method")


def _structure(connectivity: int) -> np.ndarray:
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 (4-neighbours) or 2 (8-neighbours), got {connectivity}")
    return ndimage.generate_binary_structure(2, connectivity)


def _drop_small_components(mask: np.ndarray, min_size: int, structure: np.ndarray) -> np.ndarray:
    """Boolean mask of the connected components of ``mask`` with at least ``min_size`` pixels."""
    components, n = ndimage.label(mask, structure=structure)
    if n == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(components.ravel())
    keep = sizes >= min_size
    keep[0] = False
    return keep[components]


def remove_small_objects(
    labels_or_mask: ArrayLike, min_size: int, *, instances: bool = False, connectivity: int = 1
) -> np.ndarray:
    """Remove objects with fewer than ``min_size`` pixels (``skimage.morphology.remove_small_objects`` semantics).

    * mask (``bool``): connected components smaller than ``min_size`` become ``False``;
    * class-index image (integer, ``instances=False``): for each foreground class separately, connected
      components of that class smaller than ``min_size`` become background (0); background is untouched;
    * instance image (integer, ``instances=True``): each label is one object (whether or not it is
      connected); labels with fewer than ``min_size`` pixels become 0. Ids are not renumbered.

    ``connectivity`` is 1 (4-neighbourhood, the skimage default) or 2 (8-neighbourhood). The result has the
    input's dtype.
    """
    image = np.asarray(labels_or_mask)
    structure = _structure(connectivity)
    if image.dtype == bool:
        return _drop_small_components(image, min_size, structure)
    if not np.issubdtype(image.dtype, np.integer):
        raise TypeError(f"expected a bool mask or an integer label image, got dtype {image.dtype}")
    out = image.copy()
    if min_size <= 1 or image.size == 0:
        return out
    if instances:
        ids, counts = np.unique(image, return_counts=True)
        small = ids[(counts < min_size) & (ids != 0)]
        out[np.isin(image, small)] = 0
        return out
    for value in np.unique(image):
        if value == 0:
            continue
        of_class = image == value
        out[of_class & ~_drop_small_components(of_class, min_size, structure)] = 0
    return out


def fill_holes(mask: ArrayLike) -> np.ndarray:
    """Fill holes (background regions not connected to the image border) in each object.

    * mask (``bool``): ``scipy.ndimage.binary_fill_holes``;
    * integer class-index or instance image: each foreground value separately; only *background* (0) pixels
      enclosed by that value are filled with it, so an enclosed region of another class (e.g. a nucleus inside
      a cell) is kept. Work is restricted to each value's bounding box.
    """
    image = np.asarray(mask)
    if image.dtype == bool:
        return ndimage.binary_fill_holes(image)
    if not np.issubdtype(image.dtype, np.integer):
        raise TypeError(f"expected a bool mask or an integer label image, got dtype {image.dtype}")
    out = image.copy()
    if image.size == 0 or image.max(initial=0) <= 0:
        return out
    values = np.unique(image)
    values = values[values > 0]
    # find_objects indexes by label value; remap to 1..n so sparse ids do not create huge lists.
    dense = np.searchsorted(values, image) + 1
    dense[image <= 0] = 0
    for index, box in enumerate(ndimage.find_objects(dense)):
        if box is None:
            continue
        value = values[index]
        window = image[box]
        filled = ndimage.binary_fill_holes(window == value)
        out[box][filled & (window == 0)] = value
    return out


def _is_mask(image: np.ndarray) -> bool:
    return image.dtype == bool or np.issubdtype(image.dtype, np.integer)


@INSTANCE_METHODS.register("components", description="connected components; touching objects merge")
def _components(image: np.ndarray, mask: np.ndarray, structure: np.ndarray, /) -> np.ndarray:
    """Every connected component of ``mask`` is one instance."""
    return ndimage.label(mask, structure=structure)[0]


@INSTANCE_METHODS.register("watershed", description="watershed of the distance transform")
def _watershed(image: np.ndarray, mask: np.ndarray, structure: np.ndarray, /, *, min_distance: int = 5,
               smooth_sigma: float = 1.0) -> np.ndarray:
    """Touching objects split by a watershed of the smoothed distance transform (see :func:`_watershed_split`)."""
    components, n = ndimage.label(mask, structure=structure)
    return _watershed_split(mask, components, n, min_distance, smooth_sigma, structure)


@INSTANCE_METHODS.register("seeded", description="watershed of the probability from confident seeds")
def _seeded(image: np.ndarray, mask: np.ndarray, structure: np.ndarray, /, *,
            seed_threshold: float = 0.9) -> np.ndarray:
    """Watershed of ``1 - probability`` from the confident foreground (probability maps only)."""
    if _is_mask(image):
        raise ValueError("method 'seeded' needs a foreground probability map, not a mask")
    return _seeded_split(image, mask, seed_threshold, structure)


def instances_from_semantic(
    foreground: ArrayLike,
    method: str = "components",
    *,
    threshold: float = 0.5,
    min_distance: int = 5,
    smooth_sigma: float = 1.0,
    seed_threshold: float = 0.9,
    min_size: int = 0,
    connectivity: int = 1,
    dtype: DTypeLike = np.int32,
) -> np.ndarray:
    """Instance labels (0 = background, objects 1..n) from a foreground probability map or mask.

    Args:
        foreground: (H, W) floating-point foreground probability (foreground is ``>= threshold``), or a ``bool``
            / integer mask (foreground is non-zero; ``threshold`` is then unused).
        method: ``"components"``: every connected component of the foreground is one instance; touching
            objects merge. ``"watershed"``: touching objects are split. The Euclidean distance transform of
            the foreground (distance of each pixel to the nearest background pixel) is smoothed with a
            Gaussian of ``smooth_sigma`` pixels (0 disables it), its local maxima at least ``min_distance``
            pixels apart within each component become markers (one per object interior), and
            ``skimage.segmentation.watershed`` floods ``-distance`` from the markers, restricted to the
            foreground. A component that gets no marker stays one instance.
            ``"seeded"`` (probability maps only): the connected components of the confident foreground
            (``>= seed_threshold``) are the markers and the watershed floods ``1 - probability`` from them within
            the foreground, so objects joined by a bridge of lower probability (a faint membrane or gap) are split
            along it.
        threshold: probability threshold for float input.
        min_distance: minimum distance in pixels between two object centres (watershed only). It should be a
            bit below the smallest expected object radius: the default 5 separates touching nuclei of radius
            ~5-30 px; raise it (e.g. to ~half the typical radius) if large, irregular nuclei get over-split.
        seed_threshold: probability of the marker regions (seeded only).
        smooth_sigma: Gaussian smoothing of the distance transform, which removes spurious maxima caused by
            ragged outlines (watershed only).
        min_size: instances with fewer pixels are removed (after splitting); ids are then renumbered 1..n.
        connectivity: 1 (4-neighbourhood) or 2 (8-neighbourhood) for connected components.
        dtype: integer dtype of the result, e.g. ``np.int32`` (default) or ``np.uint16``; a ``ValueError``
            is raised if the number of instances does not fit.

    Raises:
        ValueError: an image that is not 2-D, a bad ``connectivity``, an unknown ``method`` (a RegistryError
            listing the methods of :data:`INSTANCE_METHODS`), ``"seeded"`` on a mask, or too many instances for
            ``dtype``.
        TypeError: ``dtype`` is not an integer type.
    """
    image = np.asarray(foreground)
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    if _is_mask(image):
        mask = image != 0
    else:
        mask = image >= threshold
    structure = _structure(connectivity)
    if method not in INSTANCE_METHODS:
        raise RegistryError(f"unknown method {method!r}; use one of {', '.join(INSTANCE_METHODS)}")
    settings = {"min_distance": min_distance, "smooth_sigma": smooth_sigma, "seed_threshold": seed_threshold}
    accepted = INSTANCE_METHODS.options(method)
    labels = INSTANCE_METHODS.build(method, image, mask, structure,
                                    **{key: value for key, value in settings.items() if key in accepted})
    if min_size > 1:
        labels = remove_small_objects(labels, min_size, instances=True)
    if labels.size:
        labels = relabel_sequential(labels)[0]
    out_dtype = np.dtype(dtype)
    if not np.issubdtype(out_dtype, np.integer):
        raise TypeError(f"dtype must be an integer type, got {out_dtype}")
    if labels.size and labels.max() > np.iinfo(out_dtype).max:
        raise ValueError(f"{labels.max()} instances do not fit in {out_dtype}")
    return labels.astype(out_dtype, copy=False)


def prediction_objects(foreground: np.ndarray, labels: np.ndarray, method: str, *, threshold: float = 0.5,
                       seed_threshold: float = 0.9, min_size: int = 0) -> np.ndarray:
    """The objects of one prediction (int32 instance labels), as :meth:`unetseg.Predictor.objects` makes them.

    Args:
        foreground: (H, W) foreground probability (``1 -`` the background's).
        labels: the predicted class map (small components already removed).
        method: one of :data:`INSTANCE_METHODS`.
        threshold: the objects' foreground: at 0.5 the foreground classes of ``labels``, else the pixels with
            ``foreground >= threshold``, components smaller than ``min_size`` removed (a higher threshold leaves
            wider gaps between objects, a lower one narrower gaps).
        seed_threshold: the confident foreground that seeds the ``seeded`` watershed.
        min_size: objects with fewer pixels are removed.
    """
    if threshold == 0.5:
        mask = labels > 0
    else:
        mask = foreground >= threshold
        if min_size > 1:
            mask = _drop_small_components(mask, min_size, _structure(1))
    probability = np.where(mask, foreground.astype(np.float32), 0.0)
    return instances_from_semantic(probability, method, threshold=threshold, seed_threshold=seed_threshold,
                                   min_size=min_size)


def _seeded_split(probability: np.ndarray, mask: np.ndarray, seed_threshold: float,
                  structure: np.ndarray) -> np.ndarray:
    """Watershed of ``1 - probability`` within ``mask`` from markers = the connected components of
    ``probability >= seed_threshold``; mask components without a marker keep their own id."""
    markers, n = ndimage.label(probability >= seed_threshold, structure=structure)
    if n == 0:
        return ndimage.label(mask, structure=structure)[0]
    labels = watershed(1.0 - probability, markers, mask=mask, connectivity=structure)
    missed = mask & (labels == 0)
    if missed.any():
        extra, _ = ndimage.label(missed, structure=structure)
        labels = np.where(missed, extra + labels.max(), labels)
    return labels


def _watershed_split(
    mask: np.ndarray,
    components: np.ndarray,
    n: int,
    min_distance: int,
    smooth_sigma: float,
    structure: np.ndarray,
) -> np.ndarray:
    if n == 0:
        return components
    distance = ndimage.distance_transform_edt(mask)
    if smooth_sigma > 0:
        distance = ndimage.gaussian_filter(distance, smooth_sigma) * mask
    peaks = peak_local_max(distance, min_distance=max(1, min_distance), labels=components, exclude_border=False)
    seeds = np.zeros(mask.shape, dtype=bool)
    seeds[tuple(peaks.T)] = True
    markers, _ = ndimage.label(seeds, structure=np.ones((3, 3), bool))
    labels = watershed(-distance, markers, mask=mask, connectivity=structure)
    missed = mask & (labels == 0)
    if missed.any():  # components without a marker keep their own id
        extra, _ = ndimage.label(missed, structure=structure)
        labels = np.where(missed, extra + labels.max(), labels)
    return labels
