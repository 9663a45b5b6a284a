"""qmetal.Buffer: zero-copy views in both directions, lifetimes, copies when
alignment forbids aliasing, and bad input."""

import gc
import weakref

import numpy as np
import pytest

import qmetal
from conftest import BFLOAT16

ALL_DTYPES = ["float32", "float16", "bfloat16", "int8", "uint8", "int16", "uint16",
              "int32", "uint32", "int64", "uint64"]


def numpy_dtype(name):
    return BFLOAT16 if name == "bfloat16" else np.dtype(name)


def random_array(rng, shape, name):
    dtype = numpy_dtype(name)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    return rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("name", ALL_DTYPES)
def test_wrap_numpy_is_zero_copy_both_ways(rng, name):
    source = random_array(rng, (5, 7), name)
    buffer = qmetal.asbuffer(source)
    assert not buffer.copied
    assert buffer.dtype == name and buffer.shape == (5, 7) and buffer.nbytes == source.nbytes
    assert buffer.address == source.ctypes.data

    view = np.asarray(buffer)
    assert view.dtype == source.dtype and np.shares_memory(view, source)
    fresh = random_array(rng, (7,), name)
    view[2] = fresh  # write through the buffer's view...
    np.testing.assert_array_equal(source[2].view(np.uint8), fresh.view(np.uint8))  # ...read in the source
    source[4] = source[0]  # and the other way round
    np.testing.assert_array_equal(view[4].view(np.uint8), source[0].view(np.uint8))


def test_dlpack_is_zero_copy(rng):
    source = rng.standard_normal((3, 9)).astype(np.float32)
    buffer = qmetal.asbuffer(source)
    view = np.from_dlpack(buffer)
    assert np.shares_memory(view, source)
    view[1, 2] = 123.5
    assert source[1, 2] == 123.5
    assert buffer.__dlpack_device__() == (1, 0)


def test_buffer_keeps_source_alive_and_releases_it():
    source = np.arange(1000, dtype=np.float32)
    alive = weakref.ref(source)
    buffer = qmetal.asbuffer(source)
    del source
    gc.collect()
    assert alive() is not None
    view = np.asarray(buffer)
    del buffer
    gc.collect()
    assert alive() is not None  # the view still reaches the memory
    np.testing.assert_array_equal(view, np.arange(1000, dtype=np.float32))
    del view
    gc.collect()
    assert alive() is None  # and nothing leaks once every holder is gone


def test_view_outlives_owning_buffer(rng):
    buffer = qmetal.empty((64, 33), "float32")
    values = rng.standard_normal((64, 33)).astype(np.float32)
    view = buffer.numpy()
    view[...] = values
    del buffer
    gc.collect()
    _ = [np.ones(4096) for _ in range(64)]  # reuse freed memory if any was freed
    np.testing.assert_array_equal(view, values)
    view += 1  # still writable memory
    np.testing.assert_array_equal(view, values + 1)


def test_empty_is_page_aligned():
    page = qmetal._core.page_size()
    for shape in [(1,), (3, 5), (0,), (page + 1,)]:
        buffer = qmetal.empty(shape, "uint8")
        assert buffer.address % page == 0
        assert buffer.owns_memory and not buffer.copied
        assert buffer.shape == shape
    assert qmetal.zeros((4, 4), "int32").numpy().sum() == 0


def test_misaligned_array_is_copied_and_says_so(rng):
    raw = np.zeros(4 * 11 + 1, dtype=np.uint8)
    misaligned = raw[1:].view(np.float32)
    misaligned[...] = rng.standard_normal(11)
    assert misaligned.ctypes.data % 16 != 0
    buffer = qmetal.asbuffer(misaligned)
    assert buffer.copied and buffer.owns_memory
    assert buffer.address % qmetal._core.page_size() == 0
    np.testing.assert_array_equal(np.asarray(buffer), misaligned)
    np.asarray(buffer)[0] = 7.0
    assert misaligned[0] != 7.0  # a copy does not alias


def test_strided_array_is_copied(rng):
    source = rng.standard_normal((6, 8)).astype(np.float32)
    buffer = qmetal.asbuffer(source[:, ::2])
    assert buffer.copied and buffer.shape == (6, 4)
    np.testing.assert_array_equal(np.asarray(buffer), source[:, ::2])


def test_readonly_array_gives_readonly_buffer():
    source = np.arange(8, dtype=np.int32)
    source.flags.writeable = False
    buffer = qmetal.asbuffer(source)
    assert buffer.readonly and not buffer.copied
    assert not np.asarray(buffer).flags.writeable


def test_buffer_passes_through_and_checks_dtype():
    buffer = qmetal.empty((2,), "float16")
    assert qmetal.asbuffer(buffer) is buffer
    with pytest.raises(TypeError, match="array: buffer has dtype float16, expected float32"):
        qmetal.asbuffer(buffer, dtype="float32")


@pytest.mark.parametrize("bad, error, message", [
    (np.array([object()]), TypeError, "array: expected one of"),
    (np.arange(3, dtype=">f4"), TypeError, "native byte order"),
    (np.arange(3, dtype=np.complex64), TypeError, "array: expected one of"),
])
def test_asbuffer_rejects_unsupported_arrays(bad, error, message):
    with pytest.raises(error, match=message):
        qmetal.asbuffer(bad)


def test_asbuffer_rejects_mismatched_dtype():
    with pytest.raises(TypeError, match="does not match dtype=float16"):
        qmetal.asbuffer(np.zeros(3, np.float32), dtype="float16")


def test_empty_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"shape: extents must be >= 0, got \(2, -1\)"):
        qmetal.empty((2, -1), "float32")
    with pytest.raises(TypeError, match="dtype: expected one of"):
        qmetal.empty((2,), "float128")
    with pytest.raises(TypeError, match="dtype"):
        qmetal._core.Buffer.empty([2], "complex64")


def test_wrap_bytes_checks_size():
    with pytest.raises(ValueError, match="array: 12 bytes do not hold"):
        qmetal._core.Buffer._wrap_bytes(np.zeros(12, np.uint8), "float32", [4], 16, False, False)
    with pytest.raises(TypeError, match="1-d C-contiguous uint8"):
        qmetal._core.Buffer._wrap_bytes(np.zeros(4, np.float32), "float32", [4], 16, False, False)


def test_repr_and_len():
    buffer = qmetal.empty((3, 2), "int8")
    assert len(buffer) == 3
    assert repr(buffer) == "qmetal.Buffer(shape=(3, 2), dtype=int8)"
    with pytest.raises(TypeError, match="0-d"):
        len(qmetal.empty((), "int8"))
