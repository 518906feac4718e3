"""asmspotter: continuous satellite monitoring of artisanal and small-scale gold mining.

The core library. It imports no Prefect; torch is imported only by ``asmspotter.detect``.
Flows live in ``flows/``, Prefect tasks in ``tasks/``; both call into this package.
"""

__version__ = "0.1.0"
