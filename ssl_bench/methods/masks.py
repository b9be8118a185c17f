"""TEMPORARY re-export: the masks moved to :mod:`ssl_bench.data.masks` (the data pipeline draws them).

Kept only until ``evaluators/inpainting.py`` and ``perf/speed.py`` import from ``ssl_bench.data.masks``;
then delete this file.
"""

from ssl_bench.data.masks import MASK_TYPES, center_mask, fill_holes, make_mask

__all__ = ["MASK_TYPES", "center_mask", "fill_holes", "make_mask"]
