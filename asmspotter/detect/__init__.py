"""Mining detection: the U-Net, its model card, tiled inference and vectorising.

Modules, one per concept:

- :mod:`asmspotter.detect.unet`: the U-Net (torch).
- :mod:`asmspotter.detect.model_card`: the JSON metadata beside the weights and the
  check that a model fits a composite (bands, pixel size).
- :mod:`asmspotter.detect.tiling`: overlapping tile windows and blending weights.
- :mod:`asmspotter.detect.runtime`: load a model (weights check, device, threads).
- :mod:`asmspotter.detect.features`: a composite's bands in a model's input order.
- :mod:`asmspotter.detect.predict`: predict probabilities tile by tile, in batches.
- :mod:`asmspotter.detect.blocks`: column blocks, and row strips x column blocks on Dask.
- :mod:`asmspotter.detect.stage`: :func:`~asmspotter.detect.stage.detect_sites`
  (composite COG in, probability COG and polygons out).
- :mod:`asmspotter.detect.vectorize`: probability map to polygons with area and score.
- :mod:`asmspotter.detect.metrics`: pixel and object precision/recall/F1/IoU.
- :mod:`asmspotter.detect.train`: train a model (one frozen ``TrainConfig``) on
  generated chips (:mod:`asmspotter.synthetic`) or labelled scenes and write its
  weights and card.

This ``__init__`` imports nothing, so ``import asmspotter`` never loads torch; the
submodules that need torch (``unet``, ``runtime``, ``predict``, ``train``) load it when imported.
Upstream is :mod:`asmspotter.composite` (the composite COG); downstream is
``asmspotter.track`` (matching polygons to known sites).
"""
