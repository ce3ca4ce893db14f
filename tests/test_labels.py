"""Canonical classes, aliases and the per-data-set label maps (SPEC §6)."""

import pytest

from fer_ablation.data import CLASSES, DataError, canonical_class
from fer_ablation.data.labels import (
    FER2013_CODES,
    class_index,
    fer2013_class,
    filter_known_classes,
    rafdb_class,
)


def test_classes_order():
    assert CLASSES == ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")


@pytest.mark.parametrize("name, expected", [
    ("Angry", "anger"), ("ANGER", "anger"), ("happy", "happiness"), ("Happiness", "happiness"),
    ("sad", "sadness"), ("Surprised", "surprise"), ("fearful", "fear"), ("scared", "fear"), ("Fear", "fear"),
    ("disgusted", "disgust"), ("neutrality", "neutral"), (" Neutral ", "neutral"),
])
def test_aliases_case_insensitive(name, expected):
    assert canonical_class(name) == expected


def test_unknown_name_lists_accepted_names_and_aliases():
    with pytest.raises(DataError) as err:
        canonical_class("pain", source="/data/unbc/pain")
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "'pain'" in msg and "/data/unbc/pain" in msg and "contempt" in msg
    for name in CLASSES:
        assert name in msg
    for alias in ("angry", "happy", "sad", "surprised", "fearful", "scared", "disgusted"):
        assert alias in msg


def test_fer2013_codes_follow_canonical_order():
    # FER2013 emotion 0..6 = angry, disgust, fear, happy, sad, surprise, neutral
    assert [fer2013_class(code) for code in range(7)] == list(CLASSES)
    assert FER2013_CODES[3] == "happy"
    for bad in (7, -1, "x"):
        with pytest.raises(DataError, match="0..6"):
            fer2013_class(bad, source="row 5")


def test_rafdb_codes_map_by_name():
    expected = ["surprise", "fear", "disgust", "happiness", "sadness", "anger", "neutral"]
    assert [rafdb_class(code) for code in range(1, 8)] == expected
    assert [class_index(rafdb_class(code)) for code in range(1, 8)] == [5, 2, 1, 3, 4, 0, 6]
    for bad in (0, 8, "seven"):
        with pytest.raises(DataError, match="1..7"):
            rafdb_class(bad)


def test_unknown_classes_error_unless_ignored():
    names = ["angry", "pain", "happy", "contempt"]
    with pytest.raises(DataError, match="pain"):
        filter_known_classes(names, source="unbc")
    with pytest.warns(UserWarning, match="pain"):
        known, skipped = filter_known_classes(names, source="unbc", ignore_unknown=True)
    assert known == ["angry", "happy", "contempt"] and skipped == ["pain"]
