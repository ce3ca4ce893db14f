"""Expression class names, importable without torch (the report reads them).

``CLASSES``: the canonical seven in FER2013's order (Goodfellow et al. 2013), the default label set.
``EXTRA_CLASSES``: names a label set may use beyond them: contempt (CK+, Lucey et al. 2010; AffectNet's
eighth class, Mollahosseini et al. 2019).
"""

CLASSES: tuple[str, ...] = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
EXTRA_CLASSES: tuple[str, ...] = ("contempt",)
