"""Fuzz cases over the whole public API (tests/test_fuzz.py runs them, tests/fuzz_campaign.py runs
many of them in child processes).

A case is one public call drawn from the full argument space: valid and invalid values of every
argument (ints, tuples of the wrong length, zero, negative and huge values, bools, floats, None,
strings), arrays of every layout (non-contiguous, negative strides, Fortran order, big-endian,
read-only, overlapping and broadcast views, lists), wrong ranks, empty dims, unsupported dtypes
and NaN/Inf data. While it is drawn the case records what must happen:

- every argument well formed and the geometry valid: the result equals the float64 oracle
  (tests/reference.py and the oracles of the op's own tests);
- some argument malformed: ValueError / TypeError naming one of the malformed arguments (an
  allocation too large: MemoryError; a forced algorithm that cannot serve: NotImplementedError);
- "maybe" (huge values, empty dims): either a documented error or the oracle's result;

and, always: no other exception, no crash, no hang, the input buffers byte-identical.
"""

from __future__ import annotations

import faulthandler
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import fastconv
import numpy as np
import reference as ref
from conftest import assert_close
from hypothesis import strategies as st
from test_local_conv import oracle_forward as tiled_oracle
from test_resample import oracle_linear, oracle_nearest, oracle_shuffle, oracle_unshuffle

ALLOWED = (ValueError, TypeError, MemoryError, NotImplementedError)
# Names a geometry error may give (a kernel that does not fit, channels that disagree, ...).
GEOMETRY = (
    "x|w|x_shape|w_shape|grad_y|padding|dilation|stride|kernel|kernel_size|groups|channels?|C|K"
    "|output|output_padding|output_size|input|shape|factors|weights|indices|r|scale|tiles"
)
HUGE = [2**31, 2**40, 2**41, 2**62, 2**63 - 1, 2**63, 2**64, 2**100]
NEG_HUGE = [-(2**63), -(2**64), -(2**40)]
CALL_TIMEOUT = 60.0  # seconds per call before faulthandler dumps the stacks and exits


# Elements an operand the cases make may have (larger geometries get a small stand-in).
HOLDABLE_ELEMS = 2**24


def _holdable(shape) -> bool:
    """Whether an array of `shape` can be made for a case: every dimension fits NumPy and the
    elements stay within HOLDABLE_ELEMS."""
    return all(0 <= d < 2**31 for d in shape) and math.prod(shape) <= HOLDABLE_ELEMS


@dataclass
class Case:
    name: str
    fn: Callable
    args: tuple
    kwargs: dict
    bad: list = field(default_factory=list)  # [(exception types, names regex)]: must raise one
    maybe: list = field(default_factory=list)  # acceptable errors, success also acceptable
    oracle: Optional[Callable] = None  # () -> expected result (float64 array or tuple)
    check: Optional[Callable] = None  # extra assertions on a result
    reduction: int = 1
    dtype: Any = np.float64
    owners: list = field(default_factory=list)  # arrays whose buffers the call must not modify
    nan_strict: bool = True  # the oracle's NaN/Inf positions are exact (not a dense matrix's)
    # The tolerance's scale is at least this: a sum of products errs by eps x the sum of |a b|
    # whatever the result (FFT's float32 weight gradient left 2e-8 where every product falls on
    # padding and the oracle is exactly 0).
    scale_floor: float = 0.0
    notes: list = field(default_factory=list)

    def __repr__(self):
        def short(v):
            if isinstance(v, np.ndarray):
                return (
                    f"array(shape={v.shape}, dtype={v.dtype.str}, strides={v.strides}, "
                    f"writeable={v.flags.writeable})"
                )
            if isinstance(v, (list, tuple)) and any(isinstance(e, np.ndarray) for e in v):
                return "[" + ", ".join(short(e) for e in v) + "]"
            return repr(v)

        args = ", ".join(short(a) for a in self.args)
        kw = ", ".join(f"{k}={short(v)}" for k, v in self.kwargs.items())
        return f"fastconv.{self.name}({args}{', ' if kw else ''}{kw})  notes={self.notes}"


def _names_match(msg: str, names: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_])(?:{names})(?![A-Za-z0-9_])", msg) is not None


def _snapshot(owners):
    return [(o, o.tobytes(), o.flags.writeable) for o in owners]


def run_case(case: Case) -> str:
    """Runs one case and asserts its contract; returns the outcome ("ok", "error:<type>")."""
    before = _snapshot(case.owners)
    faulthandler.dump_traceback_later(CALL_TIMEOUT, exit=True)
    try:
        result = case.fn(*case.args, **case.kwargs)
        error = None
    except ALLOWED as e:
        error = e
    except Exception as e:  # noqa: BLE001 -- any other kind is a defect
        raise AssertionError(f"{type(e).__name__} ({e}) is no documented error; {case!r}") from e
    finally:
        faulthandler.cancel_dump_traceback_later()
    for owner, data, writeable in before:
        assert owner.tobytes() == data, f"an input buffer was modified; {case!r}"
        assert owner.flags.writeable == writeable, f"an input's flags changed; {case!r}"
    if error is not None:
        msg = str(error)
        options = case.bad + case.maybe
        for types, names in options:
            if isinstance(error, types) and (
                isinstance(error, MemoryError) or names is None or _names_match(msg, names)
            ):
                return f"error:{type(error).__name__}"
        raise AssertionError(
            f"unexpected {type(error).__name__}: {msg!r}; expected "
            f"{[(tuple(t.__name__ for t in ts), n) for ts, n in options] or 'a result'}; {case!r}"
        ) from error
    if case.bad:
        raise AssertionError(f"no error, but expected one of {case.bad}; {case!r}")
    if case.check is not None:
        case.check(result)
    if case.oracle is not None:
        try:
            want = case.oracle()
        except Exception:  # noqa: BLE001 -- the oracle cannot do some "maybe" cases
            if not case.maybe:
                raise
            return "ok:no-oracle"
        _compare(result, want, case)
    return "ok"


def _compare(got, want, case):
    if isinstance(want, tuple):
        assert isinstance(got, (tuple, list)) and len(got) == len(want), f"{type(got)}; {case!r}"
        for g, w in zip(got, want):
            _compare(g, w, case)
        return
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{type(got)}; {case!r}"
        for g, w in zip(got, want):
            _compare(g, w, case)
        return
    assert type(got) is np.ndarray, f"result is a {type(got).__name__}; {case!r}"
    want = np.asarray(want)
    if want.dtype.kind in "iu":
        np.testing.assert_array_equal(got, want, err_msg=repr(case))
        return
    assert got.dtype == np.dtype(case.dtype), f"dtype {got.dtype}; {case!r}"
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}; {case!r}"
    finite = np.isfinite(want)
    # NaN / Inf: where the oracle is not finite the result must not be either (Inf of the same
    # sign where the oracle has Inf); the finite rest compares under the usual tolerance.
    gotf = got.astype(np.float64)
    bad = ~finite & np.isfinite(gotf)
    assert not (case.nan_strict and bad.any()), f"finite where the oracle has NaN/Inf; {case!r}"
    inf = np.isinf(want)
    both = inf & np.isinf(gotf)
    assert np.all(gotf[both] == want[both]), f"Inf of the wrong sign; {case!r}"
    if not case.nan_strict:  # NaN/Inf may also reach outputs through zero padding (0 * NaN)
        finite = finite & np.isfinite(gotf)
    if finite.any():
        scale = float(np.abs(want[finite]).max())
        assert_close(
            np.where(finite, gotf, 0.0),
            np.where(finite, want, 0.0),
            dtype=case.dtype,
            reduction=case.reduction,
            scale=max(scale, case.scale_floor),
            err_msg=repr(case),
        )


def _is_valid(padding) -> bool:
    """padding == "valid" for any padding argument (arrays compare element-wise)."""
    return isinstance(padding, str) and padding == "valid"


def _product_scale(a, b) -> float:
    """max |a| x max |b| over the finite values of two operands (0 when either is missing)."""
    if a is None or b is None:
        return 0.0
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    return float(np.abs(a).max() * np.abs(b).max()) if a.size and b.size else 0.0


# ---- drawing arguments


class Builder:
    """Draws arguments and records what each makes the call do."""

    def __init__(self, draw, dtype):
        self.draw = draw
        self.dtype = dtype
        self.bad: list = []
        self.maybe: list = []
        self.owners: list = []
        self.notes: list = []
        self.clean = True  # every argument well formed (geometry then decides)
        # Half the cases keep every argument well formed (data layouts and NaN/Inf still vary);
        # the others make each argument bad with some probability.
        self.faulty = draw(st.booleans())
        self.special = False  # NaN/Inf in the data
        self.mixed = False  # an operand already took the other float dtype

    def fault(self, weight=8) -> bool:
        return self.faulty and self.chance(weight)

    def chance(self, weight) -> bool:
        return self.draw(st.integers(0, weight - 1)) == 0

    def expect(self, types, names):
        self.bad.append((types, names))
        self.clean = False

    def allow(self, types, names):
        self.maybe.append((types, names))

    def forget(self, name):
        """Drops what a drawn argument the call will not get was expected to raise (the
        remaining faults still leave the case unclean: a conservative count)."""
        self.bad = [(types, names) for types, names in self.bad if names != name]

    # -- ints and per-dim arguments

    def per_dim(self, name, rank, lo, hi, none_ok=False, zero_ok=False, weight=8):
        """An int or a per-dim sequence with values in [lo, hi], or (rarely) a bad value."""
        d = self.draw
        if not self.fault(weight):
            one = st.integers(lo, hi)
            return d(
                st.one_of(
                    one,
                    st.tuples(*[one] * rank),
                    st.lists(one, min_size=rank, max_size=rank),
                    one.map(np.int64),
                    st.tuples(*[one.map(np.int32)] * rank),
                )
            )
        kind = d(
            st.sampled_from(
                ["low", "bool", "float", "none", "str", "len", "huge", "neghuge", "entry", "array"]
            )
        )
        self.notes.append(f"{name}:{kind}")
        if kind == "low":
            v = d(st.integers(-3, lo - 1)) if lo > -3 else lo - 1
            self.expect((ValueError,), name)
            return d(st.sampled_from([v, (v,) * rank, [lo] * (rank - 1) + [v]]))
        if kind == "bool":
            self.expect((TypeError,), name)
            return d(st.sampled_from([True, False, (True,) * rank, np.bool_(True)]))
        if kind == "float":
            self.expect((TypeError,), name)
            return d(st.sampled_from([1.0, 2.5, float("nan"), float("inf"), (1.0,) * rank]))
        if kind == "none":
            if none_ok:
                return None
            self.expect((TypeError,), name)
            return None
        if kind == "str":
            self.expect((TypeError, ValueError), name)
            return d(st.sampled_from(["2", "", "same!", b"1"]))
        if kind == "len":
            n = d(st.sampled_from([0, rank + 1, rank + 2] + ([rank - 1] if rank > 1 else [])))
            self.expect((ValueError,), name)
            return d(st.sampled_from([(lo,) * n, [lo] * n]))
        if kind == "huge":
            v = d(st.sampled_from(HUGE))
            self.allow((ValueError, MemoryError), name + "|" + GEOMETRY)
            self.clean = False
            return d(st.sampled_from([v, (v,) * rank, (lo,) * (rank - 1) + (v,)]))
        if kind == "neghuge":
            v = d(st.sampled_from(NEG_HUGE))
            self.expect((ValueError,), name)
            return d(st.sampled_from([v, (v,) * rank]))
        if kind == "entry":
            self.expect((TypeError, ValueError), name)
            return d(st.sampled_from([(lo,) * (rank - 1) + (None,), ((lo, lo),) * rank, ("1",)]))
        self.expect((TypeError, ValueError), name)
        return np.full(rank, lo)

    def int_arg(self, name, lo, hi, weight=8):
        d = self.draw
        if not self.fault(weight):
            return d(st.integers(lo, hi))
        kind = d(st.sampled_from(["low", "bool", "float", "none", "str", "huge", "tuple"]))
        self.notes.append(f"{name}:{kind}")
        if kind == "low":
            self.expect((ValueError,), name)
            return d(st.integers(-3, min(lo - 1, 0)))
        if kind == "huge":
            self.allow((ValueError, MemoryError), name + "|" + GEOMETRY)
            self.clean = False
            return d(st.sampled_from(HUGE + NEG_HUGE))
        self.expect((TypeError,), name)
        return {"bool": True, "float": 1.0, "none": None, "str": "1", "tuple": (lo,)}[kind]

    def choice(self, name, good, bad, weight=10):
        if self.fault(weight):
            self.expect((ValueError, TypeError), name)
            v = self.draw(st.sampled_from(bad))
            self.notes.append(f"{name}:{v!r}")
            return v
        return self.draw(st.sampled_from(good))

    def flag(self, name, weight=12):
        if self.fault(weight):
            self.expect((TypeError,), name)
            return self.draw(st.sampled_from([1, 0, "yes", None, 1.0]))
        return self.draw(st.booleans())

    def padding(self, name, rank, hi, strings=(), allow_pairs=True, weight=8):
        d = self.draw
        if self.fault(weight):
            kind = d(st.sampled_from(["per_dim", "pairs", "string", "negpair"]))
            if kind == "per_dim":
                return self.per_dim(name, rank, 0, hi, weight=1)
            self.notes.append(f"{name}:{kind}")
            if kind == "pairs":
                self.expect((ValueError, TypeError), name)
                return d(st.sampled_from([((0, 0, 0),) * rank, ((0,),) * rank, ((0, 1.5),) * rank]))
            if kind == "negpair":
                self.expect((ValueError,), name)
                return ((0, -1),) + ((0, 0),) * (rank - 1)
            self.expect((ValueError, TypeError), name)
            return d(
                st.sampled_from(["half", "", "SAME!", "causal"] + ["same", "full"] * (not strings))
            )
        one = st.integers(0, hi)
        forms = [
            one,
            st.tuples(*[one] * rank),
            st.tuples(*[st.tuples(one, one)] * rank),
            st.lists(st.lists(one, min_size=2, max_size=2), min_size=rank, max_size=rank),
        ]
        if not allow_pairs:
            forms = forms[:2]
        if strings:
            forms.append(st.sampled_from(list(strings)))
        return d(st.one_of(*forms))

    # -- arrays

    def values(self, shape, low=-1.0, high=1.0, special=True):
        rng = np.random.default_rng(self.draw(st.integers(0, 2**32 - 1)))
        v = rng.uniform(low, high, shape)
        if special and v.size and self.chance(10):
            self.special = True
            k = self.draw(st.integers(1, 3))
            for _ in range(k):
                v.flat[rng.integers(v.size)] = self.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
            self.notes.append("nan/inf")
        return v

    def layout(self, v, dtype):
        """The values v (float64) as an array of `dtype` in some memory layout; the caller's
        oracle reads the returned array's own values."""
        d = self.draw
        kind = d(
            st.sampled_from(
                ["c"] * 6
                + ["fortran", "slice", "neg", "transpose", "big", "readonly", "overlap", "list"]
                + ["broadcast", "offset"]
            )
        )
        a = np.ascontiguousarray(v, dtype=dtype)
        owner = a
        if kind == "fortran":
            a = owner = np.asfortranarray(a)
        elif kind == "slice" and v.ndim:
            big = np.zeros(v.shape[:-1] + (2 * v.shape[-1] + 1,), dtype)
            big[..., 1::2] = a
            a, owner = big[..., 1::2], big
        elif kind == "neg" and v.ndim:
            owner = np.ascontiguousarray(a[..., ::-1])
            a = owner[..., ::-1]
        elif kind == "transpose" and v.ndim >= 2:
            owner = np.ascontiguousarray(np.swapaxes(a, -1, -2))
            a = np.swapaxes(owner, -1, -2)
        elif kind == "big":
            a = owner = a.astype(np.dtype(dtype).newbyteorder(">"))
        elif kind == "readonly":
            a.flags.writeable = False
        elif kind == "offset" and v.size:
            raw = np.zeros(a.nbytes + 1, np.uint8)  # misaligned data pointer
            a = np.frombuffer(raw[1:].data, dtype=dtype, count=v.size).reshape(v.shape)
            a.flags.writeable = True
            a[...] = v
            owner = raw
        elif kind in ("overlap", "broadcast") and v.ndim and v.size:
            base = np.ascontiguousarray(v.ravel()[: max(1, v.shape[-1] * 2)], dtype=dtype)
            item = base.itemsize
            if kind == "overlap":  # every row starts one element after the previous one
                strides = [0] * v.ndim
                strides[-1] = item
                for axis in range(v.ndim - 2, -1, -1):
                    strides[axis] = item if v.shape[axis] > 1 else 0
                need = sum((n - 1) * s for n, s in zip(v.shape, strides)) // item + 1
                base = np.resize(base, need)
            else:
                strides = [0] * v.ndim
                strides[-1] = item
                base = base[: v.shape[-1]]
            a = np.lib.stride_tricks.as_strided(base, v.shape, strides, writeable=False)
            owner = base
        elif kind == "list" and np.dtype(dtype) == np.float64 and 0 < v.size <= 200:
            a = a.tolist()
            owner = None
        if kind != "c":
            self.notes.append(f"layout:{kind}")
        if owner is not None:
            self.owners.append(owner)
        return a

    def array(self, name, shape, dtype, low=-1.0, high=1.0, partners="", special=True, weight=10):
        """An operand of this shape and dtype (values in [low, high)), or (rarely) a bad one.
        Returns (array as passed, its float64 values or None when bad)."""
        d = self.draw
        if self.fault(weight):
            # One "mixed" operand per case: two would both take the other float dtype and agree.
            mixed = bool(partners) and not self.mixed
            kind = d(st.sampled_from(["dtype", "rank", "kind"] + ["mixed"] * mixed))
            self.mixed = self.mixed or kind == "mixed"
            self.notes.append(f"{name}:{kind}")
            names = name + (("|" + partners) if partners else "")
            if kind == "dtype":
                bad_dtype = d(
                    st.sampled_from(
                        [
                            np.int32,
                            np.int64,
                            np.bool_,
                            np.complex64,
                            np.complex128,
                            np.float16,
                            np.uint8,
                            object,
                        ]
                    )
                )
                a = np.zeros(shape, bad_dtype)
                self.expect((TypeError,), name)
                return a, None
            if kind == "rank":  # a rank no operand of any op takes (ops take 3..8 dims)
                # (a bias takes 1 dim, or tiled_conv's 2-4: (K, *tiles))
                ndim = d(st.sampled_from([0, 9] if name == "bias" else [0, 1, 2, 9]))
                new = (tuple(shape) + (2,) * 9)[:ndim]
                self.expect((ValueError,), names + "|" + GEOMETRY)
                return np.zeros(new, dtype), None
            if kind == "kind":
                self.expect((TypeError,), name)
                # None is no bias (valid): only the required operands may not be None.
                kinds = ["abc", {"a": 1}, object(), b"x"] + [None] * (name != "bias")
                return d(st.sampled_from(kinds)), None
            other = np.float32 if np.dtype(dtype) == np.float64 else np.float64
            self.expect((TypeError,), names)
            return np.zeros(shape, other), None
        v = self.values(shape, low, high, special)
        a = self.layout(v, dtype)
        return a, np.array(a, dtype=np.float64)

    def index_array(self, name, values, valid_hi):
        """An integer operand (max_unpool / backward indices), sometimes out of range or of a
        bad dtype."""
        d = self.draw
        if self.fault(8):
            kind = d(st.sampled_from(["range", "dtype", "shape", "kind"]))
            self.notes.append(f"{name}:{kind}")
            if kind == "range" and values.size:
                bad = values.copy()
                bad.flat[d(st.integers(0, values.size - 1))] = d(
                    st.sampled_from([-2, valid_hi, valid_hi + 7, 2**40, -(2**63), 2**63 - 1])
                )
                self.expect((ValueError,), name)
                self.owners.append(bad)
                return bad
            if kind == "dtype":
                self.expect((TypeError,), name)
                return values.astype(d(st.sampled_from([np.float64, np.float32, np.complex64])))
            if kind == "shape":
                self.expect((ValueError,), name)
                return np.zeros(values.shape[:-1] + (values.shape[-1] + 1,), np.int64)
            self.expect((TypeError, ValueError), name)
            return d(st.sampled_from(["abc", 3.5]))
        dt = d(st.sampled_from([np.int64, np.int64, np.int32, np.uint32, ">i8"]))
        out = values.astype(dt)
        if d(st.booleans()) and out.ndim:
            out = np.asfortranarray(out)
        self.owners.append(out)
        return out


def dtype_st():
    return st.sampled_from([np.float32, np.float64])


def _flat_ints(v):
    if isinstance(v, (int, np.integer)):
        return [int(v)]
    out = []
    for e in v:
        out.extend(_flat_ints(e))
    return out


def _tol_reduction(*ns):
    return max(1, math.prod(int(n) for n in ns))


# ---- convolution and transposed convolution


CONV_FNS = [
    "conv",
    "conv_nd",
    "conv_backward_data",
    "conv_backward_weight",
    "conv_backward_bias",
    "conv_transpose",
    "conv_transpose_backward_data",
    "conv_transpose_backward_weight",
    "explain",
]
ALGOS = ["auto"] * 6 + [
    "direct",
    "im2col",
    "implicit_gemm",
    "winograd",
    "fft",
    "depthwise",
    "reference",
    "autotune",
]


@st.composite
def conv_cases(draw, fn=None):
    dtype = draw(dtype_st())
    b = Builder(draw, dtype)
    fn = fn or draw(st.sampled_from(CONV_FNS))
    rank = draw(st.sampled_from([1, 1, 2, 2, 3]))
    g = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n = draw(st.sampled_from([0, 1, 1, 2]))
    small = 5 if rank == 3 else 8
    in_sizes = tuple(draw(st.integers(1, small)) for _ in range(rank))
    k_sizes = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    transposed = fn.startswith("conv_transpose")
    zero_dims = b.fault(16)
    if zero_dims:  # a zero channel / spatial extent: an empty result or a ValueError naming x/w
        which = draw(st.sampled_from(["c", "in", "k"]))
        if which == "c":
            cg = 0
        elif which == "in":
            in_sizes = in_sizes[:-1] + (0,)
        else:
            kg = 0
        b.notes.append(f"zero:{which}")
        b.allow((ValueError,), GEOMETRY)
        b.clean = False
    stride = b.per_dim("stride", rank, 1, 3)
    dilation = b.per_dim("dilation", rank, 1, 2)
    strings = ("valid",) if transposed else ("valid", "same", "full")
    padding = b.padding("padding", rank, 3, strings)
    groups = b.int_arg("groups", g, g)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if transposed:
        kw["output_padding"] = b.per_dim("output_padding", rank, 0, 2, weight=6)
    else:
        kw["mode"] = b.choice("mode", ["cross", "conv"], ["correlate", None, 1, "CROSS"])
    algo = b.choice("algo", ALGOS, ["magic", 3, None, ""], weight=12)
    if algo not in ("auto", "autotune") and algo in ALGOS:
        b.allow((NotImplementedError,), algo)
    kw["algo"] = algo
    c = g * cg
    gg = g if isinstance(groups, (int, np.integer)) and not isinstance(groups, bool) else 1
    uses_x = fn not in ("conv_transpose_backward_data", "conv_backward_bias")
    if uses_x and draw(st.integers(0, 9)) == 0:  # channels that disagree with groups
        c = c + 1
        b.notes.append("channels")
        b.expect((ValueError,), GEOMETRY)
    k = g * kg
    if transposed:
        x_shape, w_shape = (n, c) + in_sizes, (c if not zero_dims else g * cg, kg) + k_sizes
        w_shape = (g * cg, kg) + k_sizes
    else:
        x_shape, w_shape = (n, c) + in_sizes, (k, cg) + k_sizes
    del gg

    # The geometry, from the oracle's rules (exact integer arithmetic).
    geometry_ok = True
    out_shape = None
    was_clean = b.clean
    if True:  # also with malformed arguments: a geometry error is then one acceptable answer
        try:
            if transposed:
                s, dl = ref.per_dim(stride, rank), ref.per_dim(dilation, rank)
                op = ref.per_dim(kw["output_padding"], rank)
                pads = ref.explicit_pairs(0 if _is_valid(padding) else padding, rank)
                outs = tuple(
                    ref.transpose_out_size(i, kk, ss, dd, lo, hi, o)
                    for i, kk, ss, dd, (lo, hi), o in zip(in_sizes, k_sizes, s, dl, pads, op)
                )
                ok = all(o < max(ss, dd) for o, ss, dd in zip(op, s, dl))
                ok = ok and min(outs) >= 1 and c % g == 0 and w_shape[0] == c
                out_shape = (n, g * kg) + outs
            else:
                outs = ref.conv_out_shape(x_shape, w_shape, stride, padding, dilation)
                ok = min(outs) >= 1 and c == cg * g and k % g == 0
                out_shape = (n, k) + outs
            geometry_ok = ok
        except ValueError:
            geometry_ok = False
        except Exception:  # noqa: BLE001 -- malformed values the oracle cannot read
            geometry_ok = None
        if geometry_ok and not _holdable(out_shape):
            # Huge padding or dilation: a valid output too large for grad_y to be made (NumPy:
            # "Maximum allowed dimension exceeded"); grad_y falls back to a small shape below,
            # which the call must refuse (or the output's size).
            b.allow((ValueError, MemoryError), GEOMETRY)
            geometry_ok = None
        if geometry_ok is False and (fn == "conv_transpose_backward_data" or not was_clean):
            b.allow((ValueError,), GEOMETRY)  # transposed backward data: x's size from grad_y
        elif geometry_ok is False:
            b.expect((ValueError,), GEOMETRY)
        if not was_clean:
            geometry_ok = geometry_ok is True
    if out_shape is None or not geometry_ok:
        out_shape = (n, k if not transposed else g * kg) + (1,) * rank
    red_fwd = _tol_reduction(cg, *k_sizes)

    def arr(name, shape, partners="", **a):
        return b.array(name, shape, dtype, partners=partners, **a)

    oracle = None
    product = (None, None)  # the operands the pass multiplies (their scale bounds its error)
    reduction = red_fwd
    call_name = fn
    if fn in ("conv", "conv_nd"):
        x, xv = arr("x", x_shape, "w")
        w, wv = arr("w", w_shape, "x")
        bias, bv = None, None
        if draw(st.booleans()):
            bias_shape = (k,) if not b.fault(8) else draw(st.sampled_from([(k + 1,), (k, 1), ()]))
            if bias_shape != (k,):
                b.expect((ValueError,), "bias")
            bias, bv = arr("bias", bias_shape, "x|w")
        args = (x, w, bias)
        call = fastconv.conv
        if fn == "conv_nd":
            call_name = f"conv{rank}d"
            call = getattr(fastconv, call_name)
            if draw(st.integers(0, 5)) == 0:
                other = draw(st.sampled_from([r for r in (1, 2, 3) if r != rank]))
                call_name = f"conv{other}d"
                call = getattr(fastconv, call_name)
                b.expect((ValueError,), "w")
        kwc = {k_: v for k_, v in kw.items() if k_ != "algo"}
        oracle = lambda: ref.conv(xv, wv, bv, **kwc)  # noqa: E731
        product = (xv, wv)
    elif fn == "conv_backward_data":
        gy, gv = arr("grad_y", out_shape, "w")
        w, wv = arr("w", w_shape, "grad_y")
        xs = b.shape_arg("x_shape", x_shape)
        args = (gy, w, xs)
        call = fastconv.conv_backward_data
        kwc = {k_: v for k_, v in kw.items() if k_ != "algo"}
        oracle = lambda: ref.conv_backward_data(gv, wv, x_shape, **kwc)  # noqa: E731
        product = (gv, wv)
        reduction = _tol_reduction(kg, *k_sizes)
    elif fn == "conv_backward_weight":
        x, xv = arr("x", x_shape, "grad_y")
        gy, gv = arr("grad_y", out_shape, "x")
        ws = b.shape_arg("w_shape", w_shape)
        args = (x, gy, ws)
        call = fastconv.conv_backward_weight
        kwc = {k_: v for k_, v in kw.items() if k_ != "algo"}
        oracle = lambda: ref.conv_backward_weight(xv, gv, w_shape, **kwc)  # noqa: E731
        product = (xv, gv)
        reduction = _tol_reduction(n, *out_shape[2:])
    elif fn == "conv_backward_bias":  # grad_y alone: a builder of its own
        b = Builder(draw, dtype)
        gy, gv = b.array("grad_y", out_shape, dtype)
        if gv is None and any(n_ == "grad_y|" + GEOMETRY for _, n_ in b.bad):
            b.bad = []  # another rank: valid when 3..5 dims
            b.allow((ValueError,), "grad_y")
        args, kw = (gy,), {}
        call = fastconv.conv_backward_bias
        oracle = lambda: ref.conv_backward_bias(gv)  # noqa: E731
        reduction = _tol_reduction(n, *out_shape[2:])
    elif fn == "conv_transpose":
        x, xv = arr("x", x_shape, "w")
        w, wv = arr("w", w_shape, "x")
        bias, bv = None, None
        if draw(st.booleans()):
            bias, bv = arr("bias", (g * kg,), "x|w")
        args = (x, w, bias)
        call = fastconv.conv_transpose
        kwc = {k_: v for k_, v in kw.items() if k_ != "algo"}
        kwc["padding"] = 0 if _is_valid(padding) else padding
        oracle = lambda: ref.conv_transpose(xv, wv, bv, **kwc)  # noqa: E731
        product = (xv, wv)
        reduction = _tol_reduction(c, *k_sizes)
    elif fn == "conv_transpose_backward_data":
        gy, gv = arr("grad_y", out_shape, "w")
        w, wv = arr("w", w_shape, "grad_y")
        args = (gy, w)
        call = fastconv.conv_transpose_backward_data
        kwc = {k_: v for k_, v in kw.items() if k_ != "algo"}
        kwc["padding"] = 0 if _is_valid(padding) else padding
        oracle = lambda: ref.conv_transpose_backward_data(gv, wv, **kwc)  # noqa: E731
        product = (gv, wv)
        reduction = _tol_reduction(kg, *k_sizes)
    elif fn == "conv_transpose_backward_weight":
        x, xv = arr("x", x_shape, "grad_y")
        gy, gv = arr("grad_y", out_shape, "x")
        ws = b.shape_arg("w_shape", w_shape)
        args = (x, gy, ws)
        call = fastconv.conv_transpose_backward_weight
        kwc = {k_: v for k_, v in kw.items() if k_ != "algo"}
        kwc["padding"] = 0 if _is_valid(padding) else padding
        oracle = lambda: ref.conv_transpose_backward_weight(xv, gv, w_shape, **kwc)  # noqa: E731
        product = (xv, gv)
        reduction = _tol_reduction(n, *in_sizes)
    else:  # explain: shapes (sometimes huge) or arrays
        op = "conv_transpose" if draw(st.integers(0, 3)) == 0 else "conv"
        if op == "conv_transpose":
            w_shape = (c, kg) + k_sizes
            kw.pop("mode", None)
            b.forget("mode")  # conv_transpose takes no mode
        else:
            kw.pop("output_padding", None)
        pass_ = b.choice("pass_", ["forward", "backward_data", "backward_weight"], ["fwd", None])
        xs, ws = x_shape, w_shape
        if b.fault(4):  # huge shapes: never allocated, the plan's sizes must not overflow
            big = draw(st.sampled_from([2**20, 2**31, 2**40, 2**41, 2**62]))
            pos = draw(st.integers(0, rank + 1))
            which = draw(st.booleans())
            if which:
                xs = xs[:pos] + (big,) + xs[pos + 1 :]
            else:
                ws = ws[:pos] + (big,) + ws[pos + 1 :]
            b.notes.append(f"huge shape {xs} {ws}")
            b.allow((ValueError, MemoryError), GEOMETRY)
            b.clean = False
        args = (xs, ws)
        kw.update(op=op, pass_=pass_)
        # The geometry above is the conv's; check() judges a successful explanation instead.
        b.bad = [e for e in b.bad if e[1] != GEOMETRY]
        b.allow((ValueError,), GEOMETRY)
        call = fastconv.explain
        kw_copy = dict(kw)

        def check(result, xs=xs, ws=ws, kw_copy=kw_copy):
            assert isinstance(result, fastconv.Explanation)
            assert isinstance(result.workspace_bytes, int) and result.workspace_bytes >= 0
            assert str(result)
            _check_explained_geometry(xs, ws, kw_copy)

        b.check = check
        oracle = None
    case = Case(
        call_name,
        call,
        args,
        kw,
        b.bad,
        b.maybe,
        oracle,
        getattr(b, "check", None),
        reduction,
        dtype,
        b.owners,
        b.notes,
    )
    # conv-like passes may spread NaN/Inf through zero padding (0 * NaN): not strict
    case.nan_strict = not b.special
    case.scale_floor = _product_scale(*product)
    return case


def _check_explained_geometry(xs, ws, kw):
    """An explained problem must be a valid one: its output extents >= 1 and sizes in int64."""
    rank = len(ws) - 2
    if kw.get("op") == "conv_transpose":
        s, dl = ref.per_dim(kw["stride"], rank), ref.per_dim(kw["dilation"], rank)
        op = ref.per_dim(kw.get("output_padding", 0), rank)
        padding = kw["padding"]
        pads = ref.explicit_pairs(0 if _is_valid(padding) else padding, rank)
        outs = [
            ref.transpose_out_size(i, k, ss, dd, lo, hi, o)
            for i, k, ss, dd, (lo, hi), o in zip(xs[2:], ws[2:], s, dl, pads, op)
        ]
        assert min(outs) >= 1, f"explained an invalid transposed conv: out {outs}"
        assert math.prod([xs[0], ws[1] * kw["groups"], *outs]) < 2**63
    else:
        outs = ref.conv_out_shape(xs, ws, kw["stride"], kw["padding"], kw["dilation"])
        assert min(outs) >= 1, f"explained an invalid conv: out {outs}"
        assert math.prod([xs[0], ws[0], *outs]) < 2**63


def _shape_arg(self, name, shape):
    """A shape argument (x_shape / w_shape): the right one, or a malformed one."""
    d = self.draw
    if not self.fault(10):
        return d(st.sampled_from([tuple(shape), list(shape), tuple(np.int64(s) for s in shape)]))
    kind = d(st.sampled_from(["len", "neg", "float", "str", "huge", "none", "other"]))
    self.notes.append(f"{name}:{kind}")
    if kind == "len":
        self.expect((ValueError, TypeError), name + "|" + GEOMETRY)
        return tuple(shape) + (1,)
    if kind == "neg":
        self.expect((ValueError,), name)
        return (shape[0], -1) + tuple(shape[2:])
    if kind == "float":
        self.expect((TypeError,), name)
        return tuple(float(s) for s in shape)
    if kind == "str":
        self.expect((TypeError, ValueError), name)
        return "abc"
    if kind == "none":
        self.expect((TypeError,), name)
        return None
    if kind == "huge":
        v = d(st.sampled_from(HUGE))
        self.allow((ValueError, MemoryError), name + "|" + GEOMETRY)
        self.clean = False
        return tuple(shape[:-1]) + (v,)
    # another consistent-looking shape: grad_y / operands then disagree
    self.expect((ValueError,), name + "|" + GEOMETRY)
    return tuple(shape[:-1]) + (shape[-1] + 5,)


Builder.shape_arg = _shape_arg


# ---- pooling


_GLOBAL = ("global_avg_pool", "global_max_pool")
POOL_FNS = [
    "max_pool",
    "avg_pool",
    "lp_pool",
    "global_avg_pool",
    "global_max_pool",
    "max_unpool",
    "max_pool_backward",
    "avg_pool_backward",
    "lp_pool_backward",
]


@st.composite
def pool_cases(draw, fn=None):
    dtype = draw(dtype_st())
    b = Builder(draw, dtype)
    fn = fn or draw(st.sampled_from(POOL_FNS))
    rank = draw(st.sampled_from([1, 1, 2, 2, 3]))
    n, c = draw(st.sampled_from([0, 1, 2])), draw(st.integers(1, 3))
    small = 5 if rank == 3 else 8
    in_sizes = tuple(draw(st.integers(1, small)) for _ in range(rank))
    if b.fault(16):
        in_sizes = in_sizes[:-1] + (0,)
        b.notes.append("zero spatial")
        b.allow((ValueError,), GEOMETRY)
        b.clean = False
    x_shape = (n, c) + in_sizes
    kernel = b.per_dim("kernel_size", rank, 1, 4)
    stride = b.per_dim("stride", rank, 1, 3, none_ok=True) if draw(st.booleans()) else None
    padding = b.padding("padding", rank, 2) if fn not in ("lp_pool", "lp_pool_backward") else 0
    dilation = b.per_dim("dilation", rank, 1, 2) if fn in ("max_pool", "max_pool_backward") else 1
    # (max_unpool and the global pools take no ceil_mode: no fault to expect there)
    ceil_mode = b.flag("ceil_mode") if fn not in ("max_unpool", *_GLOBAL) else False
    kw: dict = {}
    if fn in ("max_pool", "max_pool_backward"):
        kw = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    elif fn in ("avg_pool", "avg_pool_backward"):
        cip = b.flag("count_include_pad")
        kw = dict(stride=stride, padding=padding, ceil_mode=ceil_mode, count_include_pad=cip)
    elif fn in ("lp_pool", "lp_pool_backward"):
        kw = dict(stride=stride, ceil_mode=ceil_mode)
    elif fn == "max_unpool":
        kw = dict(stride=stride, padding=padding)

    outs = None
    was_clean = b.clean
    if fn not in ("global_avg_pool", "global_max_pool"):
        try:
            k, s, dl, pads, outs = ref.pool_geometry(
                in_sizes,
                kernel,
                stride,
                padding,
                dilation,
                ceil_mode if fn != "max_unpool" else False,
            )
            ok = fn == "max_unpool" or (
                all(lo <= kk // 2 and hi <= kk // 2 for (lo, hi), kk in zip(pads, k))
                and min(outs) >= 1
            )
        except ValueError:
            ok = False
        except Exception:  # noqa: BLE001 -- malformed values the oracle cannot read
            ok, outs = True, None
        if not ok:
            (b.expect if was_clean else b.allow)((ValueError,), GEOMETRY)
            outs = None
        if not was_clean:
            outs = None
    y_shape = (n, c) + (outs if outs is not None else (1,) * rank)
    low = 0.0 if fn.startswith("lp_pool") else -1.0

    def arr(name, shape, partners="", **a):
        return b.array(name, shape, dtype, partners=partners, **a)

    red = _tol_reduction(*ref.per_dim(kernel, rank)) if b.clean else 1
    reduction = red
    if fn in ("max_pool", "avg_pool", "lp_pool", "global_avg_pool", "global_max_pool"):
        x, xv = arr("x", x_shape, low=low, special=not fn.startswith("lp"))
        if fn == "max_pool":
            ri = b.flag("return_indices")
            kw["return_indices"] = ri

            def oracle():
                y, idx = ref.max_pool(xv, kernel, stride, padding, dilation, ceil_mode)
                return (y, idx) if ri else y

        elif fn == "avg_pool":
            oracle = lambda: ref.avg_pool(  # noqa: E731
                xv, kernel, stride, padding, ceil_mode, kw["count_include_pad"]
            )
        elif fn == "lp_pool":
            p = b.lp_p()
            args = (x, p, kernel)
            oracle = lambda: ref.lp_pool(xv, p, kernel, stride, ceil_mode)  # noqa: E731
            reduction = red * 64
        else:  # x alone: a builder of its own
            b = Builder(draw, dtype)
            x, xv = b.array("x", x_shape, dtype)
            if xv is None and any(n_.startswith("x|") for _, n_ in b.bad):
                b.bad = []  # another rank: valid when 3..5 dims
                b.allow((ValueError,), "x")
            if 0 in in_sizes:
                b.allow((ValueError,), GEOMETRY)
            kw = {}
            oracle = lambda: getattr(ref, fn)(xv)  # noqa: E731
            reduction = _tol_reduction(*in_sizes)
        if fn == "lp_pool":
            pass
        elif fn.startswith("global"):
            args = (x,)
        else:
            args = (x, kernel)
    elif fn == "max_unpool":
        x, xv = arr("x", x_shape)
        hi = 1
        out_size = None
        if b.clean and outs is not None:
            k, s, _, pads, _ = ref.pool_geometry(in_sizes, kernel, stride, padding)
            default = tuple(
                (i - 1) * ss - lo - hh + kk for i, ss, (lo, hh), kk in zip(in_sizes, s, pads, k)
            )
            out_size = default
            if draw(st.integers(0, 3)) == 0:
                out_size = tuple(o + draw(st.integers(0, 2)) for o in default)
                kw["output_size"] = draw(
                    st.sampled_from([out_size, (n, c) + out_size, list(out_size)])
                )
            if min(out_size) < 1:
                b.expect((ValueError,), GEOMETRY)
            hi = max(1, math.prod(out_size))
        elif draw(st.integers(0, 3)) == 0:
            kw["output_size"] = draw(
                st.sampled_from(
                    ["ab", (2**63,) * rank, (-1,) * rank, (1,) * (rank + 1), (2**40,) * rank]
                )
            )
            b.allow((ValueError, TypeError, MemoryError), "output_size|" + GEOMETRY)
            b.clean = False
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        idx_values = rng.integers(0, hi, y_shape if False else x_shape)
        indices = b.index_array("indices", idx_values, hi)
        args = (x, indices, kernel)

        def oracle():
            if kw.get("output_size") is None and out_size is None:
                raise ValueError("no size")
            return ref.max_unpool(xv, np.asarray(indices), kernel, stride, padding, out_size)

        # duplicate indices: which value wins is unspecified, compare where unique
        if b.clean and idx_values.size:
            planes = idx_values.reshape(n * c, -1) if n * c else idx_values.reshape(0, 1)
            if any(len(set(p.tolist())) != len(p) for p in planes):
                oracle = None
    elif fn == "max_pool_backward":
        x, xv = arr("x", x_shape, "grad_y")
        gy, gv = arr("grad_y", y_shape, "x")
        args = (gy, x, kernel)
        use_idx = draw(st.booleans()) and b.clean and outs is not None and xv is not None
        if use_idx:
            _, want_idx = ref.max_pool(xv, kernel, stride, padding, dilation, ceil_mode)
            kw["indices"] = b.index_array("indices", want_idx, max(1, math.prod(in_sizes)))
        oracle = lambda: ref.max_pool_backward(gv, xv, kernel, stride, padding, dilation, ceil_mode)  # noqa: E501, E731
        if xv is not None and np.isnan(xv).any():
            oracle = None  # NaN argmax ties: covered by max_pool's own comparison
    elif fn == "avg_pool_backward":
        gy, gv = arr("grad_y", y_shape)
        xs = b.shape_arg("x_shape", x_shape)
        args = (gy, xs, kernel)
        oracle = lambda: ref.avg_pool_backward(  # noqa: E731
            gv, x_shape, kernel, stride, padding, ceil_mode, kw["count_include_pad"]
        )
    else:  # lp_pool_backward
        x, xv = arr("x", x_shape, "grad_y", low=0.1, special=False)
        gy, gv = arr("grad_y", y_shape, "x")
        p = b.lp_p()
        args = (gy, x, p, kernel)
        oracle = lambda: ref.lp_pool_backward(gv, xv, p, kernel, stride, ceil_mode)  # noqa: E731
        reduction = red * 64
    return Case(
        fn,
        getattr(fastconv, fn),
        args,
        kw,
        b.bad,
        b.maybe,
        oracle,
        None,
        reduction,
        dtype,
        b.owners,
        b.notes,
    )


def _lp_p(self):
    d = self.draw
    if self.fault(8):
        v = d(st.sampled_from([0, -1, -0.5, float("nan"), float("inf"), "2", None, True, 1j]))
        self.notes.append(f"p:{v!r}")
        self.expect((ValueError, TypeError), "p")
        return v
    return d(st.sampled_from([1, 2, 2.0, 3, 0.5, 1.5, np.float32(2.0), np.int64(3)]))


Builder.lp_p = _lp_p


# ---- resampling, stochastic / blur / weighted pooling


RESAMPLE_FNS = [
    "upsample_nearest",
    "upsample_nearest_backward",
    "upsample_linear",
    "upsample_linear_backward",
    "pixel_shuffle",
    "pixel_unshuffle",
    "stochastic_pool",
    "stochastic_pool_backward",
    "blur_pool",
    "blur_pool_backward",
    "weighted_avg_pool",
    "weighted_avg_pool_backward",
]


def _windows(xv, k, s, pads):
    """(N, C, *outs, window) values of x (padding: NaN marks) and their flat offsets."""
    rank = xv.ndim - 2
    in_sizes = xv.shape[2:]
    outs = tuple((i + lo + hi - kk) // ss + 1 for i, kk, ss, (lo, hi) in zip(in_sizes, k, s, pads))
    import itertools

    vals, offs = [], []
    for t in itertools.product(*(range(kk) for kk in k)):
        coords = [np.arange(o) * ss + tt - lo for o, ss, tt, (lo, _) in zip(outs, s, t, pads)]
        grids = np.meshgrid(*coords, indexing="ij")
        inside = np.ones(outs, bool)
        flat = np.zeros(outs, np.int64)
        for gcoord, size in zip(grids, in_sizes):
            inside &= (gcoord >= 0) & (gcoord < size)
            flat = flat * size + np.clip(gcoord, 0, size - 1)
        plane = xv.reshape(xv.shape[:2] + (math.prod(in_sizes),))
        v = plane[..., flat.ravel()].reshape(xv.shape[:2] + outs)
        vals.append(np.where(inside, v, np.nan))
        offs.append(np.where(inside, flat, -1))
    del rank
    return np.stack(vals, -1), np.stack(offs, -1), outs


def _stochastic_eval(xv, k, s, pads):
    w, _, _ = _windows(xv, k, s, pads)
    w = np.nan_to_num(w, nan=0.0)
    tot = w.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot == 0, 0.0, (w * w).sum(-1) / np.where(tot == 0, 1, tot))


@st.composite
def resample_cases(draw, fn=None):
    dtype = draw(dtype_st())
    b = Builder(draw, dtype)
    fn = fn or draw(st.sampled_from(RESAMPLE_FNS))
    rank = draw(st.sampled_from([1, 1, 2, 2, 3]))
    n, c = draw(st.sampled_from([0, 1, 2])), draw(st.integers(1, 3))
    in_sizes = tuple(draw(st.integers(1, 5 if rank == 3 else 7)) for _ in range(rank))

    def arr(name, shape, partners="", **a):
        return b.array(name, shape, dtype, partners=partners, **a)

    kw: dict = {}
    check = None
    reduction = 8
    if fn.startswith("upsample"):
        if b.fault(16):
            in_sizes = in_sizes[:-1] + (0,)
            b.notes.append("zero spatial")
        x_shape = (n, c) + in_sizes
        scale = b.per_dim("scale", rank, 1, 3)
        linear = "linear" in fn
        if linear:
            kw["align_corners"] = b.flag("align_corners")
        y_shape = x_shape
        if b.clean:
            sc = ref.per_dim(scale, rank)
            y_shape = (n, c) + tuple(i * s for i, s in zip(in_sizes, sc))
            o_lin = lambda v: oracle_linear(v, sc, kw["align_corners"])  # noqa: E731
            o_near = lambda v: oracle_nearest(v, sc)  # noqa: E731
            forward = o_lin if linear else o_near
        else:
            forward = None
        if not fn.endswith("backward"):
            x, xv = arr("x", x_shape)
            args = (x, scale)
            oracle = lambda: forward(xv)  # noqa: E731
        else:
            gy, gv = arr("grad_y", y_shape, special=False)
            xs = b.shape_arg("x_shape", x_shape)
            args = (gy, xs, scale)
            oracle = lambda: _adjoint(forward, gv, x_shape)  # noqa: E731
            reduction = 64
    elif fn.startswith("pixel"):
        r_ok = draw(st.integers(1, 3))
        r = b.int_arg("r", 1, 3) if b.fault(6) else r_ok
        rr = r if (b.clean and isinstance(r, int)) else r_ok
        if fn == "pixel_shuffle":
            c_in = c * rr**rank
            if draw(st.integers(0, 7)) == 0 and rr > 1:
                c_in += 1
                b.expect((ValueError,), "x|r|channels?|C")
            x_shape = (n, c_in) + in_sizes
            oracle_fn = oracle_shuffle
        else:
            sp = tuple(i * rr for i in in_sizes)
            if draw(st.integers(0, 7)) == 0 and rr > 1:
                sp = sp[:-1] + (sp[-1] + 1,)
                b.expect((ValueError,), "x|r")
            x_shape = (n, c) + sp
            oracle_fn = oracle_unshuffle
        x, xv = arr("x", x_shape)
        args = (x, r)
        oracle = lambda: oracle_fn(xv, rr)  # noqa: E731
    elif fn.startswith("stochastic"):
        x_shape = (n, c) + in_sizes
        kernel = b.per_dim("kernel_size", rank, 1, 3)
        stride = b.per_dim("stride", rank, 1, 3, none_ok=True) if draw(st.booleans()) else None
        padding = b.padding("padding", rank, 1)
        training = b.flag("training")
        kw = dict(stride=stride, padding=padding, training=training)
        geom = None
        if b.clean:
            try:
                k, s, _, pads, outs = ref.pool_geometry(in_sizes, kernel, stride, padding)
                ok = all(lo <= kk // 2 and hi <= kk // 2 for (lo, hi), kk in zip(pads, k))
                ok = ok and min(outs) >= 1
            except ValueError:
                ok = False
            if ok:
                geom = (k, s, pads, outs)
            else:
                b.expect((ValueError,), GEOMETRY)
        y_shape = (n, c) + (geom[3] if geom else (1,) * rank)
        negative = b.fault(10)
        if fn == "stochastic_pool":
            x, xv = arr("x", x_shape, low=-1.0 if negative else 0.0, special=negative)
            if xv is not None and (np.any(xv < 0) or np.isnan(xv).any()):
                b.expect((ValueError,), "x")
            kw["seed"] = b.seed()
            ri = b.flag("return_indices")
            kw["return_indices"] = ri
            if ri and training is False:
                b.expect((ValueError,), "return_indices|training")
            args = (x, kernel)
            oracle = None
            if geom and training is False:
                oracle = lambda: _stochastic_eval(xv, geom[0], geom[1], geom[2])  # noqa: E731
            elif geom:

                def check(result):
                    y, idx = result if ri else (result, None)
                    assert y.shape == y_shape and y.dtype == np.dtype(dtype)
                    w, offs, _ = _windows(xv, *geom[:3])
                    if idx is not None:
                        assert idx.dtype == np.int64 and idx.shape == y_shape
                        hit = offs == idx[..., None]
                        assert hit.any(-1).all(), "an index outside its window"
                        chosen = np.take_along_axis(
                            xv.reshape(xv.shape[:2] + (math.prod(xv.shape[2:]),)),
                            idx.reshape(idx.shape[:2] + (math.prod(idx.shape[2:]),)),
                            -1,
                        ).reshape(y_shape)
                        np.testing.assert_array_equal(y.astype(np.float64), chosen.astype(dtype))
                    members = np.isclose(w, y[..., None].astype(np.float64), rtol=0, atol=0)
                    ok = members.any(-1) | (np.nan_to_num(w, nan=0).sum(-1) == 0) & (y == 0)
                    assert ok.all(), "an output that is no element of its window"

        else:
            x, xv = arr("x", x_shape, "grad_y", low=0.0, special=False)
            gy, gv = arr("grad_y", y_shape, "x", special=False)
            args = (gy, x, kernel)
            oracle = None
            if training is True or training is False:
                if training:
                    if geom and xv is not None:
                        _, offs, _ = _windows(xv, *geom[:3])
                        first = offs[..., 0] if offs.shape[-1] else np.zeros(y_shape, np.int64)
                        want_idx = np.where(first >= 0, first, offs.max(-1))
                        want_idx = np.broadcast_to(want_idx, y_shape).copy()
                        plane = max(1, math.prod(in_sizes))
                        kw["indices"] = b.index_array("indices", want_idx, plane)
                        oracle = lambda: _scatter(gv, np.asarray(kw["indices"]), x_shape)  # noqa: E731, E501
                    elif b.fault(3):
                        kw["indices"] = None
                        b.expect((ValueError,), "indices")
                    else:
                        kw["indices"] = np.zeros(y_shape, np.int64)
                elif geom:
                    oracle = lambda: _adjoint_eval(gv, xv, geom)  # noqa: E731
                    reduction = 64
    elif fn.startswith("blur"):
        x_shape = (n, c) + tuple(i + 3 for i in in_sizes)
        ks = b.per_dim("kernel_size", rank, 1, 4)
        stride = b.per_dim("stride", rank, 1, 3)
        padding = b.padding("padding", rank, 1, ("same", "valid", "full"))
        kw = dict(kernel_size=ks, stride=stride, padding=padding)
        w_dense = None
        if b.clean:
            k = ref.per_dim(ks, rank)
            kern = np.ones(())
            for kk in k:
                row = np.array([math.comb(kk - 1, i) for i in range(kk)], float)
                kern = np.multiply.outer(kern, row / row.sum())
            w_dense = np.broadcast_to(kern, (c, 1) + kern.shape)
            outs = ref.conv_out_shape(x_shape, w_dense.shape, stride, padding, 1)
            if min(outs) < 1:
                b.expect((ValueError,), GEOMETRY)
            y_shape = (n, c) + (outs if min(outs) >= 1 else (1,) * rank)
        else:
            y_shape = (n, c) + (1,) * rank
        if fn == "blur_pool":
            x, xv = arr("x", x_shape)
            args = (x,)
            oracle = lambda: ref.conv(xv, w_dense, None, stride, padding, 1, c)  # noqa: E731
        else:
            gy, gv = arr("grad_y", y_shape)
            xs = b.shape_arg("x_shape", x_shape)
            args = (gy, xs)
            oracle = lambda: ref.conv_backward_data(gv, w_dense, x_shape, stride, padding, 1, c)  # noqa: E731, E501
    else:  # weighted_avg_pool(+backward)
        x_shape = (n, c) + tuple(i + 3 for i in in_sizes)
        kshape = tuple(draw(st.integers(1, 3)) for _ in range(rank))
        wv_raw = np.random.default_rng(draw(st.integers(0, 99))).uniform(0, 1, kshape)
        if b.fault(6):
            kind = draw(st.sampled_from(["neg", "zero", "nan", "rank", "str", "complex", "empty"]))
            b.notes.append(f"weights:{kind}")
            b.expect((ValueError, TypeError), "weights")
            weights = {
                "neg": -wv_raw,
                "zero": 0 * wv_raw,
                "nan": wv_raw * np.nan,
                "rank": wv_raw[..., None],
                "str": "abc",
                "complex": wv_raw + 1j,
                "empty": np.zeros((0,) * rank),
            }[kind]
        else:
            wdtype = draw(st.sampled_from([np.float64, np.float32, np.int64]))
            if wdtype is np.int64:
                wv_raw = np.rint(wv_raw * 4) + 1
            weights = b.layout(wv_raw, wdtype)
            wv_raw = np.array(weights, dtype=np.float64)
        stride = b.per_dim("stride", rank, 1, 3, none_ok=True) if draw(st.booleans()) else None
        padding = b.padding("padding", rank, 1)
        kw = dict(stride=stride, padding=padding)
        w_dense = None
        y_shape = (n, c) + (1,) * rank
        if b.clean:
            wn = wv_raw / wv_raw.sum()
            w_dense = np.broadcast_to(wn, (c, 1) + wn.shape)
            s_ = kshape if stride is None else stride
            outs = ref.conv_out_shape(x_shape, w_dense.shape, s_, padding, 1)
            if min(outs) < 1:
                b.expect((ValueError,), GEOMETRY)
            else:
                y_shape = (n, c) + outs
        s_ = kshape if stride is None else stride
        if fn == "weighted_avg_pool":
            x, xv = arr("x", x_shape)
            args = (x, weights)
            oracle = lambda: ref.conv(xv, w_dense, None, s_, padding, 1, c)  # noqa: E731
        else:
            gy, gv = arr("grad_y", y_shape)
            xs = b.shape_arg("x_shape", x_shape)
            args = (gy, xs, weights)
            oracle = lambda: ref.conv_backward_data(gv, w_dense, x_shape, s_, padding, 1, c)  # noqa: E731, E501
    case = Case(
        fn,
        getattr(fastconv, fn),
        args,
        kw,
        b.bad,
        b.maybe,
        oracle,
        check,
        reduction,
        dtype,
        b.owners,
        b.notes,
    )
    case.nan_strict = not fn.startswith("upsample_linear")  # a dense interpolation matrix
    return case


def _seed(self):
    if self.fault(8):
        v = self.draw(st.sampled_from([-1, 2**64, 1.5, "1", True]))
        self.notes.append(f"seed:{v!r}")
        self.expect((ValueError, TypeError), "seed")
        return v
    return self.draw(st.sampled_from([None, 0, 1, 2**64 - 1, np.uint64(7)]))


Builder.seed = _seed


def _adjoint(forward, gy, x_shape):
    """The adjoint of a linear forward oracle, column by column (small shapes only)."""
    size = math.prod(x_shape)
    out = np.zeros(size)
    for i in range(size):
        e = np.zeros(size)
        e[i] = 1.0
        out[i] = np.sum(forward(e.reshape(x_shape)) * gy)
    return out.reshape(x_shape)


def _scatter(gy, idx, x_shape):
    n, c = x_shape[:2]
    gx = np.zeros((n * c, max(1, math.prod(x_shape[2:]))))
    per = math.prod(idx.shape[2:])
    rows = np.broadcast_to(np.arange(n * c)[:, None], (n * c, per))
    np.add.at(gx, (rows, idx.reshape(n * c, per)), gy.reshape(n * c, per))
    return gx[:, : math.prod(x_shape[2:])].reshape(x_shape)


def _adjoint_eval(gy, xv, geom):
    """d/dx of the eval formula: (2 x_i - y) / sum(window) per window, accumulated."""
    k, s, pads, outs = geom
    w, offs, _ = _windows(xv, k, s, pads)
    w0 = np.nan_to_num(w, nan=0.0)
    tot = w0.sum(-1, keepdims=True)
    y = np.where(tot == 0, 0.0, (w0 * w0).sum(-1, keepdims=True) / np.where(tot == 0, 1, tot))
    contrib = np.where((tot == 0) | (offs < 0), 0.0, (2 * w0 - y) / np.where(tot == 0, 1, tot))
    contrib = contrib * gy[..., None]
    n, c = xv.shape[:2]
    gx = np.zeros((n * c, math.prod(xv.shape[2:])))
    o = np.broadcast_to(offs, (n * c,) + offs.shape).reshape(n * c, offs.size)
    np.add.at(
        gx,
        (np.broadcast_to(np.arange(n * c)[:, None], o.shape), np.maximum(o, 0)),
        contrib.reshape(o.shape),
    )
    return gx.reshape(xv.shape)


# ---- tiled / locally connected and separable convolution


TILED_FNS = [
    f"{op}{p}"
    for op in ("tiled_conv", "locally_connected")
    for p in ("", "_backward_data", "_backward_weight")
]


@st.composite
def tiled_cases(draw, fn=None):
    dtype = draw(dtype_st())
    b = Builder(draw, dtype)
    fn = fn or draw(st.sampled_from(TILED_FNS))
    local = fn.startswith("locally")
    rank = draw(st.sampled_from([1, 1, 2, 2, 3]))
    n, c, k = draw(st.sampled_from([0, 1, 2])), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    in_sizes = tuple(draw(st.integers(1, 4 if rank == 3 else 7)) for _ in range(rank))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    stride = b.per_dim("stride", rank, 1, 2)
    dilation = b.per_dim("dilation", rank, 1, 2)
    padding = b.padding("padding", rank, 2, ("valid",))
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    outs = None
    if b.clean:
        s, dl = ref.per_dim(stride, rank), ref.per_dim(dilation, rank)
        pads = ref.explicit_pairs(0 if _is_valid(padding) else padding, rank)
        outs = tuple(
            ref.conv_out_size(i, kk, ss, dd, lo, hi)
            for i, kk, ss, dd, (lo, hi) in zip(in_sizes, kernel, s, dl, pads)
        )
        if min(outs) < 1:
            b.expect((ValueError,), GEOMETRY)
            outs = None
    tiles = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    if local:
        tiles = outs if outs is not None else (1,) * rank
        if outs is not None and draw(st.integers(0, 7)) == 0:
            tiles = tiles[:-1] + (tiles[-1] + 1,)
            b.expect((ValueError,), "w|w_shape")
    x_shape = (n, c) + in_sizes
    w_shape = (k,) + tiles + (c,) + kernel
    if draw(st.integers(0, 9)) == 0:
        w_shape = (k,) + tiles + (c + 1,) + kernel
        b.expect((ValueError,), "w|w_shape|x|" + GEOMETRY)
    y_shape = (n, k) + (outs if outs is not None else (1,) * rank)

    def arr(name, shape, partners="", **a):
        return b.array(name, shape, dtype, partners=partners, **a)

    fwd_kw = None
    if outs is not None:
        fwd_kw = (ref.per_dim(stride, rank), list(pads), ref.per_dim(dilation, rank))
    call = getattr(fastconv, fn)
    reduction = _tol_reduction(c, *kernel)
    if fn.endswith("_backward_data"):
        gy, gv = arr("grad_y", y_shape, "w", special=False)
        w, wv = arr("w", w_shape, "grad_y", special=False)
        xs = b.shape_arg("x_shape", x_shape)
        args = (gy, w, xs)
        oracle = lambda: _adjoint(lambda v: tiled_oracle(v, wv, None, *fwd_kw), gv, x_shape)  # noqa: E731, E501
        reduction = 64 * _tol_reduction(k, *kernel)
    elif fn.endswith("_backward_weight"):
        x, xv = arr("x", x_shape, "grad_y", special=False)
        gy, gv = arr("grad_y", y_shape, "x", special=False)
        ws = b.shape_arg("w_shape", w_shape)
        args = (x, gy, ws)
        oracle = lambda: _adjoint(lambda v: tiled_oracle(xv, v, None, *fwd_kw), gv, w_shape)  # noqa: E731, E501
        reduction = 64 * _tol_reduction(n, *y_shape[2:])
    else:
        x, xv = arr("x", x_shape, "w")
        w, wv = arr("w", w_shape, "x")
        bias, bv = None, None
        if draw(st.booleans()):
            bshape = draw(st.sampled_from([(k,), (k,) + tiles, (k + 1,), (k, 1, 1, 1, 1)]))
            if bshape not in ((k,), (k,) + tiles):
                b.expect((ValueError,), "bias")
            bias, bv = arr("bias", bshape, "x|w")
        args = (x, w, bias)
        oracle = lambda: tiled_oracle(xv, wv, bv, *fwd_kw)  # noqa: E731
    if math.prod(x_shape) > 300 or math.prod(w_shape) > 300:
        if "backward" in fn:
            oracle = None  # the column-by-column adjoint would be slow
    case = Case(
        fn, call, args, kw, b.bad, b.maybe, oracle, None, reduction, dtype, b.owners, b.notes
    )
    # conv-like passes may spread NaN/Inf through zero padding (0 * NaN): not strict
    case.nan_strict = not b.special
    return case


SEPARABLE_FNS = [
    "separable_conv",
    "separable_conv_backward_data",
    "separable_conv_backward_factors",
]


@st.composite
def separable_cases(draw, fn=None):
    dtype = draw(dtype_st())
    b = Builder(draw, dtype)
    fn = fn or draw(st.sampled_from(SEPARABLE_FNS))
    rank = draw(st.sampled_from([1, 2, 2, 3]))
    g = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    n = draw(st.sampled_from([0, 1, 2]))
    in_sizes = tuple(draw(st.integers(1, 5 if rank == 3 else 9)) for _ in range(rank))
    k_sizes = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    stride = b.per_dim("stride", rank, 1, 3)
    dilation = b.per_dim("dilation", rank, 1, 2)
    padding = b.padding("padding", rank, 3, ("valid", "same", "full"))
    groups = b.int_arg("groups", g, g)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    c, k = g * cg, g * kg
    x_shape = (n, c) + in_sizes
    f_shapes = [(k, cg, kk) for kk in k_sizes]
    fault = draw(st.integers(0, 11))
    if fault == 0:
        f_shapes = f_shapes[:-1] if rank > 1 else f_shapes + f_shapes
        b.expect((ValueError,), "factors")
    elif fault == 1:
        f_shapes[-1] = (k + 1, cg, k_sizes[-1])
        if rank > 1:
            b.expect((ValueError,), r"factors|factors\[\d\]")
        else:
            b.allow((ValueError,), GEOMETRY)
            b.clean = False
    outs = None
    if b.clean:
        w_shape = (k, cg) + k_sizes
        outs = ref.conv_out_shape(x_shape, w_shape, stride, padding, dilation)
        if min(outs) < 1 or groups != g:
            b.expect((ValueError,), GEOMETRY)
            outs = None
    y_shape = (n, k) + (outs if outs is not None else (1,) * rank)

    def arr(name, shape, partners="", **a):
        return b.array(name, shape, dtype, partners=partners, **a)

    factors, fvals = [], []
    for i, fs in enumerate(f_shapes):
        f, fv = arr(f"factors\\[{i}\\]|factors", fs, "x|grad_y")
        factors.append(f)
        fvals.append(fv)
    if b.fault(12):
        factors = tuple(factors) if draw(st.booleans()) else draw(st.sampled_from([None, "ab", 3]))
        if not isinstance(factors, tuple):
            b.expect((TypeError, ValueError), "factors")
    kwc = {k_: v for k_, v in kw.items()}

    def dense():
        from test_separable_conv import dense as make_dense

        return make_dense(fvals)

    reduction = _tol_reduction(cg, *k_sizes) * 4
    if fn == "separable_conv":
        x, xv = arr("x", x_shape, "factors")
        bias, bv = None, None
        if draw(st.booleans()):
            bias, bv = arr("bias", (k,), "x")
        args = (x, factors, bias)
        oracle = lambda: ref.conv(xv, dense(), bv, **kwc)  # noqa: E731
    elif fn == "separable_conv_backward_data":
        gy, gv = arr("grad_y", y_shape, "factors")
        xs = b.shape_arg("x_shape", x_shape)
        args = (gy, factors, xs)
        oracle = lambda: ref.conv_backward_data(gv, dense(), x_shape, **kwc)  # noqa: E731
        reduction = _tol_reduction(kg, *k_sizes) * 4
    else:
        x, xv = arr("x", x_shape, "grad_y")
        gy, gv = arr("grad_y", y_shape, "x")
        args = (x, gy, factors)

        def oracle():
            w = dense()
            gw = ref.conv_backward_weight(xv, gv, w.shape, **kwc)
            out = []
            if rank == 1:
                return [gw]
            for d in range(rank):
                others = [fvals[e] for e in range(rank) if e != d]
                letters = "xyz"[:rank]
                spec = (
                    "kc"
                    + letters
                    + ","
                    + ",".join("kc" + letters[e] for e in range(rank) if e != d)
                    + "->kc"
                    + letters[d]
                )
                out.append(np.einsum(spec, gw, *others))
            return out

        reduction = _tol_reduction(n, *y_shape[2:]) * 16
    case = Case(
        fn,
        getattr(fastconv, fn),
        args,
        kw,
        b.bad,
        b.maybe,
        oracle,
        None,
        reduction,
        dtype,
        b.owners,
        b.notes,
    )
    # conv-like passes may spread NaN/Inf through zero padding (0 * NaN): not strict
    case.nan_strict = not b.special
    return case


FAMILIES = {
    "conv": conv_cases,
    "pool": pool_cases,
    "resample": resample_cases,
    "tiled": tiled_cases,
    "separable": separable_cases,
}
