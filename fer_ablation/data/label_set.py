"""A run's label set (``data.classes``): which classes the model has, in which order.

Loaders label every sample with an index of :data:`~fer_ablation.data.labels.VOCABULARY` (the canonical
seven, then contempt); :func:`select_classes` keeps the samples whose class is in the label set, relabels them
with their position in it and counts the rest per split and class (``describe()["excluded_classes"]`` in
metrics.json). With the default label set (the seven in canonical order) the targets are unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from fer_ablation.data.errors import DataError
from fer_ablation.data.folders import SampleSplits
from fer_ablation.data.labels import ALIASES, CLASS_TO_INDEX, VOCABULARY, accepted_names, normalize_name


def resolve_classes(names: Sequence[str] | None, source: str = "data.classes") -> tuple[str, ...]:
    """The label set as canonical names, in the given order: aliases map by name, duplicates and unknown
    names are errors, and a classifier needs at least two classes."""
    if names is None or isinstance(names, str) or len(names) < 2:
        raise DataError(f"{source}={names!r}: expected a list of at least two class names from "
                        f"{accepted_names()}")
    resolved = []
    for name in names:
        key = normalize_name(name)
        if key not in ALIASES:
            raise DataError(f"{source}: unknown class name {name!r}; accepted names: {accepted_names()}")
        canonical = ALIASES[key]
        if canonical in resolved:
            raise DataError(f"{source}={list(names)}: {name!r} names {canonical!r} a second time")
        resolved.append(canonical)
    return tuple(resolved)


def select_classes(sources: SampleSplits, classes: Sequence[str]) -> tuple[SampleSplits, dict[str, dict[str, int]]]:
    """(``sources`` relabelled to positions in ``classes``, {split: {class: images excluded}}).

    Only splits that lost images appear in the counts. The samples keep their order.
    """
    remap = np.full(len(VOCABULARY), -1, dtype=np.int64)
    for position, name in enumerate(classes):
        remap[CLASS_TO_INDEX[name]] = position
    splits, excluded = {}, {}
    for split, samples in sources.splits.items():
        targets = np.asarray(samples.targets, dtype=np.int64)
        mapped = remap[targets] if len(targets) else targets
        keep = np.flatnonzero(mapped >= 0)
        if len(keep) < len(targets):
            dropped = np.bincount(targets[mapped < 0], minlength=len(VOCABULARY))
            excluded[split] = {VOCABULARY[i]: int(n) for i, n in enumerate(dropped) if n}
            samples = samples.subset(keep.tolist())
        samples = dataclasses.replace(samples, targets=mapped[keep].tolist())
        splits[split] = samples
    return dataclasses.replace(sources, splits=splits), excluded
