"""Segmentation metrics: confusion-matrix metrics and ISBI 2012 region metrics."""
from .confusion import ConfusionMatrix, confusion_matrix, format_metrics_table, segmentation_metrics
from .regions import label_regions, rand_error

__all__ = [
    "ConfusionMatrix",
    "confusion_matrix",
    "format_metrics_table",
    "label_regions",
    "rand_error",
    "segmentation_metrics",
]
