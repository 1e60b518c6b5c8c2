"""Every documented error: the exception type and a message that names the offending argument."""

from __future__ import annotations

import textwrap

import fastconv
import numpy as np
import pytest
from conftest import raises_naming, run_python

CHANNELS = r"groups|channels?|C"  # the contract lets a channel mismatch name groups or the channels
KERNEL_FIT = r"w|padding|kernel|dilation"  # "kernel ... larger than padded input", naming w/padding


@pytest.fixture
def xw():
    return np.ones((2, 4, 9, 8)), np.ones((6, 2, 3, 3))


# ---- conv: shapes and ranks


def test_x_and_w_rank_mismatch(xw):
    x, w = xw
    with raises_naming(ValueError, "x"):
        fastconv.conv(x[0], w)


@pytest.mark.parametrize("w_shape", [(6, 4), (6, 4, 1, 1, 1, 1)], ids=["rank0", "rank4"])
def test_unsupported_spatial_rank(w_shape):
    x = np.ones((2, 4) + (3,) * (len(w_shape) - 2))
    with raises_naming(ValueError, "w|x"):
        fastconv.conv(x, np.ones(w_shape))


@pytest.mark.parametrize("fn", ["conv1d", "conv3d"])
def test_rank_specific_function_checks_w(fn, xw):
    x, w = xw
    with raises_naming(ValueError, "w"):
        getattr(fastconv, fn)(x, w, groups=2)
    for junk in (None, b"x", {"a": 1}):  # no array: TypeError (was "expects w with 3 dims")
        with raises_naming(TypeError, "w"):
            getattr(fastconv, fn)(x, junk)


def test_channel_mismatch(xw):
    x, _ = xw
    with raises_naming(ValueError, CHANNELS):
        fastconv.conv(x, np.ones((6, 3, 3, 3)))
    with raises_naming(ValueError, CHANNELS):
        fastconv.conv(x, np.ones((6, 4, 3, 3)), groups=2)


def test_groups_not_dividing_channels():
    with raises_naming(ValueError, "groups"):
        fastconv.conv(np.ones((1, 5, 6, 6)), np.ones((4, 2, 3, 3)), groups=2)  # C = 5


def test_groups_not_dividing_output_channels(xw):
    x, _ = xw
    with raises_naming(ValueError, "groups"):
        fastconv.conv(x, np.ones((5, 2, 3, 3)), groups=2)  # K = 5


@pytest.mark.parametrize("groups", [0, -2])
def test_nonpositive_groups(groups, xw):
    x, w = xw
    with raises_naming(ValueError, "groups"):
        fastconv.conv(x, w, groups=groups)


def test_bias_shape(xw):
    x, w = xw
    with raises_naming(ValueError, "bias"):
        fastconv.conv(x, w, np.ones(5), groups=2)
    with raises_naming(ValueError, "bias"):
        fastconv.conv(x, w, np.ones((6, 1)), groups=2)


# ---- conv: per-dimension arguments


@pytest.mark.parametrize("value", [0, -1, (1, 0), (2, -3)], ids=str)
@pytest.mark.parametrize("name", ["stride", "dilation"])
def test_nonpositive_stride_and_dilation(name, value, xw):
    x, w = xw
    with raises_naming(ValueError, name):
        fastconv.conv(x, w, groups=2, **{name: value})


@pytest.mark.parametrize("padding", [-1, (0, -1), ((0, 1), (-1, 0))], ids=str)
def test_negative_padding(padding, xw):
    x, w = xw
    with raises_naming(ValueError, "padding"):
        fastconv.conv(x, w, groups=2, padding=padding)


@pytest.mark.parametrize("padding", ["SAME!", "half", ""])
def test_unknown_padding_string(padding, xw):
    x, w = xw
    with raises_naming(ValueError, "padding"):
        fastconv.conv(x, w, groups=2, padding=padding)


@pytest.mark.parametrize(
    "name,value",
    [("stride", (1, 1, 1)), ("dilation", (1,)), ("padding", (1, 1, 1)), ("padding", ((0, 1),))],
    ids=str,
)
def test_wrong_length_per_dim_tuples(name, value, xw):
    x, w = xw
    with raises_naming(ValueError, name):
        fastconv.conv(x, w, groups=2, **{name: value})


@pytest.mark.parametrize(
    "name,value",
    [
        ("stride", True),
        ("stride", 1.0),
        ("dilation", (1, 2.0)),
        ("padding", False),
        ("padding", 1.5),
    ],
    ids=str,
)
def test_non_int_per_dim_values(name, value, xw):
    x, w = xw
    with raises_naming(TypeError, name):
        fastconv.conv(x, w, groups=2, **{name: value})


@pytest.mark.parametrize("value", [(True, 1), (1.0, 1), (1, np.int64(1))], ids=str)
def test_equal_tuple_of_another_type_after_a_cached_call(value, xw):
    """A call with stride=(1, 1) caches its runner under a key of the parameters and their
    element types (fastconv/_calls.py _quick_types, memoised by the parameters' ids): a tuple equal
    to it but of other element types must not reuse it."""
    x, w = (np.ascontiguousarray(a, dtype=np.float32) for a in xw)
    stride = (1, 1)
    for _ in range(2):
        fastconv.conv(x, w, groups=2, stride=stride)
    if isinstance(value[1], np.integer):  # NumPy integers are accepted, and give the same result
        want = fastconv.conv(x, w, groups=2, stride=stride)
        np.testing.assert_array_equal(fastconv.conv(x, w, groups=2, stride=value), want)
        return
    with raises_naming(TypeError, "stride"):
        fastconv.conv(x, w, groups=2, stride=value)


@pytest.mark.parametrize(
    "kw", [dict(), dict(dilation=3), dict(padding=(0, 1), dilation=(1, 6))], ids=str
)
def test_kernel_larger_than_padded_input(kw):
    x, w = np.ones((1, 2, 5, 4)), np.ones((3, 2, 6, 2))
    if kw:
        w = np.ones((3, 2, 3, 2))
    with raises_naming(ValueError, KERNEL_FIT):
        fastconv.conv(x, w, **kw)


def test_unknown_mode(xw):
    x, w = xw
    with raises_naming(ValueError, "mode"):
        fastconv.conv(x, w, groups=2, mode="correlate")


def test_unknown_algo(xw):
    x, w = xw
    with raises_naming(ValueError, "algo"):
        fastconv.conv(x, w, groups=2, algo="magic")
    with raises_naming(ValueError, "algo"):
        fastconv.conv_backward_data(np.ones((2, 6, 7, 6)), w, x.shape, groups=2, algo="magic")


# ---- dtypes and kinds


BAD_DTYPES = [np.int32, np.int64, np.bool_, np.complex64, np.complex128, np.float16, object]


@pytest.mark.parametrize("dtype", BAD_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("which", ["x", "w"])
def test_unsupported_dtypes(which, dtype, xw):
    x, w = xw
    args = {"x": x, "w": w}
    args[which] = args[which].astype(dtype)
    with raises_naming(TypeError, which):
        fastconv.conv(args["x"], args["w"], groups=2)


@pytest.mark.parametrize("dtype", [np.int64, np.complex128], ids=lambda d: np.dtype(d).name)
def test_unsupported_dtypes_in_pooling(dtype):
    with raises_naming(TypeError, "x"):
        fastconv.max_pool(np.ones((1, 2, 6, 6), dtype), 2)


def test_mixed_dtypes(xw):
    x, w = xw
    with raises_naming(TypeError, "x", "w"):
        fastconv.conv(x.astype(np.float32), w, groups=2)
    with raises_naming(TypeError, "bias"):
        fastconv.conv(x, w, np.ones(6, np.float32), groups=2)
    with raises_naming(TypeError, "x", "grad_y"):
        fastconv.conv_backward_weight(x, np.ones((2, 6, 7, 6), np.float32), w.shape, groups=2)
    with raises_naming(TypeError, "grad_y", "w"):
        fastconv.conv_backward_data(np.ones((2, 6, 7, 6), np.float32), w, x.shape, groups=2)


@pytest.mark.parametrize("bad", ["abc", None, {"a": 1}, object()], ids=lambda b: type(b).__name__)
def test_non_array_objects(bad, xw):
    x, w = xw
    with pytest.raises(TypeError):
        fastconv.conv(bad, w)
    with pytest.raises(TypeError):
        fastconv.conv(x, bad)


# ---- gradients


def test_grad_y_shape_must_match_conv_output(xw):
    x, w = xw
    gy = np.ones((2, 6, 7, 5))  # conv output is (2, 6, 7, 6)
    with raises_naming(ValueError, "grad_y"):
        fastconv.conv_backward_data(gy, w, x.shape, groups=2)
    with raises_naming(ValueError, "grad_y"):
        fastconv.conv_backward_weight(x, gy, w.shape, groups=2)


def test_shape_arguments_of_wrong_length(xw):
    x, w = xw
    gy = np.ones((2, 6, 7, 6))
    with raises_naming(ValueError, "x_shape"):
        fastconv.conv_backward_data(gy, w, x.shape[1:], groups=2)
    with raises_naming(ValueError, "w_shape"):
        fastconv.conv_backward_weight(x, gy, w.shape + (1,), groups=2)


def test_overflowing_sizes_are_rejected_before_allocation():
    # x_shape's element count is 2**80: an int64 overflow, with an otherwise consistent geometry
    one = np.ones((1, 1, 1, 1), np.float32)
    with raises_naming(ValueError, "x_shape"):
        fastconv.conv_backward_data(one, one, (1, 1, 2**40, 2**40), stride=2**40)
    with raises_naming(ValueError, "x_shape"):
        fastconv.conv_backward_data(one, one, (1, 1, 2**62, 2**62), stride=2**62)
    with raises_naming(ValueError, "x_shape|groups|channels?|C"):
        fastconv.conv_backward_data(one, one, (2**40, 2**40, 2**40, 1))  # the brief's example


def test_overflowing_transposed_output_is_rejected():
    x, w = np.ones((1, 1, 2, 2)), np.ones((1, 1, 1, 1))
    with raises_naming(ValueError, "stride|output|x"):
        fastconv.conv_transpose(x, w, stride=2**62)  # out = 2**62 + 1 per dim


@pytest.mark.parametrize(
    "call",
    [
        # 2**51 float32 elements (8 PiB) for grad_x; the geometry itself is valid
        "fastconv.conv_backward_data(one, one, (1, 1, 2**31, 2**20), stride=(2**31, 2**20))",
        # (2**24 + 1)**2 * 4 elements for the transposed output (~4 PiB)
        "fastconv.conv_transpose(np.ones((1, 1, 2, 2), np.float32),"
        " np.ones((1, 4, 1, 1), np.float32),"
        " stride=2**24)",
    ],
    ids=["backward_data", "conv_transpose"],
)
def test_huge_output_raises_memory_error(call):
    # In a subprocess: a library that tried to fill the buffer would hang or be killed, not fail.
    code = textwrap.dedent(f"""
        import numpy as np, fastconv
        one = np.ones((1, 1, 1, 1), np.float32)
        try:
            {call}
        except MemoryError as e:
            print("MemoryError:", e)
        except BaseException as e:
            print("other:", type(e).__name__, e)
        else:
            print("no error")
    """)
    proc = run_python(code, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("MemoryError"), proc.stdout + proc.stderr


# ---- transposed conv


@pytest.mark.parametrize(
    "kw",
    [
        dict(output_padding=2, stride=2),
        dict(output_padding=1),
        dict(output_padding=(0, 3), stride=3, dilation=2),
        dict(output_padding=-1, stride=2),
        dict(output_padding=(1, 1, 1), stride=2),
    ],
    ids=str,
)
def test_invalid_output_padding(kw):
    x, w = np.ones((1, 4, 5, 5)), np.ones((4, 3, 3, 3))
    with raises_naming(ValueError, "output_padding"):
        fastconv.conv_transpose(x, w, **kw)


@pytest.mark.parametrize("padding", ["same", "full", -1])
def test_transposed_padding_forms(padding):
    x, w = np.ones((1, 4, 5, 5)), np.ones((4, 3, 3, 3))
    with raises_naming(ValueError, "padding"):
        fastconv.conv_transpose(x, w, padding=padding)


def test_transposed_output_smaller_than_one():
    x, w = np.ones((1, 4, 1, 1)), np.ones((4, 3, 1, 1))
    with raises_naming(ValueError, "padding"):
        fastconv.conv_transpose(x, w, padding=1)  # out = 0 - 2 + 0 + 1 = -1


def test_transposed_channel_and_group_errors():
    x = np.ones((1, 4, 5, 5))
    with raises_naming(ValueError, CHANNELS + "|w"):
        fastconv.conv_transpose(x, np.ones((3, 3, 3, 3)))
    with raises_naming(ValueError, "groups"):
        fastconv.conv_transpose(x, np.ones((4, 3, 3, 3)), groups=3)


# ---- pooling


@pytest.mark.parametrize("fn", ["max_pool", "avg_pool"])
@pytest.mark.parametrize("padding", [2, (1, 2), ((0, 2), (1, 1)), ((1, 1), (2, 0))], ids=str)
def test_pool_padding_over_half_the_kernel(fn, padding):
    x = np.ones((1, 2, 9, 9))
    with raises_naming(ValueError, "padding"):
        getattr(fastconv, fn)(x, 3, padding=padding)  # each side must be <= 3 // 2


@pytest.mark.parametrize("fn", ["max_pool", "avg_pool"])
def test_pool_negative_padding(fn):
    with raises_naming(ValueError, "padding"):
        getattr(fastconv, fn)(np.ones((1, 2, 9, 9)), 3, padding=-1)


@pytest.mark.parametrize("p", [0, -1, -0.5, float("nan"), float("inf"), float("-inf")], ids=repr)
def test_lp_pool_invalid_p(p):
    x = np.ones((1, 2, 6, 6))
    with raises_naming(ValueError, "p"):
        fastconv.lp_pool(x, p, 2)
    with raises_naming(ValueError, "p"):
        fastconv.lp_pool_backward(np.ones((1, 2, 3, 3)), x, p, 2)


@pytest.mark.parametrize("shape", [(2, 6), (1, 1, 2, 2, 2, 2)], ids=["rank0", "rank4"])
@pytest.mark.parametrize("fn", ["max_pool", "avg_pool", "lp_pool"])
def test_pool_rank(fn, shape):
    args = (2, 2) if fn == "lp_pool" else (2,)
    with raises_naming(ValueError, "x"):
        getattr(fastconv, fn)(np.ones(shape), *args)


@pytest.mark.parametrize(
    "name,value",
    [
        ("kernel_size", 0),
        ("stride", 0),
        ("dilation", 0),
        ("kernel_size", (2, 2, 2)),
        ("stride", (1,)),
        ("dilation", (-1, 1)),
    ],
    ids=str,
)
def test_pool_per_dim_arguments(name, value):
    x = np.ones((1, 2, 6, 6))
    kw = {"kernel_size": 2, name: value}
    with raises_naming(ValueError, name):
        fastconv.max_pool(x, **kw)


def test_pool_kernel_larger_than_input():
    with raises_naming(ValueError, "kernel_size|padding|x"):
        fastconv.max_pool(np.ones((1, 2, 3, 3)), 5)
    with raises_naming(ValueError, "kernel_size|padding|x"):
        fastconv.avg_pool(np.ones((1, 2, 3)), 6, padding=1)


def test_pool_backward_grad_y_shape():
    x = np.ones((1, 2, 6, 6))
    with raises_naming(ValueError, "grad_y"):
        fastconv.max_pool_backward(np.ones((1, 2, 2, 3)), x, 2)
    with raises_naming(ValueError, "grad_y"):
        fastconv.avg_pool_backward(np.ones((1, 2, 2, 3)), x.shape, 2)
    with raises_naming(ValueError, "grad_y"):
        fastconv.lp_pool_backward(np.ones((1, 3, 3, 3)), x, 2, 2)


@pytest.mark.parametrize("bad", [16, -2, 2**40], ids=str)  # (-1: no position, skipped)
def test_max_unpool_index_out_of_range(bad):
    y = np.ones((1, 2, 2, 2))
    idx = np.zeros((1, 2, 2, 2), np.int64)
    idx[0, 1, 1, 0] = bad  # output plane is 4 x 4 = 16 cells
    with raises_naming(ValueError, "indices"):
        fastconv.max_unpool(y, idx, 2)


def test_max_unpool_indices_shape():
    with raises_naming(ValueError, "indices"):
        fastconv.max_unpool(np.ones((1, 2, 2, 2)), np.zeros((1, 2, 2, 1), np.int64), 2)


def test_max_unpool_overflowing_output_size():
    y, idx = np.ones((1, 1, 1, 1)), np.zeros((1, 1, 1, 1), np.int64)
    with raises_naming(ValueError, "output_size"):
        fastconv.max_unpool(y, idx, 2, output_size=(2**40, 2**40))


# ---- misc


@pytest.mark.parametrize(
    "kw,name",
    [(dict(op="convolution"), "op"), (dict(op="pool"), "op"), (dict(device="tpu"), "device")],
    ids=str,
)
def test_algorithms_unknown_op_or_device(kw, name):
    with raises_naming(ValueError, name):
        fastconv.algorithms(**kw)


@pytest.mark.parametrize("n", [0, -1])
def test_set_num_threads_below_one(n):
    before = fastconv.get_num_threads()
    with raises_naming(ValueError, "n|num_threads|threads"):
        fastconv.set_num_threads(n)
    assert fastconv.get_num_threads() == before  # a rejected call changes nothing
