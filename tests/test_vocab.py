import numpy as np
import pytest

from movierec.data.vocab import Vocabulary
from movierec.errors import UnknownIdError


def test_codes_follow_sorted_unique_ids():
    v = Vocabulary([30, 10, 20, 10], kind="item")
    assert len(v) == 3
    assert v.index.tolist() == [10, 20, 30]
    assert v.codes([20, 30, 10]).tolist() == [1, 2, 0]
    assert v.ids([2, 0]).tolist() == [30, 10]


def test_unknown_ids_error_or_negative():
    v = Vocabulary([1, 2, 3], kind="user")
    with pytest.raises(UnknownIdError, match=r"unknown user id\(s\): \[7\]"):
        v.codes([1, 7])
    assert v.codes([1, 7, 0, 4], missing="negative").tolist() == [0, -1, -1, -1]
    assert 2 in v and 9 not in v


def test_out_of_range_codes_and_bad_dtype():
    v = Vocabulary([5, 6])
    with pytest.raises(UnknownIdError):
        v.ids([2])
    with pytest.raises(UnknownIdError, match="integers"):
        v.codes(np.array(["a"]))


def test_index_is_read_only():
    v = Vocabulary([1, 2])
    with pytest.raises(ValueError):
        v.index[0] = 5


def test_empty_vocabulary():
    v = Vocabulary([])
    assert v.codes([3], missing="negative").tolist() == [-1]
