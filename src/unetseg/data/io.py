"""Reading and writing images: PNG, JPEG, BMP, TIFF (uncompressed or LZW, Deflate, ZSTD, JPEG, PackBits
compressed), OME-TIFF and OME-Zarr; grey, RGB or several channels; 8-, 16- or 32-bit integers or floating point.

Every image read for training, inspection or prediction goes through :func:`read_image` (or :func:`read_stack` for
the pages of a TIFF stack), which refuses, with a :class:`DataError` naming the file and saying what to do:
an image larger than :func:`max_pixels` (checked from the file's header, before decoding), a multi-page TIFF or a
multi-plane OME image read as one image without a plane chosen (pages are not taken as channels, unless the file
says they are: see :mod:`.tiff` and :mod:`.ome`), an empty image, and NaN or infinite pixels.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from ..fileio import atomic_path
from .channels import drop_alpha, real_channels
from .errors import DataError, size_text
from .ome import Axes, Channel, is_zarr, open_zarr, read_zarr_plane, read_zarr_stack, select_channels
from .tiff import TiffLayout, read_tiff, read_tiff_plane, tiff_layout

logger = logging.getLogger(__name__)

#: the name endings of images: files, and OME-Zarr image folders (``NAME.ome.zarr``, ``NAME.zarr``)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".zarr")
TIFF_SUFFIXES = (".tif", ".tiff")
#: the TIFF compressions :func:`write_tiff` writes (tifffile's names; ``zlib`` is Adobe Deflate)
TIFF_COMPRESSIONS = ("none", "zlib", "adobe_deflate", "deflate", "lzw", "zstd", "jpeg", "packbits")

#: The largest image read whole, in pixels (width x height), about 16k x 16k; the environment variable
#: ``UNETSEG_MAX_PIXELS`` overrides it. Larger TIFF images can be predicted block by block (``predict --block``).
MAX_PIXELS = 2**28
MAX_PIXELS_VARIABLE = "UNETSEG_MAX_PIXELS"

#: The smallest image side of training data (:func:`check_min_size`; smaller images break the network's training).
MIN_SIDE = 8

#: The formats Pillow may read: a file with another content (GIF, ICO, ...) is refused, whatever its name.
PILLOW_FORMATS = ("PNG", "JPEG", "BMP")


def max_pixels() -> int:
    """The pixel limit of :func:`read_image`: ``$UNETSEG_MAX_PIXELS`` when set, else :data:`MAX_PIXELS`.

    Raises:
        DataError: the environment variable is not a positive whole number.
    """
    raw = os.environ.get(MAX_PIXELS_VARIABLE, "").strip()
    if not raw:
        return MAX_PIXELS
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise DataError(f"{MAX_PIXELS_VARIABLE}={raw!r}: expected a positive whole number of pixels, e.g. "
                        f"{MAX_PIXELS_VARIABLE}={2 * MAX_PIXELS}; unset it for the default {MAX_PIXELS}")
    return value


def check_pixels(path: str | os.PathLike, width: int, height: int, pages: int = 1) -> None:
    """Refuse an image of more than :func:`max_pixels` pixels (or with an empty side) before it is decoded.

    Raises:
        DataError: naming ``path``, its size and the limit, and how to go on.
    """
    if width <= 0 or height <= 0:
        raise DataError(f"{path}: empty image ({width}x{height} pixels); expected a 2-D image with pixels")
    limit = max_pixels()
    if width * height > limit:
        what = f"{pages} pages of {size_text(width, height)}" if pages > 1 else size_text(width, height)
        raise DataError(
            f"{path}: image of {what} ({width * height:,} pixels{' per page' if pages > 1 else ''}), more than the "
            f"limit of {limit:,} pixels (a guard against decompression bombs). If the image is genuine, raise the limit "
            f"with the environment variable {MAX_PIXELS_VARIABLE} (e.g. {MAX_PIXELS_VARIABLE}={width * height}) or "
            "split the image into tiles; TIFF images larger than this can be predicted block by block with "
            "`unetseg predict --block 2048`")


def check_finite(path: str | os.PathLike, array: np.ndarray, channels_last: bool | None = None) -> None:
    """Refuse a floating-point image with NaN or infinite pixels (integer images pass at once).

    Args:
        path: the file, for the message.
        array: the image (or stack).
        channels_last: whether the last axis holds channels (a pixel counts once, whichever channel is bad);
            None: when ``array`` has 3 dimensions.

    Raises:
        DataError: naming ``path`` and how many pixels are NaN, +inf and -inf.
    """
    if not np.issubdtype(array.dtype, np.floating) or np.isfinite(array).all():
        return
    if channels_last is None:
        channels_last = array.ndim == 3

    def pixels(bad: np.ndarray) -> int:
        return int((bad.any(axis=-1) if channels_last else bad).sum())

    counts = [(pixels(np.isnan(array)), "NaN"), (pixels(np.isposinf(array)), "+inf"),
              (pixels(np.isneginf(array)), "-inf")]
    found = " and ".join(f"{n} {name}" for n, name in counts if n)
    raise DataError(f"{path}: {found} pixel(s) in a {array.dtype} image; expected finite values: replace them "
                    "(e.g. with 0) or mask them out")


def check_min_size(image: np.ndarray, path: str | os.PathLike) -> None:
    """Refuse an image with a side under :data:`MIN_SIDE` pixels (too small to pass the network).

    Raises:
        DataError: naming ``path`` and its size.
    """
    height, width = image.shape[:2]
    if height < MIN_SIDE or width < MIN_SIDE:
        raise DataError(f"{path}: too small to segment: {size_text(width, height)}; at least "
                        f"{MIN_SIDE}x{MIN_SIDE}: use larger images (or leave this one out)")


def read_image(path: str | os.PathLike, channel: Channel = None, plane: int | None = None,
               channels: int | None = None) -> np.ndarray:
    """Read an image file (or OME-Zarr folder) as a NumPy array.

    Args:
        path: a PNG, JPEG, BMP or TIFF file (any compression; OME-TIFF and ImageJ hyperstacks with their axes), or
            an OME-Zarr folder (level 0 is read).
        channel: the channel (an index) or channels (a list) to keep; None: every channel.
        plane: the plane of a file with several (Z slices, time points, pages; counted over all of them in the
            file's axis order); None: the only plane (several are an error). A file with one plane ignores it.
        channels: the channels the caller expects (a model's input channels), or None. A file with an explicit
            channel axis (OME, ImageJ, NGFF) holding more, or another number than 1, needs ``channel``: such
            channels are never averaged to grey or taken as alpha.

    Returns:
        (H, W) for single-channel images, (H, W, C) otherwise, in the file's dtype (uint8, uint16, uint32,
        float32, ...). Palette images are returned as their index values; alpha channels are kept (callers decide).
        A TIFF's channels are its samples (RGB) or an ImageJ/OME hyperstack's channel axis.

    Raises:
        DataError: the file is missing or unreadable (a compression without its codec: what to install); larger
            than :func:`max_pixels`; several planes and no ``plane`` (a stack: see :func:`read_stack`), or a plane
            or channel out of range; empty; or with NaN or infinite pixels.
    """
    path = Path(path)
    array, axes = _read_plane(path, plane)
    if axes is not None and channel is None and channels is not None:
        _check_channel_choice(path, axes, channels)
    array = select_channels(array, channel, path, axes.describe() if axes is not None else "")
    if array.ndim not in (2, 3) or array.dtype.kind not in "biuf":
        raise DataError(f"{path}: an array of {array.dtype} with shape {array.shape}; expected a 2-D image (H, W) "
                        "or (H, W, C) of integers or floating-point numbers")
    check_finite(path, array)
    return array


def _read_plane(path: Path, plane: int | None) -> tuple[np.ndarray, Axes | None]:
    """(one 2-D image of ``path`` as (H, W) or (H, W, C), the axes of the file when it has named axes)."""
    if is_zarr(path):
        image = open_zarr(path)
        check_pixels(path, image.axes.width, image.axes.height)
        return _squeeze(read_zarr_plane(image, plane if image.axes.planes > 1 else None)), image.axes
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return _read_pillow(path), None
    layout = tiff_layout(path)
    check_pixels(path, layout.width, layout.height)
    axes = layout.series_axes()
    if layout.pages == 1:
        return read_tiff(path)[0], axes
    if plane is None:
        raise DataError(_stack_message(path, layout))
    if not 0 <= plane < layout.pages:
        what = axes.describe() if axes is not None else f"{layout.pages} pages"
        raise DataError(f"{path}: --plane {plane} is out of range: the file has {what}; choose one with --plane "
                        f"0..{layout.pages - 1}")
    return _squeeze(read_tiff_plane(path, plane)), axes


def _squeeze(image: np.ndarray) -> np.ndarray:
    """An (H, W, 1) image as (H, W); others unchanged."""
    return image[:, :, 0] if image.ndim == 3 and image.shape[2] == 1 else image


def _check_channel_choice(path: Path, axes: Axes, channels: int) -> None:
    """DataError when the explicit channel axis of ``path`` holds channels that cannot feed ``channels`` inputs
    without a choice (more of them, or another number than 1)."""
    found = axes.explicit_channels()
    if found > 1 and found != channels:
        raise DataError(f"{path} has {axes.describe()}; the model takes {channels} channel(s): "
                        f"{_choose_channels(channels, found)}")


def _choose_channels(wanted: int, found: int) -> str:
    """What to pass to feed ``wanted`` channels from ``found``: ``choose one with --channel 0..3``."""
    if wanted == 1:
        return f"choose one with --channel 0..{found - 1}"
    example = " ".join(map(str, range(min(wanted, found))))
    return f"choose {wanted} of 0..{found - 1} with --channel, e.g. --channel {example}"


def _stack_message(path: Path, layout: TiffLayout) -> str:
    """What a multi-page TIFF read as one image is, and what to do."""
    channels = f" with {layout.channels} channels" if layout.channels > 1 else ""
    stack = f"a stack of {layout.pages} pages of {size_text(layout.width, layout.height)}{channels}"
    axes = layout.series_axes()
    if axes is not None and set(axes.plane_axes) - set("IQ"):  # named planes (Z, T, ...): an OME/ImageJ image
        return (f"{path} has {axes.describe()}; choose one with --plane 0..{layout.pages - 1} (data.plane). As "
                f"training data, {stack} pairs with a mask stack of as many pages (see docs/data.md, Formats)")
    return (f"{path}: {stack}; expected one 2-D image (grey or RGB). A stack of slices pairs with a mask stack of as "
            "many pages (see docs/data.md, Formats), or split it into one file per page, or choose one page with "
            f"--plane 0..{layout.pages - 1}; pages meant as channels need an ImageJ or OME hyperstack with a "
            "channel axis")


def _read_pillow(path: Path) -> np.ndarray:
    """A PNG, JPEG or BMP file as an array, its size checked from the header before decoding.

    Pillow's own size check is off while the header is read (its warning or error would reach the user; the size is
    checked here, with :func:`check_pixels`); afterwards Pillow's limit is :func:`max_pixels`, so any other reading
    with Pillow in this process refuses the same images. Pillow's warnings about a damaged file are silenced: the
    error raised says what is wrong.
    """
    limit = max_pixels()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Image.MAX_IMAGE_PIXELS = None
            try:
                image = Image.open(path, formats=PILLOW_FORMATS)
            finally:
                Image.MAX_IMAGE_PIXELS = limit
            with image:
                check_pixels(path, *image.size)
                array = np.asarray(image)
                if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
                    array = array.astype(np.uint16)
    except DataError:
        raise
    except FileNotFoundError as err:
        raise DataError(f"{path}: file not found") from err
    except Exception as err:  # Pillow raises many types on a damaged or foreign file; all mean "not readable"
        raise DataError(f"{path}: cannot read the image ({type(err).__name__}: {err}); expected a PNG, JPEG, BMP or "
                        "TIFF file: re-save the file, or replace it") from err
    return array


def write_png(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write a uint8 (grey or RGB) or uint16 (grey) array as PNG, atomically.

    Raises:
        ValueError: the dtype/shape cannot be stored as PNG.
    """
    grey16 = array.dtype == np.uint16 and array.ndim == 2
    grey_or_colour8 = array.dtype == np.uint8 and (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)))
    if not (grey16 or grey_or_colour8):
        raise ValueError(f"{path}: cannot write an array of dtype {array.dtype} and shape {array.shape} as PNG")
    image = Image.fromarray(array)
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def to_channels(image: np.ndarray, channels: int, path: str | os.PathLike = "<array>") -> np.ndarray:
    """Return ``image`` as (H, W, channels): drops alpha, repeats grey to RGB, averages RGB to grey.

    An image that already has ``channels`` channels is returned unchanged (so 2 or 4 real channels are kept when
    the model expects 2 or 4); otherwise a 2nd/4th channel is taken as alpha and dropped (logged once).

    Raises:
        DataError: a channel count that cannot be converted (names ``path``).
    """
    if image.ndim == 2:
        image = image[:, :, None]
    c = image.shape[2]
    if c == channels:  # e.g. a 2- or 4-channel nnU-Net image with as many real channels as the model expects
        return image
    if real_channels(c) != c:  # grey+alpha, RGBA: drop alpha
        if not _alpha_noted:
            _note_alpha(path, c)
        image = drop_alpha(image)
        c = image.shape[2]
    if c == channels:
        return image
    if c == 1 and channels == 3:
        return np.repeat(image, 3, axis=2)
    if c == 3 and channels == 1:
        return image.astype(np.float32).mean(axis=2, keepdims=True)
    raise DataError(f"{path}: image has {c} channel(s), the model expects {channels}: "
                    f"{_choose_channels(channels, c)}")


_alpha_noted = False


def _note_alpha(path: str | os.PathLike, c: int) -> None:
    """Log once per process that alpha channels are dropped (the first file is named)."""
    global _alpha_noted
    _alpha_noted = True
    logger.info("%s: %d channels with alpha; the alpha channel is dropped (noted once)", path, c)


def is_image(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an image by its name: a file with an image suffix, or an OME-Zarr folder
    (``NAME.ome.zarr``, ``NAME.zarr``); a folder of another name is not one."""
    path = Path(path)
    if path.is_dir():
        return is_zarr(path)
    return path.suffix.lower() in IMAGE_SUFFIXES


def image_stem(path: str | os.PathLike) -> str:
    """The name of an image without its suffix, and without ``.ome`` (``cells.ome.tif`` and ``cells.ome.zarr``
    -> ``cells``), so that OME images pair with masks of the plain name."""
    stem = Path(path).stem
    return stem[: -len(".ome")] if stem.lower().endswith(".ome") and len(stem) > len(".ome") else stem


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Images directly inside ``folder`` (files by suffix, and OME-Zarr folders; hidden entries skipped), sorted by
    name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and is_image(p))


def files_by_stem(folder: str | os.PathLike) -> dict[str, Path]:
    """The image files of ``folder`` keyed by stem.

    Raises:
        DataError: ``folder`` is not a folder, or two files share a stem (both named).
    """
    files, problems = collect_by_stem(folder)
    if problems:
        raise DataError(problems[0])
    return files


def collect_by_stem(folder: str | os.PathLike, suffix: str = "") -> tuple[dict[str, Path], list[str]]:
    """The image files of ``folder`` keyed by stem, collecting problems instead of raising.

    Args:
        folder: the folder to list.
        suffix: a suffix every stem must end with (e.g. ``_mask``); it is cut off the key.

    Returns:
        (files by stem, problems): a file whose stem lacks ``suffix`` or repeats another file's stem is left out
        and named in ``problems``.

    Raises:
        DataError: ``folder`` is not a folder.
    """
    files: dict[str, Path] = {}
    problems: list[str] = []
    for path in list_images(folder):
        stem = image_stem(path)
        if suffix:
            if not stem.endswith(suffix):
                problems.append(f"{path}: mask name does not end with the mask suffix {suffix!r}")
                continue
            stem = stem[: -len(suffix)]
        if stem in files:
            problems.append(f"{path}: two files share the stem {stem!r} (the other is {files[stem].name}); "
                            "rename or remove one")
            continue
        files[stem] = path
    return files, problems


def read_instances(path: str | os.PathLike, shape: tuple[int, ...], plane: int | None = None) -> np.ndarray:
    """Read an instance label image (8-, 16- or 32-bit, e.g. a uint32 TIFF of more than 65,535 objects) as int32
    (0 = background, 1..N objects); ``plane`` as in :func:`read_image`.

    Raises:
        DataError: the file is unreadable, not a single-channel integer image, with labels beyond int32, or not of
            (H, W) ``shape``.
    """
    labels = read_image(path, plane=plane)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: expected a single-channel integer instance label image, got {labels.dtype} "
                        f"with shape {labels.shape}")
    if labels.size and labels.dtype.itemsize >= 4 and int(labels.max()) > np.iinfo(np.int32).max:
        raise DataError(f"{path}: instance label {int(labels.max())} is above {np.iinfo(np.int32).max}; expected "
                        "object ids 1..N: relabel the objects consecutively")
    if labels.shape != shape:
        raise DataError(f"{path}: label image is {labels.shape[1]}x{labels.shape[0]}, its image "
                        f"{shape[1]}x{shape[0]} (width x height)")
    return labels.astype(np.int32)


def tiff_pages(path: str | os.PathLike) -> int:
    """Number of 2-D images (pages, planes) of a TIFF file or an OME-Zarr image, channels not counted (1 for other
    formats); see :mod:`.tiff` and :mod:`.ome`.

    Raises:
        DataError: the file is missing or not a readable TIFF or OME-Zarr image.
    """
    path = Path(path)
    if is_zarr(path):
        return open_zarr(path).axes.planes
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return 1
    return tiff_layout(path).pages


def check_one_image(path: str | os.PathLike) -> None:
    """Refuse, for region-by-region reading (``predict --block``), a TIFF that is not one 2-D image: several pages
    or planes, or channels stored as pages of their own (an OME/ImageJ channel axis); region reads see only the
    first page.

    Raises:
        DataError: naming ``path``, what it holds, and how to predict it instead; or the file is not a readable
            TIFF.
    """
    path = Path(path)
    layout = tiff_layout(path)
    axes = layout.series_axes()
    if layout.pages > 1 or (axes is not None and axes.explicit_channels() > 1):
        what = axes.describe() if axes is not None else f"{layout.pages} pages"
        raise DataError(f"{path} has {what}; --block reads one 2-D image (grey or RGB) region by region: predict it "
                        "without --block, choosing what to read with --plane and --channel")


def read_stack(path: str | os.PathLike, channel: Channel = None) -> np.ndarray:
    """Read a multi-page TIFF stack (e.g. ISBI 2012's ``train-volume.tif``; an OME-TIFF or ImageJ Z-stack or time
    series) or the planes of an OME-Zarr image as (N, H, W) or (N, H, W, C).

    Each page is one 2-D image, in the file's dtype (16-bit stays uint16); ``channel`` keeps one channel or a list
    of them (as in :func:`read_image`). A single-page TIFF or any other image file gives N = 1 (read with
    :func:`read_image`).

    Raises:
        DataError: the file is missing or unreadable, its pages are larger than :func:`max_pixels` or empty, a
            channel out of range, or NaN or infinite pixels.
    """
    path = Path(path)
    if is_zarr(path):
        image = open_zarr(path)
        check_pixels(path, image.axes.width, image.axes.height, image.axes.planes)
        array, what = read_zarr_stack(image), image.axes.describe()
        array = array[..., 0] if array.shape[3] == 1 else array
    elif path.suffix.lower() in TIFF_SUFFIXES:
        layout = tiff_layout(path)
        check_pixels(path, layout.width, layout.height, layout.pages)
        array, what = read_tiff(path), f"{layout.pages} pages with {layout.channels} channel(s)"
    else:
        return read_image(path, channel)[None]
    if channel is not None:
        array = np.stack([select_channels(page, channel, path, what) for page in array])
    if array.dtype.kind not in "biuf":
        raise DataError(f"{path}: a stack of {array.dtype} pages; expected integers or floating-point numbers")
    check_finite(path, array, array.ndim == 4)
    return array


def load_colormap(path: str | os.PathLike) -> dict[int, tuple[int, int, int]]:
    """Read a colour map file (YAML or JSON) mapping class index -> [R, G, B], e.g. ``{0: [0, 0, 0], 1: [255, 0, 0]}``.

    Raises:
        DataError: the file is missing or unreadable, or an entry is not ``index: [R, G, B]`` with 0..255 values, or
            two classes share a colour.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise DataError(f"{path}: cannot read the colour map ({err})") from err
    try:
        if path.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            import yaml

            raw = yaml.safe_load(text)
    except Exception as err:  # json.JSONDecodeError, yaml.YAMLError
        raise DataError(f"{path}: cannot parse the colour map ({err})") from err
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected a mapping of class index -> [R, G, B], got {type(raw).__name__}")
    colormap: dict[int, tuple[int, int, int]] = {}
    seen: dict[tuple[int, int, int], int] = {}
    for key, value in raw.items():
        try:
            index = int(key)
            rgb = tuple(int(v) for v in value)
        except (TypeError, ValueError):
            raise DataError(f"{path}: entry {key!r}: {value!r}; expected class index -> [R, G, B]") from None
        if index < 0 or len(rgb) != 3 or not all(0 <= v <= 255 for v in rgb):
            raise DataError(f"{path}: entry {key!r}: {value!r}; expected index >= 0 and [R, G, B] in 0..255")
        if rgb in seen:
            raise DataError(f"{path}: classes {seen[rgb]} and {index} share the colour {list(rgb)}")
        seen[rgb] = index
        colormap[index] = rgb  # type: ignore[assignment]
    return colormap


def colour_mask_to_labels(mask: np.ndarray, colormap: dict[int, tuple[int, int, int]],
                          path: str | os.PathLike = "<array>") -> np.ndarray:
    """Convert an RGB(A) colour-coded mask (H, W, 3|4) to class indices (uint8, or int32 for > 256 classes).

    Raises:
        DataError: the mask is not RGB, or has a colour missing from the colour map (names ``path``, the colour,
            and a pixel where it occurs).
    """
    if mask.ndim != 3 or mask.shape[2] not in (3, 4):
        raise DataError(f"{path}: expected an RGB colour mask (H, W, 3), got shape {mask.shape}")
    rgb = mask[:, :, :3].astype(np.int64)
    codes = (rgb[:, :, 0] << 16) | (rgb[:, :, 1] << 8) | rgb[:, :, 2]
    table = {(r << 16) | (g << 8) | b: i for i, (r, g, b) in colormap.items()}
    uniq, inverse = np.unique(codes, return_inverse=True)
    unknown = [int(u) for u in uniq if int(u) not in table]
    if unknown:
        u = unknown[0]
        y, x = np.argwhere(codes == u)[0]
        more = f" (and {len(unknown) - 1} more unknown colours)" if len(unknown) > 1 else ""
        raise DataError(f"{path}: colour {[u >> 16, (u >> 8) & 255, u & 255]} at (x={x}, y={y}) is not in the colour "
                        f"map (known: {sorted(colormap)}){more}")
    dtype = np.uint8 if max(colormap) < 256 else np.int32
    values = np.array([table[int(u)] for u in uniq], dtype=dtype)
    return values[inverse.reshape(codes.shape)]


def write_tiff(path: str | os.PathLike, array: np.ndarray, compression: str = "zlib") -> None:
    """Write an array as TIFF (any dtype; (K, H, W) becomes K pages), atomically.

    Args:
        path: the file.
        array: the image(s).
        compression: one of :data:`TIFF_COMPRESSIONS`: ``zlib`` (the default, Adobe Deflate), ``lzw``, ``zstd``,
            ``packbits``, ``deflate`` (the old Deflate code), ``jpeg`` (lossy; uint8 grey or RGB only) or ``none``.

    Raises:
        ValueError: an unknown compression, or JPEG for an array it cannot hold.
        DataError: the compression needs a codec that is not installed (names ``path`` and what to install).
    """
    if compression not in TIFF_COMPRESSIONS:
        raise ValueError(f"{path}: unknown TIFF compression {compression!r}; expected one of "
                         f"{', '.join(TIFF_COMPRESSIONS)}")
    if compression == "jpeg" and not (array.dtype == np.uint8 and (array.ndim == 2 or array.shape[-1] == 3)):
        raise ValueError(f"{path}: JPEG compression holds uint8 grey or RGB images, not {array.dtype} with shape "
                         f"{array.shape}; choose a lossless compression (zlib, lzw, zstd)")
    code = _compression_code(compression, path)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, array, compression=code, photometric=_photometric(array, compression))


def _compression_code(compression: str, path: str | os.PathLike) -> tifffile.COMPRESSION | None:
    """tifffile's code of a :data:`TIFF_COMPRESSIONS` name (None: uncompressed); DataError when its encoder is
    missing."""
    if compression == "none":
        return None
    name = {"zlib": "ADOBE_DEFLATE"}.get(compression, compression.upper())
    code = tifffile.COMPRESSION[name]
    try:
        tifffile.TIFF.COMPRESSORS[code]
    except KeyError as err:
        raise DataError(f"{path}: writing a {compression.upper()}-compressed TIFF needs the imagecodecs package: "
                        "pip install imagecodecs (or write it with compression='zlib')") from err
    return code


def _photometric(array: np.ndarray, compression: str) -> str | None:
    """The photometric interpretation to write: RGB for a (H, W, 3) uint8 JPEG, else tifffile's choice."""
    if compression == "jpeg":
        return "rgb" if array.ndim == 3 else "minisblack"
    return None
