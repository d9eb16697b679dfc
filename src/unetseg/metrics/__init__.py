"""Segmentation metrics: confusion-matrix metrics, ISBI 2012 region metrics, instance metrics (with the Cell Tracking
Challenge SEG measure) and boundary metrics."""
from .boundary import hausdorff_distance, hausdorff_per_class, mask_boundary
from .confusion import SCALAR_METRICS, ConfusionMatrix, confusion_matrix, format_metrics_table, segmentation_metrics
from .instances import (
    DSB_THRESHOLDS,
    aggregated_jaccard_index,
    as_instances,
    average_precision,
    f1_at,
    instance_iou_matrix,
    instance_metrics,
    match_instances,
    seg_score,
)
from .regions import label_regions, rand_error, rand_index_error, variation_of_information

__all__ = [
    "DSB_THRESHOLDS",
    "SCALAR_METRICS",
    "ConfusionMatrix",
    "aggregated_jaccard_index",
    "as_instances",
    "average_precision",
    "confusion_matrix",
    "f1_at",
    "format_metrics_table",
    "hausdorff_distance",
    "hausdorff_per_class",
    "instance_iou_matrix",
    "instance_metrics",
    "label_regions",
    "mask_boundary",
    "match_instances",
    "rand_error",
    "rand_index_error",
    "seg_score",
    "segmentation_metrics",
    "variation_of_information",
]
