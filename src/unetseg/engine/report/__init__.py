"""The HTML report of a training run and an evaluation (``unetseg report``, ``unetseg evaluate --report``): one
self-contained file (style, script, data and pictures inlined; nothing fetched) that opens from disk.

Modules: :mod:`.run_info` (reading a run directory), :mod:`.sources` (the evaluated images from folders or from an
evaluation in memory), :mod:`.pictures` (image, truth, prediction and error map as inlined pictures; merged and
split objects), :mod:`.curves` (learning curves as SVG), :mod:`.columns` (the per-image table),
:mod:`.sections` and :mod:`.page` (the HTML), :mod:`.assets` (its style and script), :mod:`.build` (the whole).
"""

from .build import THUMBNAIL, build_html_report, write_html_report
from .pictures import ReportImage, merged_and_split
from .run_info import RunInfo, read_run, run_of_checkpoint
from .sources import check_images, folder_images, images_folder, kept_images

__all__ = ["THUMBNAIL", "ReportImage", "RunInfo", "build_html_report", "check_images", "folder_images",
           "images_folder", "kept_images", "merged_and_split", "read_run", "run_of_checkpoint", "write_html_report"]
