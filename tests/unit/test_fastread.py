"""The Arrow helpers of the fast read path that need no database."""

import uuid

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from miyabi_analytics._db.fastread import UUID_BYTES, uuid_text

maybe_uuids = st.lists(st.one_of(st.none(), st.uuids()), max_size=60)


@given(values=maybe_uuids, start=st.integers(0, 70), stop=st.integers(0, 70))
def test_uuid_text_is_the_canonical_form(values, start, stop):
    array = pa.array([None if v is None else v.bytes for v in values], UUID_BYTES)
    window = array.slice(start, max(0, stop - start))  # offsets into shared buffers too
    expected = [None if v is None else str(v) for v in values[start:stop]]
    text = uuid_text(window)
    assert text.type == pa.string()
    assert text.to_pylist() == expected
    assert text.null_count == expected.count(None)
    text.validate(full=True)


@pytest.mark.parametrize("value", [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)])
def test_uuid_text_extremes(value):
    assert uuid_text(pa.array([value.bytes], UUID_BYTES)).to_pylist() == [str(value)]


def test_uuid_text_of_nothing():
    assert uuid_text(pa.array([], UUID_BYTES)).to_pylist() == []


def test_uuid_text_across_blocks():
    """More rows than one scratch block, with nulls on both sides of each boundary."""
    import random

    from miyabi_analytics._db.fastread import wire

    rng = random.Random(7)
    count = 2 * wire._UUID_BLOCK + 3
    values = [None if i % 5 == 0 else uuid.UUID(int=rng.getrandbits(128)) for i in range(count)]
    array = pa.array([None if v is None else v.bytes for v in values], UUID_BYTES)
    assert uuid_text(array).to_pylist() == [None if v is None else str(v) for v in values]
