"""Mining detection: the U-Net, its model card, tiled inference and vectorising.

Modules, one per concept:

- :mod:`asmspotter.detect.unet`: the U-Net (torch).
- :mod:`asmspotter.detect.model_card`: the JSON metadata beside the weights and the
  check that a model fits a composite (bands, pixel size).
- :mod:`asmspotter.detect.tiling`: overlapping tile windows and blending weights.
- :mod:`asmspotter.detect.infer`: load a model, predict probabilities tile by tile,
  and :func:`~asmspotter.detect.infer.detect_mines` (composite COG in, polygons out).
- :mod:`asmspotter.detect.vectorize`: probability map to polygons with area and score.
- :mod:`asmspotter.detect.metrics`: pixel and object precision/recall/F1/IoU.
- :mod:`asmspotter.detect.train`: train a model on generated chips
  (:mod:`asmspotter.synthetic`) and write its weights and card.

This ``__init__`` imports nothing, so ``import asmspotter`` never loads torch; the
submodules that need torch (``unet``, ``infer``, ``train``) load it when imported.
Upstream is :mod:`asmspotter.composite` (the composite COG); downstream is
``asmspotter.track`` (matching polygons to known sites).
"""
