"""Expression class names: the canonical seven (FER2013's, Goodfellow et al. 2013), contempt (CK+, Lucey et
al. 2010; AffectNet's eighth class, Mollahosseini et al. 2019) and the maps from each data set's labels to them.

Every loader maps its own label names or codes to an index of ``VOCABULARY`` (the seven in this order, index
0..6, then the extra names); a run's label set (``data.classes``, :mod:`fer_ablation.data.label_set`) then
keeps the classes it lists, in its own order, so metrics and predictions are comparable by name.
"""

from __future__ import annotations

import warnings

from fer_ablation.classes import CLASSES, EXTRA_CLASSES
from fer_ablation.data.errors import DataError

VOCABULARY: tuple[str, ...] = CLASSES + EXTRA_CLASSES
CLASS_TO_INDEX: dict[str, int] = {name: i for i, name in enumerate(VOCABULARY)}

# Lower-case alias -> canonical name. Canonical names map to themselves.
ALIASES: dict[str, str] = {
    **{name: name for name in VOCABULARY},
    "angry": "anger",
    "mad": "anger",
    "disgusted": "disgust",
    "disgusting": "disgust",
    "fearful": "fear",
    "scared": "fear",
    "afraid": "fear",
    "happy": "happiness",
    "joy": "happiness",
    "sad": "sadness",
    "surprised": "surprise",
    "neutrality": "neutral",
    "calm": "neutral",
    "contemptuous": "contempt",
}

# FER2013 csv "emotion" column: 0=Angry 1=Disgust 2=Fear 3=Happy 4=Sad 5=Surprise 6=Neutral.
FER2013_CODES: dict[int, str] = dict(enumerate(("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")))

# RAF-DB basic-emotion labels in EmoLabel/list_patition_label.txt (Li et al., CVPR 2017).
RAFDB_CODES: dict[int, str] = {
    1: "surprise", 2: "fear", 3: "disgust", 4: "happiness", 5: "sadness", 6: "anger", 7: "neutral",
}


def accepted_names() -> str:
    """Human-readable list of the canonical names and their aliases, for error messages."""
    by_class = {name: sorted(a for a, c in ALIASES.items() if c == name and a != name) for name in VOCABULARY}
    return "; ".join(f"{name} (aliases: {', '.join(al)})" if al else name for name, al in by_class.items())


def normalize_name(name: str) -> str:
    return str(name).strip().lower().replace("-", "_").replace(" ", "_")


def canonical_class(name: str, source: str = "") -> str:
    """Map a class name or alias (case-insensitive) to its canonical name.

    ``source`` (a path or data set name) is named in the error message when the name is unknown.
    """
    key = normalize_name(name)
    if key in ALIASES:
        return ALIASES[key]
    where = f" in {source}" if source else ""
    raise DataError(f"unknown class name {name!r}{where}; accepted names: {accepted_names()}")


def class_index(name: str, source: str = "") -> int:
    return CLASS_TO_INDEX[canonical_class(name, source)]


def is_known_class(name: str) -> bool:
    return normalize_name(name) in ALIASES


def fer2013_class(code: int | str, source: str = "") -> str:
    """Canonical name of a FER2013 csv emotion code (0..6)."""
    try:
        return canonical_class(FER2013_CODES[int(code)])
    except (KeyError, ValueError):
        raise DataError(f"FER2013 emotion {code!r}{' in ' + source if source else ''} is not one of 0..6 "
                        f"({', '.join(f'{k}={v}' for k, v in FER2013_CODES.items())})") from None


def rafdb_class(code: int | str, source: str = "") -> str:
    """Canonical name of a RAF-DB basic-emotion label (1..7)."""
    try:
        return RAFDB_CODES[int(code)]
    except (KeyError, ValueError):
        raise DataError(f"RAF-DB label {code!r}{' in ' + source if source else ''} is not one of 1..7 "
                        f"({', '.join(f'{k}={v}' for k, v in RAFDB_CODES.items())})") from None


def filter_known_classes(names: list[str], source: str = "",
                         ignore_unknown: bool = False) -> tuple[list[str], list[str]]:
    """Split folder/class names into (known, skipped).

    Unknown names raise DataError unless ``ignore_unknown`` is set, in which case they are skipped with a
    warning and returned as the second element.
    """
    known, skipped = [], []
    for name in names:
        if is_known_class(name):
            known.append(name)
        elif ignore_unknown:
            skipped.append(name)
        else:
            canonical_class(name, source)  # raises with the accepted names
    if skipped:
        warnings.warn(f"skipping unknown classes{' in ' + source if source else ''}: "
                      f"{', '.join(skipped)}", stacklevel=2)
    return known, skipped
