"""SynthVOC: a procedurally drawn dataset in the exact PASCAL VOCdevkit layout, the suite's embedded default.

Real VOC and ImageNet cannot ship with the suite, yet every pipeline (pretraining, the three transfer
evaluators, ``bench data check``) should run end to end out of the box. SynthVOC is written in the same
folders and file formats as VOC2007 (JPEG images, VOC XML, ``ImageSets``, per-class label files, palette
segmentation PNGs with 255 boundaries), so the code that reads it is the code that reads real VOC.

What the images hold:
- 20 object kinds that borrow the VOC class names as placeholders. A kind is defined by its SHAPE and PART
  STRUCTURE (wheels under a body, a ring pair with spokes, a head with ears, a chain of carriages…) and,
  for nine objects in ten, by its TYPICAL COLOURS (a body hue and an accent hue per class, see
  ``CLASS_HUES``); textures, shading and the remaining colours are random per instance.
- 1–4 objects per image from a fifth of the frame across to all of it; later objects occlude earlier ones
  (boxes and masks cover the visible part only); objects cut by the border are marked ``truncated``,
  small or mostly hidden ones ``difficult``, as in VOC.
- Structured, muted backgrounds (gradients, stripes, checkerboards, blobs, horizons, noise), so that
  filling a hole needs its context, which is what a context encoder learns from.

Splits for ``num_images`` images (sizes scale proportionally; 2000 → 1000 / 250 / 250 / 500):
- ``pool/images``: 50%, the unlabelled pretraining pool (the stand-in for ImageNet), with image-level
  multi-hot labels kept aside in ``pool/labels.csv`` for the supervised baseline only;
- ``Main/trainval``: 25%, split in halves ``train`` / ``val``; ``Main/test``: the remaining 25%.
- ``Segmentation/{train,val,trainval}`` = ``Main/{train,val,trainval}``. Every SynthVOC image has masks,
  so there is no reason to subsample; seg ``train`` and seg ``val`` are disjoint, as in VOC2012.
All these sets are pairwise disjoint where VOC's are, and the pool shares no image with any of them.

Generation is deterministic: image ``i`` is drawn from a generator seeded by ``(seed, i)``, so the bytes
do not depend on the number of worker processes. ``SYNTHVOC.json`` is written last (atomically); its
presence marks a complete dataset.

Modules: ``shapes.py`` (the 20 object kinds), ``scene.py`` (backgrounds, colours, one image),
``devkit.py`` (the VOCdevkit writer and the splits), ``cache.py`` (the cached default dataset).
"""

from ssl_bench.data.synthvoc.cache import (
    HELDOUT_POOL,
    default_cache_dir,
    ensure_heldout_pool,
    ensure_synthvoc,
    synthvoc_pool,
)
from ssl_bench.data.synthvoc.devkit import GENERATOR_VERSION, MARKER, generate_synthvoc, split_sizes
from ssl_bench.data.synthvoc.scene import render_image

__all__ = ["GENERATOR_VERSION", "HELDOUT_POOL", "MARKER", "default_cache_dir", "ensure_heldout_pool",
           "ensure_synthvoc", "generate_synthvoc", "render_image", "split_sizes", "synthvoc_pool"]
