"""Separable convolution: every (output, input) kernel slice is the outer product of one 1-D
factor per spatial dim, factors[d] of shape (K, C/groups, k_d) (docs/api-contract.md).

How it runs (chosen per call from the shapes, `_Layout.uses_chain`):
- chain: one 1-D convolution per spatial dim, so a d-dim kernel of width w costs O(w * d)
  instead of O(w ** d). For host arrays that record no gradient the last two dims run fused in
  C++ (_C.separable_conv2d, csrc/algo/separable_conv.cc): per band of output rows the vertical
  pass goes to a scratch block in cache and the horizontal pass reads it from there, the sum
  over a group's C/groups input channels and the bias included. A rank-3 kernel first runs its
  leading dim as a conv pass (one intermediate channel per (input channel, output channel of
  its group) pair). Stride-1 backward_data is the same fused pass with the flipped factors.
  Otherwise (autograd, GPU arrays) every pass is a conv on the conv machinery: the first makes
  K * C/groups intermediate channels (a depthwise conv with channel multiplier K/groups), the
  others filter them depthwise, and a channel sum per group ends it.
- dense: the outer-product kernel is formed and run as an ordinary conv (small kernels with
  many input channels, where the GEMM-based algorithms beat the chain).

`conv(..., algo="separable")` (fastconv/functional.py) runs an ordinary conv this way when every
kernel slice is rank-1 within float tolerance: the check (one small SVD per slice) runs on w's
values on every call, because the problem and plan caches are keyed by shapes, not values; `auto`
never picks it for that reason.
"""

from __future__ import annotations

import functools
import math
import sys
from typing import Any, Sequence

import numpy as np

from . import _C
from ._arguments import array_shape, explicit_padding, full_shape, per_dim, positive
from ._arrays import is_torch_tensor
from ._autograd import recording, records_grad
from ._calls import run_conv
from ._dtypes import require_float32_or_64
from ._host_memory import POOL
from ._problem import conv_problem

# Chain when the dense kernel has this many times more taps than the passes together, or with
# one input channel per group. Measured on the CPU, one thread, fused passes against auto's
# dense algorithm (fft, winograd for 3x3), x (2, C, S, S), C = K, "same": 16 -> 16 channels at
# 64x64 the chain takes 0.82-1.04x the dense time for k = 5..15 (FFT's pointwise products do
# not grow with k), 64 -> 64 at 32x32 1.0x at k = 9 and 0.73x at k = 15; 31x31 (ratio 15.5):
# (8, 16, 64, 64) 0.67x of fft's time.
_CHAIN_RATIO = 8


def _conv(pass_: str, a, b, bias, shape_arg, params: tuple):
    """One conv pass on fastconv's conv machinery (autograd-recording for torch tensors)."""
    if records_grad(a, b, bias):
        return recording().conv("conv", pass_, a, b, bias, shape_arg, "auto", params)
    return run_conv("conv", pass_, a, b, bias, shape_arg, "auto", params)


def _permute(a, axes):
    return a.permute(*axes) if is_torch_tensor(a) else a.transpose(axes)


def _dtype(a) -> str:
    return str(a.dtype).replace("torch.", "")


def _shape(a) -> tuple:
    shape = getattr(a, "shape", None)
    return tuple(int(s) for s in (np.shape(a) if shape is None else shape))


class _Layout:
    """Shapes and per-pass parameters of one separable conv (validated)."""

    def __init__(self, x_shape, f_shapes, stride, padding, dilation, groups):
        if not 3 <= len(x_shape) <= 5:
            raise ValueError(
                f"x must have 3, 4 or 5 dims (N, C, *spatial with 1-3 spatial dims), got shape "
                f"{tuple(x_shape)}"
            )
        rank = len(x_shape) - 2
        if len(f_shapes) != rank:
            raise ValueError(
                f"factors must hold one array per spatial dim ({rank} for x of shape "
                f"{tuple(x_shape)}), got {len(f_shapes)}"
            )
        for d, s in enumerate(f_shapes):
            if len(s) != 3 or s[:2] != f_shapes[0][:2]:
                raise ValueError(
                    f"factors[{d}] must have shape (K, C/groups, k_{d}) with the K and C/groups "
                    f"of factors[0] {tuple(f_shapes[0])}, got {tuple(s)}"
                )
        if type(groups) is bool or not isinstance(groups, (int, np.integer)):
            raise TypeError(f"groups must be an int, got {type(groups).__name__}")
        groups = int(groups)
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        if groups > 2**62:
            raise ValueError(f"groups must fit in int64, got {groups}")
        self.x_shape = tuple(int(s) for s in x_shape)
        self.n, self.c = int(x_shape[0]), int(x_shape[1])
        self.k, self.cg = int(f_shapes[0][0]), int(f_shapes[0][1])
        if self.c != self.cg * groups or self.k % groups:
            raise ValueError(
                f"factors are (K={self.k}, C/groups={self.cg}, k) but x has {self.c} channels and "
                f"groups={groups}: need C == C/groups * groups and K divisible by groups"
            )
        self.rank, self.groups, self.m = rank, groups, self.k // groups
        self.kernel = tuple(int(s[2]) for s in f_shapes)
        self.in_spatial = tuple(int(s) for s in x_shape[2:])
        self.stride = positive(per_dim(stride, rank, "stride"), "stride")
        self.dilation = positive(per_dim(dilation, rank, "dilation"), "dilation")
        if isinstance(padding, str):
            if padding.lower() not in ("valid", "same", "full"):
                raise ValueError(
                    f"padding must be an int, a tuple, or one of ('valid', 'same', 'full'), "
                    f"got {padding!r}"
                )
            self.padding: Any = padding.lower()
        else:
            self.padding = explicit_padding(padding, rank)
        self.params = (tuple(self.stride), self._dense_padding(), tuple(self.dilation))

    def _dense_padding(self):
        if isinstance(self.padding, str):
            return self.padding
        lo, hi = self.padding
        return tuple(zip(lo, hi))

    def problem(self, dtype: str) -> Any:
        """The dense conv's compiled problem: the padding resolved per dim, the output shape."""
        w_shape = (self.k, self.cg, *self.kernel)
        return _dense_problem(self.x_shape, w_shape, dtype, self.dense_params())

    def dense_params(self) -> tuple:
        s, p, d = self.params
        return (s, p, d, self.groups, "cross", 0)

    def pass_params(self, d: int, groups: int) -> tuple:
        """conv params of the chain's pass along dim d."""
        one = [1] * self.rank
        stride, dilation = list(one), list(one)
        stride[d], dilation[d] = self.stride[d], self.dilation[d]
        if isinstance(self.padding, str):
            pad: Any = self.padding  # resolves to 0 along the other dims (kernel 1, stride 1)
        else:
            lo, hi = self.padding
            pad = tuple((lo[e], hi[e]) if e == d else (0, 0) for e in range(self.rank))
        return (tuple(stride), pad, tuple(dilation), groups, "cross", 0)

    def uses_chain(self) -> bool:
        if self.rank == 1:
            return False
        if self.cg == 1:
            return True
        return math.prod(self.kernel) >= _CHAIN_RATIO * sum(self.kernel)

    def chain_weight(self, f, d: int):
        """factors[d] (K, C/G, k) -> the depthwise weight (C * M, 1, 1.., k, ..1) of pass d,
        channel (c, j) = (g * C/G + ci, j) <- factor row (g * M + j, ci)."""
        shape = [1] * self.rank
        shape[d] = self.kernel[d]
        if self.cg > 1:
            f = _permute(f.reshape(self.groups, self.m, self.cg, self.kernel[d]), (0, 2, 1, 3))
        return f.reshape(self.c * self.m, 1, *shape)

    def factor_of_chain(self, gw, d: int):
        """chain_weight's inverse (for the weight gradients)."""
        k = self.kernel[d]
        if self.cg > 1:
            gw = _permute(gw.reshape(self.groups, self.cg, self.m, k), (0, 2, 1, 3))
        return gw.reshape(self.k, self.cg, k)

    def dense_weight(self, factors):
        w = None
        for d, f in enumerate(factors):
            shape = [1] * self.rank
            shape[d] = self.kernel[d]
            term = f.reshape(self.k, self.cg, *shape)
            w = term if w is None else w * term
        return w


def _float_dtype(a) -> str | None:
    """The name of a's floating dtype ("float32", ...; NumPy's in native byte order), or None
    for any other dtype."""
    if is_torch_tensor(a):
        return _dtype(a) if a.dtype.is_floating_point else None
    dt = np.dtype(a.dtype)
    return dt.newbyteorder("=").name if dt.kind == "f" else None


def _as_factors(factors, like, like_name: str) -> list:
    """The factors argument as a list of arrays: nested lists become NumPy arrays (as every
    operand accepts them); TypeError naming factors[d] for what is no array, and for a factor
    whose dtype is not a float one or not the dtype of `like` (x or grad_y: the conv machinery
    would otherwise cast the factors' products, or blame an internal weight)."""
    if not isinstance(factors, (list, tuple)):
        raise TypeError(
            f"factors must be a list or tuple of arrays (one per spatial dim), got "
            f"{type(factors).__name__}"
        )
    if isinstance(like, (list, tuple)):
        like = np.asarray(like)  # (nested lists of floats are float64 operands)
    want = _float_dtype(like) if getattr(like, "dtype", None) is not None else None
    out = []
    for d, f in enumerate(factors):
        if isinstance(f, (list, tuple)):
            f = np.asarray(f)
        elif getattr(f, "shape", None) is None or getattr(f, "dtype", None) is None:
            raise TypeError(
                f"factors[{d}] must be a NumPy array or a torch tensor, got {type(f).__name__}"
            )
        got = _float_dtype(f)
        if is_torch_tensor(f) and got is None:
            raise TypeError(f"factors[{d}] must have a floating dtype, got {f.dtype}")
        if not is_torch_tensor(f):
            require_float32_or_64(f.dtype, f"factors[{d}]")
        if want is not None and got != want:
            raise TypeError(f"factors[{d}] must have the dtype of {like_name} ({want}), got {got}")
        out.append(f)
    return out


def _layout(x_shape, factors, stride, padding, dilation, groups) -> _Layout:
    return _Layout(x_shape, [_shape(f) for f in factors], stride, padding, dilation, groups)


@functools.lru_cache(maxsize=256)
def _dense_problem(x_shape: tuple, w_shape: tuple, dtype: str, params: tuple) -> Any:
    """The dense conv's compiled problem (padding rules resolved, geometry checked)."""
    stride, padding, dilation, groups = params[:4]
    return conv_problem(
        "conv", "forward", x_shape, w_shape, dtype,
        stride=stride, padding=padding, dilation=dilation, groups=groups,
    )  # fmt: skip


def _host(*arrays) -> list | None:
    """NumPy views of host operands (NumPy arrays or CPU tensors, one float dtype, None kept)
    that record no gradient; None when the fused pass cannot take them (the conv machinery
    then runs, and names a bad operand in its errors)."""
    present = [a for a in arrays if a is not None]
    if records_grad(*present):
        return None
    out = []
    for a in arrays:
        if a is None:
            out.append(None)
        elif type(a) is np.ndarray:
            out.append(np.ascontiguousarray(a))
        elif is_torch_tensor(a) and a.is_cpu:
            out.append(a.detach().contiguous().numpy())
        else:
            return None
    dtypes = {a.dtype for a in out if a is not None}
    if len(dtypes) != 1 or dtypes.pop() not in (np.float32, np.float64):
        return None
    return out


def _fused(lay: "_Layout", z, fa, fb, bias, lo, hi, out_shape, pairs: bool, like):
    """The last two dims' passes fused (_C.separable_conv2d) on host operands: z (N, Cz,
    [L,] H, W), fa / fb (K', C'/groups, k) the factors of those dims, lo / hi their padding;
    the result has out_shape and like's kind. None when it cannot run (see _host; negative
    padding)."""
    lo, hi = [int(v) for v in lo], [int(v) for v in hi]
    ops = _host(z, fa, fb, bias)
    if ops is None or min(*lo, *hi) < 0:
        return None
    zn, an, bn, biasn = ops
    y = POOL.empty(out_shape, zn.dtype)
    stride, dilation = lay.stride[-2:], lay.dilation[-2:]
    _C.separable_conv2d(zn, an, bn, biasn, y, lay.groups, pairs, stride, lo, hi, dilation)
    return sys.modules["torch"].from_numpy(y) if is_torch_tensor(like) else y


def _chain_forward(lay: _Layout, x, factors, passes: int = -1):
    """The chain's first `passes` passes (all by default) on the conv machinery, and each
    pass's input."""
    z, inputs = x, []
    for d in range(lay.rank if passes < 0 else passes):
        inputs.append(z)
        groups = lay.c if d == 0 else lay.c * lay.m
        params = lay.pass_params(d, groups)
        z = _conv("forward", z, lay.chain_weight(factors[d], d), None, None, params)
    return z, inputs


def _sum_channels(lay: _Layout, z):
    """(N, C * M, *out) -> (N, K, *out): each output channel sums its group's C/G pairs."""
    if lay.cg == 1:
        return z
    spatial = _shape(z)[2:]
    z = z.reshape(lay.n, lay.groups, lay.cg, lay.m, *spatial).sum(2)
    return z.reshape(lay.n, lay.k, *spatial)


def _spread_channels(lay: _Layout, g):
    """_sum_channels' adjoint: (N, K, *out) -> (N, C * M, *out)."""
    if lay.cg == 1:
        return g
    spatial = _shape(g)[2:]
    g = g.reshape(lay.n, lay.groups, 1, lay.m, *spatial)
    full = (lay.n, lay.groups, lay.cg, lay.m, *spatial)
    g = g.expand(*full) if is_torch_tensor(g) else np.broadcast_to(g, full)
    return g.reshape(lay.n, lay.c * lay.m, *spatial)


def _add_bias(lay: _Layout, y, bias):
    if bias is None:
        return y
    return y + bias.reshape(1, lay.k, *([1] * lay.rank))


def separable_conv(
    x, factors: Sequence[Any], bias=None, *, stride=1, padding=0, dilation=1, groups: int = 1
):
    """Convolution with the kernel w[k, c] = factors[0][k, c] (x) factors[1][k, c] (x) ...
    (outer product), factors[d] of shape (K, C/groups, k_d); x (N, C, *in) -> (N, K, *out)."""
    x_shape = array_shape(x, "x")
    factors = _as_factors(factors, x, "x")
    lay = _layout(x_shape, factors, stride, padding, dilation, groups)
    if not lay.uses_chain():
        return _conv("forward", x, lay.dense_weight(factors), bias, None, lay.dense_params())
    if bias is not None:
        if array_shape(bias, "bias") != (lay.k,):
            raise ValueError(
                f"bias must have shape ({lay.k},) (output channels), got {_shape(bias)}"
            )
        if isinstance(bias, (list, tuple)):
            bias = np.asarray(bias)  # (the chain adds it to its sum itself)
        if getattr(x, "dtype", None) is not None and _float_dtype(bias) != _float_dtype(x):
            raise TypeError(  # (as the dense path's conv says: no silent promotion)
                f"bias must have the dtype of x ({_float_dtype(x)}), got {bias.dtype}"
            )
    if _host(x, *factors, bias) is not None:
        problem = lay.problem(_dtype(x))
        z = x if lay.rank == 2 else _chain_forward(lay, x, factors, 1)[0]
        fa, fb = factors[-2:]
        lo, hi = problem.pad_lo[-2:], problem.pad_hi[-2:]
        y = _fused(lay, z, fa, fb, bias, lo, hi, problem.y_shape, lay.rank == 3, x)
        if y is not None:
            return y
    z, _ = _chain_forward(lay, x, factors)
    return _add_bias(lay, _sum_channels(lay, z), bias)


def _chain_shapes(lay: _Layout, out_spatial) -> list[tuple]:
    """The input shape of each pass of the chain (pass d has the output extents before d)."""
    shapes = []
    for d in range(lay.rank):
        channels = lay.c if d == 0 else lay.c * lay.m
        shapes.append((lay.n, channels, *out_spatial[:d], *lay.in_spatial[d:]))
    return shapes


def separable_conv_backward_data(
    grad_y,
    factors: Sequence[Any],
    x_shape: Sequence[int],
    *,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
):
    """Gradient of `separable_conv` with respect to x (shape `x_shape`)."""
    x_shape = tuple(full_shape(x_shape, "x_shape", len(array_shape(grad_y, "grad_y"))))
    factors = _as_factors(factors, grad_y, "grad_y")
    lay = _layout(x_shape, factors, stride, padding, dilation, groups)
    if not lay.uses_chain():
        w = lay.dense_weight(factors)
        return _conv("backward_data", grad_y, w, None, x_shape, lay.dense_params())
    if lay.rank == 2 and lay.stride == [1, 1] and _host(grad_y, *factors) is not None:
        gx = _fused_backward_data(lay, grad_y, factors)
        if gx is not None:
            return gx
    shapes = _chain_shapes(lay, _shape(grad_y)[2:])
    g = _spread_channels(lay, grad_y)
    for d in reversed(range(lay.rank)):
        groups_d = lay.c if d == 0 else lay.c * lay.m
        w = lay.chain_weight(factors[d], d)
        g = _conv("backward_data", g, w, None, shapes[d], lay.pass_params(d, groups_d))
    return g


def _fused_backward_data(lay: _Layout, grad_y, factors):
    """Stride-1 backward_data of a 2-D chain as one fused pass: the cross-correlation of grad_y
    with the flipped kernel, C/groups <-> K/groups swapped, padding d * (k - 1) - padding; None
    when it cannot run (grad_y of the wrong shape: the conv pass names it)."""
    problem = lay.problem(_dtype(grad_y))
    if _shape(grad_y) != tuple(problem.y_shape):
        return None
    flipped = []
    for f in _host(*factors):  # (K, C/G, k) -> (C, K/G, k), reversed
        k = f.shape[2]
        f = f.reshape(lay.groups, lay.m, lay.cg, k).transpose(0, 2, 1, 3)[..., ::-1]
        flipped.append(np.ascontiguousarray(f).reshape(lay.c, lay.m, k))
    reach = [d * (k - 1) for d, k in zip(lay.dilation, lay.kernel)]
    lo = [r - p for r, p in zip(reach, problem.pad_lo)]
    hi = [r - p for r, p in zip(reach, problem.pad_hi)]
    return _fused(lay, grad_y, *flipped, None, lo, hi, lay.x_shape, False, grad_y)


def _fused_backward_factors(lay: _Layout, x, grad_y, factors):
    """Both factors' gradients of a stride-1 2-D chain in one fused pass per (output, input
    channel) pair and band (_C.separable_conv2d_backward_factors); None when it cannot run
    (not host operands, grad_y of the wrong shape, padding below zero or beyond the kernel's
    reach along the rows: the conv passes then run, and name a bad operand)."""
    ops = _host(x, grad_y, *factors)
    if ops is None:
        return None
    problem = lay.problem(_dtype(x))
    lo, hi = [int(v) for v in problem.pad_lo], [int(v) for v in problem.pad_hi]
    reach = lay.dilation[1] * (lay.kernel[1] - 1)
    if _shape(grad_y) != tuple(problem.y_shape) or min(*lo, *hi) < 0 or lo[1] > reach:
        return None
    xn, gn, fa, fb = ops
    ga, gb = np.empty_like(fa), np.empty_like(fb)
    _C.separable_conv2d_backward_factors(xn, gn, fa, fb, ga, gb, lay.groups, lo, hi, lay.dilation)
    if is_torch_tensor(x):
        torch = sys.modules["torch"]
        return [torch.from_numpy(ga), torch.from_numpy(gb)]
    return [ga, gb]


def separable_conv_backward_factors(
    x, grad_y, factors: Sequence[Any], *, stride=1, padding=0, dilation=1, groups: int = 1
) -> list:
    """Gradients of `separable_conv` with respect to each factor (a list, one per factor)."""
    x_shape = array_shape(x, "x")
    array_shape(grad_y, "grad_y")
    factors = _as_factors(factors, x, "x")
    lay = _layout(x_shape, factors, stride, padding, dilation, groups)
    if not lay.uses_chain():
        w = lay.dense_weight(factors)
        gw = _conv("backward_weight", x, grad_y, None, _shape(w), lay.dense_params())
        grads = []
        for d in range(lay.rank):
            others = [factors[e] if e != d else None for e in range(lay.rank)]
            prod = None
            for e, f in enumerate(others):
                if f is None:
                    continue
                shape = [1] * lay.rank
                shape[e] = lay.kernel[e]
                term = f.reshape(lay.k, lay.cg, *shape)
                prod = term if prod is None else prod * term
            full = gw if prod is None else gw * prod
            axes = tuple(2 + e for e in range(lay.rank) if e != d)
            grads.append(full.sum(axes) if axes else full)
        return grads
    if lay.rank == 2 and lay.stride == [1, 1]:
        grads = _fused_backward_factors(lay, x, grad_y, factors)
        if grads is not None:
            return grads
    last, inputs = _chain_forward(lay, x, factors, lay.rank - 1)
    inputs.append(last)
    g = _spread_channels(lay, grad_y)
    grads: list = [None] * lay.rank
    for d in reversed(range(lay.rank)):
        groups_d = lay.c if d == 0 else lay.c * lay.m
        w = lay.chain_weight(factors[d], d)
        params = lay.pass_params(d, groups_d)
        gw = _conv("backward_weight", inputs[d], g, None, _shape(w), params)
        grads[d] = lay.factor_of_chain(gw, d)
        if d > 0:
            g = _conv("backward_data", g, w, None, _shape(inputs[d]), params)
    return grads


# ---- conv(..., algo="separable"): an ordinary conv whose kernel slices are all rank-1

_RTOL = {"float32": 1e-5, "float64": 1e-10}


def separable_factors(w) -> tuple[Any, str]:
    """(factors as float64 NumPy arrays, "") when every slice w[k, c] of w (K, C/G, *kernel)
    is an outer product of 1-D factors within float tolerance (relative residual of the best
    rank-1 fit, one small SVD per slice and dim), else (None, why not)."""
    torch_w = is_torch_tensor(w)
    arr = w.detach().cpu().numpy() if torch_w else np.asarray(w)
    dtype = str(arr.dtype)
    arr = arr.astype(np.float64)
    k, cg, *kernel = arr.shape
    rank = len(kernel)
    if rank == 1:
        return [arr], ""
    s = arr.reshape(k * cg, *kernel)
    us = []
    for d in range(rank):
        unfolded = np.moveaxis(s, d + 1, 1).reshape(k * cg, kernel[d], -1)
        u = np.linalg.svd(unfolded, full_matrices=False)[0]
        us.append(u[:, :, 0])
    letters = "abc"[:rank]
    spec = f"i{letters}," + ",".join(f"i{c}" for c in letters)
    lam = np.einsum(spec + "->i", s, *us)
    fit = np.einsum(",".join(f"i{c}" for c in letters) + f"->i{letters}", *us)
    fit = fit * lam.reshape(-1, *([1] * rank))
    norm = np.sqrt((s * s).reshape(k * cg, -1).sum(1))
    err = np.sqrt(((s - fit) ** 2).reshape(k * cg, -1).sum(1))
    rtol = _RTOL.get(dtype, 1e-5)
    bad = np.nonzero(err > rtol * norm + 1e-300)[0]
    if bad.size:
        i = int(bad[0])
        return None, (
            f"kernel slice w[{i // cg}, {i % cg}] is not rank-1 (relative residual of its best "
            f"rank-1 fit {err[i] / norm[i]:.3g} > tolerance {rtol:g}); {bad.size} of {k * cg} "
            "slices are not"
        )
    factors = [u.reshape(k, cg, kernel[d]) for d, u in enumerate(us)]
    factors[0] = factors[0] * lam.reshape(k, cg, 1)
    return factors, ""


def _like(f, w):
    """A float64 NumPy factor as an array of w's library, dtype and device."""
    if is_torch_tensor(w):
        torch = sys.modules["torch"]
        return torch.from_numpy(np.ascontiguousarray(f)).to(dtype=w.dtype, device=w.device)
    return np.ascontiguousarray(f, dtype=w.dtype)


def conv_as_separable(op: str, pass_: str, a, b, bias, shape_arg, params: tuple):
    """conv(..., algo="separable") and its backward_data pass (fastconv/functional.py)."""
    stride, padding, dilation, groups, mode, _ = params
    if op != "conv":
        raise NotImplementedError("algo='separable' runs convolutions only, not conv_transpose")
    if pass_ == "backward_weight":
        raise NotImplementedError(
            "algo='separable' cannot run conv backward_weight: the weight gradient is not a "
            "separable kernel (separable_conv_backward_factors gives the factors' gradients)"
        )
    if records_grad(b):
        raise NotImplementedError(
            "algo='separable' cannot record w's gradient: its factors come from w's values; "
            "use separable_conv with the factors as parameters"
        )
    factors, reason = separable_factors(b)
    if factors is None:
        raise NotImplementedError(f"algo='separable' cannot run this conv: {reason}")
    if mode == "conv":  # true convolution: the flipped kernel, i.e. every factor flipped
        factors = [f[..., ::-1] for f in factors]
    factors = [_like(f, b) for f in factors]
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    if pass_ == "forward":
        return separable_conv(a, factors, bias, **kw)
    return separable_conv_backward_data(a, factors, shape_arg, **kw)


def explain_separable(w, op: str, pass_: str) -> tuple[str, int]:
    """explain()'s (reason, workspace bytes) for algo="separable"; NotImplementedError when it
    cannot run (as a forced algorithm's plan raises)."""
    if op != "conv" or pass_ == "backward_weight":
        raise NotImplementedError(
            f"algo='separable' runs conv forward and backward_data only, not {op} {pass_}"
        )
    if isinstance(w, (tuple, list)):
        return (
            "forced: runs when every kernel slice of w is rank-1, checked on w's values at each "
            "call (a shape alone cannot tell)",
            0,
        )
    factors, reason = separable_factors(w)
    if factors is None:
        raise NotImplementedError(f"algo='separable' cannot run this conv: {reason}")
    return (
        (
            "forced: every kernel slice of w is rank-1; runs as separable_conv of its factors "
            "(a chain of 1-D convolutions where that beats the dense kernel)"
        ),
        0,
    )
