"""Data: canonical labels, loaders for FER2013 / image folders / RAF-DB / the synthetic probe, and the datamodule.

``build_datamodule`` is imported lazily so that light users (labels, the synthetic generator CLI) do not pay
for importing Lightning.
"""

from fer_ablation.data.errors import DataError
from fer_ablation.data.labels import CLASSES, canonical_class

__all__ = ["CLASSES", "DataError", "FERDataModule", "build_datamodule", "canonical_class"]


def __getattr__(name):
    if name in ("build_datamodule", "FERDataModule"):
        from fer_ablation.data import datamodule

        return getattr(datamodule, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
