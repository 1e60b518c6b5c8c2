"""Independent NumPy float64 oracle, written from docs/api-contract.md; never imports fastconv."""

from __future__ import annotations

import itertools
import math

import numpy as np

# Every function computes in float64 (or `acc` when given) and returns float64 arrays. Kernels
# loop over kernel offsets in Python and vectorise over batch, channels and spatial positions
# with einsum over strided slices of a padded input.


# ---- argument normalisation


def per_dim(value, rank):
    """An int or a per-dim sequence -> tuple of `rank` ints."""
    if isinstance(value, (int, np.integer)):
        return (int(value),) * rank
    t = tuple(int(v) for v in value)
    if len(t) != rank:
        raise ValueError(f"expected {rank} values, got {t}")
    return t


def explicit_pairs(padding, rank):
    """int / per-dim ints / per-dim (low, high) pairs -> tuple of (low, high)."""
    if isinstance(padding, (int, np.integer)):
        return ((int(padding), int(padding)),) * rank
    items = list(padding)
    if len(items) != rank:
        raise ValueError(f"expected {rank} padding entries, got {padding!r}")
    pairs = []
    for p in items:
        if isinstance(p, (int, np.integer)):
            pairs.append((int(p), int(p)))
        else:
            lo, hi = p
            pairs.append((int(lo), int(hi)))
    return tuple(pairs)


def resolve_padding(padding, in_sizes, k_sizes, stride=1, dilation=1):
    """Conv padding spec (int, tuple, pairs, "valid", "same", "full") -> tuple of (low, high)."""
    rank = len(in_sizes)
    s = per_dim(stride, rank)
    d = per_dim(dilation, rank)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * rank
        if padding == "full":
            return tuple(((k - 1) * dd, (k - 1) * dd) for k, dd in zip(k_sizes, d))
        if padding == "same":
            pairs = []
            for n, k, ss, dd in zip(in_sizes, k_sizes, s, d):
                out = -(-n // ss)  # ceil(n / s)
                total = max((out - 1) * ss + (k - 1) * dd + 1 - n, 0)
                pairs.append((total // 2, total - total // 2))  # extra at the high end (TF)
            return tuple(pairs)
        raise ValueError(f"unknown padding {padding!r}")
    return explicit_pairs(padding, rank)


def conv_out_size(n, k, s, d, lo, hi):
    """Floor rule; may be <= 0 for invalid geometries (Python // floors negatives)."""
    return (n + lo + hi - d * (k - 1) - 1) // s + 1


def conv_out_shape(x_shape, w_shape, stride=1, padding=0, dilation=1):
    """Spatial output sizes of conv (may contain values < 1 for invalid geometries)."""
    in_sizes, k_sizes = tuple(x_shape[2:]), tuple(w_shape[2:])
    rank = len(k_sizes)
    s, d = per_dim(stride, rank), per_dim(dilation, rank)
    pads = resolve_padding(padding, in_sizes, k_sizes, s, d)
    return tuple(
        conv_out_size(n, k, ss, dd, lo, hi)
        for n, k, ss, dd, (lo, hi) in zip(in_sizes, k_sizes, s, d, pads)
    )


def transpose_out_size(n, k, s, d, lo, hi, op):
    return (n - 1) * s - lo - hi + d * (k - 1) + 1 + op


def pool_out_size(n, k, s, d, lo, hi, ceil_mode):
    num = n + lo + hi - d * (k - 1) - 1
    out = (-(-num // s) if ceil_mode else num // s) + 1
    if ceil_mode and (out - 1) * s >= n + lo:  # last window must start inside input or low pad
        out -= 1
    return out


def pool_geometry(in_sizes, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """-> (k, s, d, pads, outs) tuples for a pooling op."""
    rank = len(in_sizes)
    k = per_dim(kernel_size, rank)
    s = k if stride is None else per_dim(stride, rank)
    d = per_dim(dilation, rank)
    pads = explicit_pairs(padding, rank)
    outs = tuple(
        pool_out_size(n, kk, ss, dd, lo, hi, ceil_mode)
        for n, kk, ss, dd, (lo, hi) in zip(in_sizes, k, s, d, pads)
    )
    return k, s, d, pads, outs


# ---- helpers


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _offsets(k_sizes):
    return itertools.product(*(range(k) for k in k_sizes))


def _window_slices(offs, d, s, count):
    """Slices picking, for kernel offset `offs`, the padded positions o*s + j*d for o < count."""
    return tuple(
        slice(j * dd, j * dd + ss * (c - 1) + 1, ss) for j, dd, ss, c in zip(offs, d, s, count)
    )


def _pad(x, pads, value=0.0, extra_high=None):
    """Pad spatial dims (axes 2..) by (low, high [+ extra]) with `value`."""
    extra_high = extra_high or (0,) * len(pads)
    spatial = x.shape[2:]
    shape = x.shape[:2] + tuple(
        n + lo + hi + e for n, (lo, hi), e in zip(spatial, pads, extra_high)
    )
    out = np.full(shape, value, dtype=x.dtype)
    out[(Ellipsis,) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(spatial, pads))] = x
    return out


def _crop(xp, pads, sizes):
    return xp[(Ellipsis,) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(sizes, pads))]


def _flat(a):
    """(N, G, C, *spatial) -> (N, G, C, prod(spatial)); einsum cannot sum over an ellipsis."""
    return a.reshape(a.shape[:3] + (math.prod(a.shape[3:]),))


def _flip_spatial(w):
    return np.flip(w, axis=tuple(range(2, w.ndim)))


# ---- convolution


def conv(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1, mode="cross", acc=np.float64):
    """y[n, g*Kg+k, o] = sum_{c, j} xpad[n, g*Cg+c, o*s + j*d] * w[g*Kg+k, c, j] (+ bias)."""
    x, w = np.asarray(x, acc), np.asarray(w, acc)
    rank = w.ndim - 2
    N, C = x.shape[:2]
    K, Cg = w.shape[:2]
    G = groups
    assert x.ndim == w.ndim and C == Cg * G and K % G == 0
    k_sizes = w.shape[2:]
    s, d = per_dim(stride, rank), per_dim(dilation, rank)
    pads = resolve_padding(padding, x.shape[2:], k_sizes, s, d)
    outs = conv_out_shape(x.shape, w.shape, s, pads, d)
    assert all(o >= 1 for o in outs), outs
    if mode == "conv":
        w = _flip_spatial(w)
    xg = _pad(x, pads).reshape(
        (N, G, Cg) + tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads))
    )
    wg = w.reshape((G, K // G, Cg) + k_sizes)
    y = np.zeros((N, G, K // G) + outs, dtype=acc)
    for offs in _offsets(k_sizes):
        xs = xg[(Ellipsis,) + _window_slices(offs, d, s, outs)]
        y += np.einsum("ngc...,gkc->ngk...", xs, wg[(Ellipsis,) + offs])
    y = y.reshape((N, K) + outs)
    if bias is not None:
        y += np.asarray(bias, acc).reshape((1, K) + (1,) * rank)
    return y


def conv_backward_data(grad_y, w, x_shape, stride=1, padding=0, dilation=1, groups=1, mode="cross"):
    """Adjoint of conv w.r.t. x: scatter-add grad_y[n, k, o] * w[k, c, j] to xpad[o*s + j*d]."""
    gy, w = _f64(grad_y), _f64(w)
    x_shape = tuple(int(v) for v in x_shape)
    rank = w.ndim - 2
    N, C = x_shape[:2]
    K, Cg = w.shape[:2]
    G = groups
    k_sizes, in_sizes = w.shape[2:], x_shape[2:]
    s, d = per_dim(stride, rank), per_dim(dilation, rank)
    pads = resolve_padding(padding, in_sizes, k_sizes, s, d)
    outs = conv_out_shape(x_shape, w.shape, s, pads, d)
    assert gy.shape == (N, K) + outs, (gy.shape, outs)
    if mode == "conv":
        w = _flip_spatial(w)
    padded = tuple(n + lo + hi for n, (lo, hi) in zip(in_sizes, pads))
    gxp = np.zeros((N, G, Cg) + padded)
    gyg = gy.reshape((N, G, K // G) + outs)
    wg = w.reshape((G, K // G, Cg) + k_sizes)
    for offs in _offsets(k_sizes):
        gxp[(Ellipsis,) + _window_slices(offs, d, s, outs)] += np.einsum(
            "ngk...,gkc->ngc...", gyg, wg[(Ellipsis,) + offs]
        )
    return np.ascontiguousarray(_crop(gxp.reshape((N, C) + padded), pads, in_sizes))


def conv_backward_weight(
    x, grad_y, w_shape, stride=1, padding=0, dilation=1, groups=1, mode="cross"
):
    """grad_w[g*Kg+k, c, j] = sum_{n, o} xpad[n, g*Cg+c, o*s + j*d] * grad_y[n, g*Kg+k, o]."""
    x, gy = _f64(x), _f64(grad_y)
    w_shape = tuple(int(v) for v in w_shape)
    rank = len(w_shape) - 2
    N, C = x.shape[:2]
    K, Cg = w_shape[:2]
    G = groups
    k_sizes = w_shape[2:]
    s, d = per_dim(stride, rank), per_dim(dilation, rank)
    pads = resolve_padding(padding, x.shape[2:], k_sizes, s, d)
    outs = conv_out_shape(x.shape, w_shape, s, pads, d)
    assert gy.shape == (N, K) + outs, (gy.shape, outs)
    xg = _pad(x, pads).reshape(
        (N, G, Cg) + tuple(n + lo + hi for n, (lo, hi) in zip(x.shape[2:], pads))
    )
    gyg = gy.reshape((N, G, K // G) + outs)
    gw = np.zeros((G, K // G, Cg) + k_sizes)
    for offs in _offsets(k_sizes):
        xs = xg[(Ellipsis,) + _window_slices(offs, d, s, outs)]
        gw[(Ellipsis,) + offs] = np.einsum("ngcp,ngkp->gkc", _flat(xs), _flat(gyg))
    gw = gw.reshape(w_shape)
    return np.ascontiguousarray(_flip_spatial(gw) if mode == "conv" else gw)


def conv_backward_bias(grad_y):
    gy = _f64(grad_y)
    return gy.sum(axis=(0,) + tuple(range(2, gy.ndim)))


# ---- transposed convolution (w: (C_in, K_out/G, *k))


def _transpose_geometry(in_sizes, k_sizes, stride, padding, output_padding, dilation):
    rank = len(k_sizes)
    s, d = per_dim(stride, rank), per_dim(dilation, rank)
    op = per_dim(output_padding, rank)
    pads = resolve_padding(padding, in_sizes, k_sizes, s, d)
    outs = tuple(
        transpose_out_size(n, k, ss, dd, lo, hi, o)
        for n, k, ss, dd, (lo, hi), o in zip(in_sizes, k_sizes, s, d, pads, op)
    )
    return s, d, op, pads, outs


def conv_transpose(x, w, bias=None, stride=1, padding=0, output_padding=0, dilation=1, groups=1):
    """y[n, g*Kg+k, i*s + j*d - lo] += x[n, g*Cg+c, i] * w[g*Cg+c, k, j]; y cropped to out."""
    x, w = _f64(x), _f64(w)
    N, Cin = x.shape[:2]
    G = groups
    Cg, Kg = Cin // G, w.shape[1]
    in_sizes, k_sizes = x.shape[2:], w.shape[2:]
    s, d, op, pads, outs = _transpose_geometry(
        in_sizes, k_sizes, stride, padding, output_padding, dilation
    )
    assert all(o >= 1 for o in outs), outs
    full = tuple(
        (n - 1) * ss + dd * (k - 1) + 1 + o for n, k, ss, dd, o in zip(in_sizes, k_sizes, s, d, op)
    )
    buf = np.zeros((N, G, Kg) + full)
    xg = x.reshape((N, G, Cg) + in_sizes)
    wg = w.reshape((G, Cg, Kg) + k_sizes)
    for offs in _offsets(k_sizes):
        buf[(Ellipsis,) + _window_slices(offs, d, s, in_sizes)] += np.einsum(
            "ngc...,gck->ngk...", xg, wg[(Ellipsis,) + offs]
        )
    y = np.ascontiguousarray(_crop(buf, pads, outs)).reshape((N, G * Kg) + outs)
    if bias is not None:
        y += _f64(bias).reshape((1, G * Kg) + (1,) * len(k_sizes))
    return y


def _transpose_in_sizes(out_sizes, k_sizes, s, d, pads, op):
    sizes = []
    for n, k, ss, dd, (lo, hi), o in zip(out_sizes, k_sizes, s, d, pads, op):
        num = n - 1 - o + lo + hi - dd * (k - 1)
        assert num >= 0 and num % ss == 0, "grad_y size inconsistent with the geometry"
        sizes.append(num // ss + 1)
    return tuple(sizes)


def conv_transpose_backward_data(
    grad_y, w, stride=1, padding=0, output_padding=0, dilation=1, groups=1
):
    """grad_x[n, g*Cg+c, i] = sum_{k, j} grad_y[n, g*Kg+k, i*s + j*d - lo] * w[g*Cg+c, k, j]."""
    gy, w = _f64(grad_y), _f64(w)
    rank = w.ndim - 2
    N = gy.shape[0]
    G = groups
    Cin, Kg = w.shape[:2]
    Cg = Cin // G
    k_sizes = w.shape[2:]
    s, d = per_dim(stride, rank), per_dim(dilation, rank)
    op = per_dim(output_padding, rank)
    pads = explicit_pairs(0 if padding == "valid" else padding, rank)
    in_sizes = _transpose_in_sizes(gy.shape[2:], k_sizes, s, d, pads, op)
    gyp = _pad(gy, pads)
    gyg = gyp.reshape((N, G, Kg) + gyp.shape[2:])
    wg = w.reshape((G, Cg, Kg) + k_sizes)
    gx = np.zeros((N, G, Cg) + in_sizes)
    for offs in _offsets(k_sizes):
        gx += np.einsum(
            "ngk...,gck->ngc...",
            gyg[(Ellipsis,) + _window_slices(offs, d, s, in_sizes)],
            wg[(Ellipsis,) + offs],
        )
    return gx.reshape((N, Cin) + in_sizes)


def conv_transpose_backward_weight(
    x, grad_y, w_shape, stride=1, padding=0, output_padding=0, dilation=1, groups=1
):
    """grad_w[g*Cg+c, k, j] = sum_{n, i} x[n, g*Cg+c, i] * grad_y[n, g*Kg+k, i*s + j*d - lo]."""
    x, gy = _f64(x), _f64(grad_y)
    w_shape = tuple(int(v) for v in w_shape)
    N, Cin = x.shape[:2]
    G = groups
    Cg, Kg = Cin // G, w_shape[1]
    k_sizes, in_sizes = w_shape[2:], x.shape[2:]
    s, d, op, pads, outs = _transpose_geometry(
        in_sizes, k_sizes, stride, padding, output_padding, dilation
    )
    assert gy.shape == (N, G * Kg) + outs, (gy.shape, outs)
    gyp = _pad(gy, pads)
    gyg = gyp.reshape((N, G, Kg) + gyp.shape[2:])
    xg = x.reshape((N, G, Cg) + in_sizes)
    gw = np.zeros((G, Cg, Kg) + k_sizes)
    for offs in _offsets(k_sizes):
        gys = gyg[(Ellipsis,) + _window_slices(offs, d, s, in_sizes)]
        gw[(Ellipsis,) + offs] = np.einsum("ngcp,ngkp->gck", _flat(xg), _flat(gys))
    return gw.reshape(w_shape)


# ---- pooling


def _flat_positions(offs, k, s, d, pads, outs, in_sizes):
    """Per window (shape outs): flat offset of input position o*s + j*d - lo, and whether inside."""
    coords = np.meshgrid(
        *(np.arange(o) * ss + j * dd - lo for o, ss, j, dd, (lo, _) in zip(outs, s, offs, d, pads)),
        indexing="ij",
    )
    inside = np.ones(outs, dtype=bool)
    flat = np.zeros(outs, dtype=np.int64)
    for c, n in zip(coords, in_sizes):
        inside &= (c >= 0) & (c < n)
        flat = flat * n + c
    return flat, inside


def _pool_pad(x, pads, k, s, d, outs, value):
    """Pad with `value`, extending the high side so that ceil_mode windows fit."""
    in_sizes = x.shape[2:]
    need = tuple((o - 1) * ss + dd * (kk - 1) + 1 for o, ss, dd, kk in zip(outs, s, d, k))
    extra = tuple(max(nd - (n + lo + hi), 0) for nd, n, (lo, hi) in zip(need, in_sizes, pads))
    return _pad(x, pads, value, extra)


def max_pool(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """-> (y, indices). Padding is -inf, NaN beats everything, ties keep the first in scan order."""
    x = _f64(x)
    k, s, d, pads, outs = pool_geometry(
        x.shape[2:], kernel_size, stride, padding, dilation, ceil_mode
    )
    assert all(o >= 1 for o in outs)
    xp = _pool_pad(x, pads, k, s, d, outs, -np.inf)
    best = np.full(x.shape[:2] + outs, -np.inf)
    idx = np.full(x.shape[:2] + outs, -1, dtype=np.int64)
    for offs in _offsets(k):
        cand = xp[(Ellipsis,) + _window_slices(offs, d, s, outs)]
        flat, inside = _flat_positions(offs, k, s, d, pads, outs, x.shape[2:])
        # The first tap inside the input is the window's element even at -inf (a window has
        # index -1 only when no tap reads the input).
        better = inside & ((idx < 0) | (cand > best) | (np.isnan(cand) & ~np.isnan(best)))
        best = np.where(better, cand, best)
        idx = np.where(better, flat, idx)
    return best, idx


def _avg_divisor(in_sizes, k, s, pads, outs, count_include_pad):
    per_dim_counts = []
    for n, kk, ss, (lo, hi), o in zip(in_sizes, k, s, pads, outs):
        start = np.arange(o) * ss - lo
        end = np.minimum(start + kk, n + hi)  # window positions inside [-lo, n + hi)
        if count_include_pad:
            per_dim_counts.append(end - start)
        else:
            per_dim_counts.append(np.minimum(end, n) - np.maximum(start, 0))
    div = np.ones(outs)
    for axis, c in enumerate(per_dim_counts):
        shape = [1] * len(outs)
        shape[axis] = len(c)
        div = div * c.reshape(shape)
    return div


def avg_pool(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    x = _f64(x)
    k, s, d, pads, outs = pool_geometry(x.shape[2:], kernel_size, stride, padding, 1, ceil_mode)
    xp = _pool_pad(x, pads, k, s, d, outs, 0.0)
    total = np.zeros(x.shape[:2] + outs)
    for offs in _offsets(k):
        total += xp[(Ellipsis,) + _window_slices(offs, d, s, outs)]
    return total / _avg_divisor(x.shape[2:], k, s, pads, outs, count_include_pad)


def lp_pool(x, p, kernel_size, stride=None, ceil_mode=False):
    """y = (sum over window ∩ input of x**p) ** (1/p)."""
    x = _f64(x)
    k, s, d, pads, outs = pool_geometry(x.shape[2:], kernel_size, stride, 0, 1, ceil_mode)
    xp = _pool_pad(x**p, pads, k, s, d, outs, 0.0)
    total = np.zeros(x.shape[:2] + outs)
    for offs in _offsets(k):
        total += xp[(Ellipsis,) + _window_slices(offs, d, s, outs)]
    return total ** (1.0 / p)


def global_avg_pool(x):
    x = _f64(x)
    return x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)


def global_max_pool(x):
    x = _f64(x)
    return x.max(axis=tuple(range(2, x.ndim)), keepdims=True)


def max_unpool(x, indices, kernel_size, stride=None, padding=0, output_size=None):
    x = _f64(x)
    indices = np.asarray(indices, dtype=np.int64)
    rank = x.ndim - 2
    k = per_dim(kernel_size, rank)
    s = k if stride is None else per_dim(stride, rank)
    pads = explicit_pairs(padding, rank)
    if output_size is None:
        outs = tuple(
            (n - 1) * ss - lo - hi + kk for n, ss, (lo, hi), kk in zip(x.shape[2:], s, pads, k)
        )
    else:
        outs = tuple(int(v) for v in output_size)[-rank:]
    N, C = x.shape[:2]
    y = np.zeros((N * C, math.prod(outs)))
    per = math.prod(x.shape[2:])  # explicit: reshape(0, -1) cannot infer it for N * C == 0
    idx = indices.reshape(N * C, per)
    rows = np.broadcast_to(np.arange(N * C)[:, None], idx.shape)
    keep = idx != -1  # a window of padding only: nothing to unpool
    y[rows[keep], idx[keep]] = x.reshape(N * C, per)[keep]
    return y.reshape((N, C) + outs)


# ---- pooling gradients


def max_pool_backward(grad_y, x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False):
    """Each grad goes to its window's argmax (as chosen by max_pool); overlaps accumulate. A
    window of padding only (index -1) depends on no input: its grad goes nowhere."""
    x, gy = _f64(x), _f64(grad_y)
    _, idx = max_pool(x, kernel_size, stride, padding, dilation, ceil_mode)
    N, C = x.shape[:2]
    gx = np.zeros((N * C, math.prod(x.shape[2:])))
    per = math.prod(idx.shape[2:])  # explicit: reshape(0, -1) cannot infer it for N * C == 0
    rows = np.broadcast_to(np.arange(N * C)[:, None], (N * C, per))
    idx = idx.reshape(N * C, per)
    keep = idx >= 0
    np.add.at(gx, (rows[keep], idx[keep]), gy.reshape(N * C, per)[keep])
    return gx.reshape(x.shape)


def avg_pool_backward(
    grad_y, x_shape, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True
):
    gy = _f64(grad_y)
    x_shape = tuple(int(v) for v in x_shape)
    in_sizes = x_shape[2:]
    k, s, d, pads, outs = pool_geometry(in_sizes, kernel_size, stride, padding, 1, ceil_mode)
    assert gy.shape == x_shape[:2] + outs
    g = gy / _avg_divisor(in_sizes, k, s, pads, outs, count_include_pad)
    gxp = _pool_pad(np.zeros(x_shape), pads, k, s, d, outs, 0.0)
    for offs in _offsets(k):
        gxp[(Ellipsis,) + _window_slices(offs, d, s, outs)] += g
    return np.ascontiguousarray(_crop(gxp, pads, in_sizes))


def lp_pool_backward(grad_y, x, p, kernel_size, stride=None, ceil_mode=False):
    """grad_x_i += g * x_i**(p-1) * y**(1-p) per window containing i; windows with y == 0 add 0."""
    x, gy = _f64(x), _f64(grad_y)
    y = lp_pool(x, p, kernel_size, stride, ceil_mode)
    k, s, d, pads, outs = pool_geometry(x.shape[2:], kernel_size, stride, 0, 1, ceil_mode)
    with np.errstate(divide="ignore", invalid="ignore"):
        coef = np.where(y == 0, 0.0, gy * y ** (1.0 - p))
    acc = _pool_pad(np.zeros(x.shape), pads, k, s, d, outs, 0.0)
    for offs in _offsets(k):
        acc[(Ellipsis,) + _window_slices(offs, d, s, outs)] += coef
    return _crop(acc, pads, x.shape[2:]) * x ** (p - 1)
