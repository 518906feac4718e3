"""Train the mining U-Net and write its weights and model card.

One run is one frozen :class:`~asmspotter.detect.train.config.TrainConfig`, built and
validated by the CLI (``asmspotter model train``), the ``train`` and ``build-dataset``
flows or ``scripts/train_default_model.py``, and passed to
:func:`asmspotter.detect.train.detector.train_detector`. Modules, along the run:

- :mod:`~asmspotter.detect.train.config`: :class:`TrainConfig` (no torch).
- :mod:`~asmspotter.detect.train.data`: the three splits, from generated chips
  (:mod:`asmspotter.synthetic`) or from a folder of scenes and label polygons.
- :mod:`~asmspotter.detect.train.inputs`: the model's six input bands from
  reflectance, and the training split's normalisation.
- :mod:`~asmspotter.detect.train.augment`: rotations, flips, brightness, haze,
  pixel-size jitter.
- :mod:`~asmspotter.detect.train.loop`: BCE + Dice, AdamW and a cosine schedule, the
  best validation epoch kept, a resumable checkpoint per epoch, on a GPU when one is
  there (bf16 autocast optional).
- :mod:`~asmspotter.detect.train.evaluation`: the threshold from validation, pixel and
  object metrics on the held-out test split, ``weights.pt`` and ``model_card.json``.
- :mod:`~asmspotter.detect.train.detector`: :func:`train_detector`, the entry point.

This ``__init__`` imports nothing, so building a ``TrainConfig`` never loads torch.
"""
