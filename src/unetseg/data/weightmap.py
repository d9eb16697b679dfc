"""The U-Net loss weight map (Ronneberger et al. 2015, eq. 2) from an instance label image.

.. math::

    w(x) = w_c(x) + w_0 \\exp\\left(-\\frac{(d_1(x) + d_2(x))^2}{2\\sigma^2}\\right)

* ``instances`` is an (H, W) integer image: 0 = background, 1..N one id per object (ids need not be consecutive).
* :math:`w_c` balances the class frequencies of the semantic mask ``instances > 0`` (background = class 0,
  foreground = class 1); see :func:`class_balance_weights` for the formula.
* :math:`d_1(x)` and :math:`d_2(x)` are the exact Euclidean distances (in pixels, centre to centre) from pixel ``x``
  to the nearest pixel of the nearest and of the second-nearest object. They are computed with
  :func:`scipy.ndimage.distance_transform_edt`.
* The border term is applied to **background pixels only** (the gaps between objects), as in the paper's Fig. 3d;
  object pixels get :math:`w_c` alone. With fewer than two objects the border term is 0 everywhere.

Cut-off. The border term is negligible when :math:`d_1 + d_2` is large, so it is set to 0 where
:math:`d_1 + d_2 >` ``max_distance``. The default, :func:`default_max_distance`, is
:math:`\\sigma\\sqrt{2\\ln 10^4} \\approx 4.29\\,\\sigma`: there the term has fallen to :math:`10^{-4} w_0`, so the
neglected part is below ``1e-4 * w0`` everywhere. Because a pixel with :math:`d_1 + d_2 \\le T` has both of its
nearest objects within distance :math:`T`, each object's distance transform is only computed on a window around the
object (its bounding box grown by :math:`\\lceil T \\rceil` pixels on every side), and the two smallest distances per
pixel are kept. The result equals the full-image computation (one EDT per object on the whole image, min and
second min over objects) followed by the same cut-off, exactly; it costs about O(sum of window areas) instead of
O(N * H * W). ``max_distance=math.inf`` switches the cut-off off (and makes every window the whole image).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "NEGLIGIBLE_FRACTION",
    "class_balance_weights",
    "default_max_distance",
    "unet_weight_map",
]

#: Relative size (of ``w0``) below which the border term is dropped by the default cut-off.
NEGLIGIBLE_FRACTION = 1e-4


def default_max_distance(sigma: float) -> float:
    """The default cut-off on ``d1 + d2``: ``sigma * sqrt(2 ln(1 / NEGLIGIBLE_FRACTION))`` (about 4.29 sigma).

    Beyond it ``exp(-(d1 + d2)^2 / (2 sigma^2)) < NEGLIGIBLE_FRACTION = 1e-4``.
    """
    sigma = _check_positive("sigma", sigma)
    return sigma * math.sqrt(2.0 * math.log(1.0 / NEGLIGIBLE_FRACTION))


def class_balance_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class weights that balance the class frequencies of a class-index image.

    Formula: inverse frequency normalised so that the most frequent class gets 1,
    ``w_c = n_max / n_c`` where ``n_c`` is the number of pixels of class ``c`` and ``n_max = max_c n_c``.
    A class that does not occur gets 1.0 (it has no pixels to weight, and this keeps the weights finite).

    Why this normalisation: every pixel's weight is >= 1, and the most frequent class (the background in nuclei and
    cell images) keeps weight 1, so ``w0 = 10`` of the border term keeps the scale it has in the paper relative to
    the background weight. (Median-frequency balancing, ``median(f) / f_c``, would give the majority class a weight
    below 1 with two classes and shrink the background's weight relative to ``w0``.) For two classes the map is
    ``1`` on the majority class and ``n_majority / n_minority`` on the other. Only ratios matter for the balance.

    Args:
        labels: class indices, any shape, integer (or bool) dtype, values in ``0..num_classes-1``.
        num_classes: number of classes (>= 1).

    Returns:
        float64 array of shape (num_classes,), every value >= 1.

    Raises:
        TypeError: ``labels`` is not an integer or bool array.
        ValueError: ``num_classes < 1`` or a label outside ``0..num_classes-1`` (the message names the value).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    labels = np.asarray(labels)
    if labels.dtype == bool:
        labels = labels.astype(np.uint8)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be an integer class-index array, got dtype {labels.dtype}")
    num_classes = int(num_classes)
    weights = np.ones(num_classes, dtype=np.float64)
    if labels.size == 0:
        return weights
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise ValueError(f"labels must lie in 0..{num_classes - 1} (num_classes={num_classes}), found {bad}")
    counts = np.bincount(labels.ravel(), minlength=num_classes).astype(np.float64)
    present = counts > 0
    weights[present] = counts.max() / counts[present]
    return weights


def unet_weight_map(
    instances: np.ndarray,
    w0: float = 10.0,
    sigma: float = 5.0,
    class_weights: str | Sequence[float] | None = "balanced",
    max_distance: float | None = None,
) -> np.ndarray:
    """The U-Net weight map ``w = w_c + w0 * exp(-(d1 + d2)^2 / (2 sigma^2))`` of an instance label image.

    The border term is applied to background pixels only (between objects), as in the paper's Fig. 3d; object pixels
    get ``w_c`` alone. With fewer than two objects the border term is 0. See the module docstring for the cut-off.

    Args:
        instances: (H, W) instance labels, integer or bool dtype (a float array is accepted when every value is a
            whole number): 0 = background, 1..N objects; ids need not be consecutive.
        w0: height of the border term (>= 0; the paper uses 10).
        sigma: width of the border term in pixels (> 0; the paper uses about 5).
        class_weights: ``"balanced"``: ``w_c`` from :func:`class_balance_weights` of the semantic mask
            ``instances > 0`` of this image (class 0 = background, 1 = objects); a pair ``(w_background, w_object)``
            of non-negative numbers: those weights; ``None``: ``w_c = 1`` everywhere.
        max_distance: cut-off in pixels on ``d1 + d2``: the border term is 0 where ``d1 + d2 > max_distance``.
            None: :func:`default_max_distance` (``~4.29 sigma``, neglected term < ``1e-4 * w0``); ``math.inf``: no
            cut-off (slow on large images with many objects).

    Returns:
        float32 array of shape (H, W), every value >= ``w_c`` of its pixel.

    Raises:
        TypeError: ``instances`` is not a numeric array, or ``w0``/``sigma``/``max_distance`` is not a number.
        ValueError: not 2-D, non-integer or negative labels, ``sigma <= 0``, ``w0 < 0``, ``max_distance <= 0``, or
            bad ``class_weights``; the message names the offending value.

    Example:
        >>> inst = np.zeros((1, 9), dtype=np.int32); inst[0, :2] = 1; inst[0, 5:] = 2
        >>> round(float(unet_weight_map(inst, class_weights=None)[0, 3]), 4)  # d1 + d2 = 2 + 2
        8.2615
    """
    labels = _check_instances(instances)
    w0 = _check_non_negative("w0", w0)
    sigma = _check_positive("sigma", sigma)
    cutoff = _resolve_max_distance(max_distance, sigma)
    wc = _resolve_class_weights(class_weights)
    foreground = labels > 0
    if wc is None:
        wc = class_balance_weights(foreground, 2)
    out = wc.astype(np.float32)[foreground.astype(np.intp)]
    if labels.size == 0 or w0 == 0.0:
        return out
    d1, d2 = _two_nearest_distances(labels, cutoff)
    if d1 is None:
        return out
    total = d1 + d2  # inf where fewer than two objects are within reach
    use = ~foreground & (total <= cutoff)
    t = total[use]
    out[use] += (w0 * np.exp(-(t * t) / (2.0 * sigma * sigma))).astype(np.float32)
    return out


def _two_nearest_distances(labels: np.ndarray, cutoff: float) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Smallest and second smallest distance to an object per pixel, exact wherever ``d1 + d2 <= cutoff``.

    Elsewhere the values are >= the true ones (possibly inf). Returns (None, None) with fewer than two objects.
    """
    if int(labels.max(initial=0)) > labels.size:  # sparse huge ids: relabel so find_objects stays small
        values, inverse = np.unique(labels, return_inverse=True)
        labels = inverse.reshape(labels.shape).astype(np.int64) + (1 if values[0] != 0 else 0)  # 0 stays 0
    slices = ndimage.find_objects(labels)
    objects = [(i + 1, s) for i, s in enumerate(slices) if s is not None]
    if len(objects) < 2:
        return None, None
    height, width = labels.shape
    pad = math.ceil(cutoff) if math.isfinite(cutoff) else max(height, width)
    d1 = np.full(labels.shape, np.inf)
    d2 = np.full(labels.shape, np.inf)
    for label, (rows, cols) in objects:
        r0, r1 = max(rows.start - pad, 0), min(rows.stop + pad, height)
        c0, c1 = max(cols.start - pad, 0), min(cols.stop + pad, width)
        # The whole object lies inside the window, so this is its exact distance for every pixel of the window;
        # pixels outside the window are farther than `pad` >= cutoff from it.
        dist = ndimage.distance_transform_edt(labels[r0:r1, c0:c1] != label)
        first, second = d1[r0:r1, c0:c1], d2[r0:r1, c0:c1]  # views: updated in place
        np.minimum(second, np.maximum(first, dist), out=second)
        np.minimum(first, dist, out=first)
    return d1, d2


def _check_instances(instances: np.ndarray) -> np.ndarray:
    """Validate an instance label image; return it as an integer array (int64 or its own integer dtype)."""
    array = np.asarray(instances)
    if array.ndim != 2:
        raise ValueError(f"instances must be a 2-D (H, W) label image, got shape {array.shape}")
    if array.dtype == bool:
        return array.astype(np.int32)
    if np.issubdtype(array.dtype, np.floating):
        whole = np.isfinite(array) & (array == np.round(array))
        if not whole.all():
            bad = array[~whole].flat[0].item()
            raise ValueError(f"instances must hold integer labels, found non-integer value {bad!r} "
                             f"(dtype {array.dtype})")
        array = array.astype(np.int64)
    elif not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"instances must be an integer label image, got dtype {array.dtype}")
    if array.size and array.dtype.kind == "i":
        low = int(array.min())
        if low < 0:
            raise ValueError(f"instances must be >= 0 (0 = background, 1..N objects), found label {low}")
    if array.dtype == np.uint64 or array.dtype.itemsize > 8:
        if array.size and int(array.max()) > np.iinfo(np.int64).max:
            raise ValueError(f"instance label {int(array.max())} is too large")
        array = array.astype(np.int64)
    return array


def _check_positive(name: str, value: float) -> float:
    number = _as_number(name, value)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {_show(value)}")
    return number


def _check_non_negative(name: str, value: float) -> float:
    number = _as_number(name, value)
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {_show(value)}")
    return number


def _show(value: object) -> str:
    """repr of a value, with NumPy scalars shown as plain Python numbers."""
    return repr(value.item()) if isinstance(value, np.generic) else repr(value)


def _as_number(name: str, value: object) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number, got {_show(value)}")
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {_show(value)}") from None


def _resolve_max_distance(max_distance: float | None, sigma: float) -> float:
    if max_distance is None:
        return default_max_distance(sigma)
    number = _as_number("max_distance", max_distance)
    if math.isnan(number) or number <= 0:
        raise ValueError(f"max_distance must be > 0 (math.inf for no cut-off) or None, got {_show(max_distance)}")
    return number


def _resolve_class_weights(class_weights: str | Sequence[float] | None) -> np.ndarray | None:
    """None for "balanced" (computed per image), else the fixed (background, object) weights."""
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(f"class_weights must be 'balanced', a (background, object) pair or None, "
                             f"got {class_weights!r}")
        return None
    if class_weights is None:
        return np.ones(2)
    try:
        values = np.asarray([float(v) for v in class_weights], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"class_weights must be 'balanced', a (background, object) pair or None, "
                         f"got {class_weights!r}") from None
    if values.shape != (2,) or not np.isfinite(values).all() or (values < 0).any():
        raise ValueError(f"class_weights must be two finite numbers >= 0 (background, object), got {class_weights!r}")
    return values
