"""auto's rules for 3-D layers (csrc/algo/winograd_depth.h, winograd_axis.h, the tiled FFT
below AVX-512) and the F(2x2) tile count the Winograd rules compare (_cpu_rule.cpu_rule)."""

from __future__ import annotations

import math

from ._cpu_shape import _active_isa, _avx512_on_256bit_units, _l2_bytes, _Shape

# L2 from which batches of small maps fold for Winograd along an axis at AVX2 (measured on the
# 2 MiB-L2 Xeon, not on the 1 MiB Zen 4: _axis_folds_measured).
_AXIS_1X3_AVX2_L2_BYTES = 2 << 20
# Slices across the axis shorter than this fold a batch's images side by side (kFoldBelow in
# csrc/algo/winograd_axis.cc), which lets fewer GEMM columns pay (_axis_winograd).
_AXIS_FOLD_BELOW = 64


def _depth_winograd(p: "_Shape", unit_stride: bool) -> bool:
    """Whether a 3-D pass has 3x3 taps in each plane at stride and dilation 1: Winograd runs it as
    a 2-D convolution over its depth taps (csrc/algo/winograd_depth.h; F(2x2,3x3) per plane, KD
    x 16 products per 4 outputs against KD x 36). 2 threads, median ms of three interleaved
    runs, PyTorch's time / fastconv's, forward / backward data / weight, winograd vs the
    previous auto, AVX-512 on Zen 4: c3d 64 ch 3x3x3 8x28x28 7.3/6.2/4.8x vs 4.8/4.9/3.9x (direct,
    direct, implicit_gemm); I3D 96->208 16x14x14 1.15/1.01/1.55x vs 0.93/0.95/0.97x; 32 ch
    32x32x32 1.37/1.34/1.13x; R(2+1)D 256->576 1x3x3 4x14x14 1.78/1.11/1.37x vs 1.25/1.23/0.93x;
    X3D-like 48 ch 1x3x3 16x28x28 1.46/1.46/1.08x vs 0.74/0.78/0.45x. AVX2 (PyTorch capped
    alike), against the FFT _fft_3d_at_avx2 gave 3x3x3 layers on up to 64 channels: c3d
    5.3/5.1/4.8x vs 3.6/3.0/3.8x, 32 ch 32x32x32 1.01/1.06/1.90x vs 0.69/0.65/1.44x, 64 ch
    16x56x56 1.16/1.18/2.05x vs 0.67/0.65/1.62x. Small volumes keep direct's per-tap path
    (_winograd_tiles below 64; 512 ch 3x3x3 2x7x7, 32 tiles, forward / data 1.40/0.60x vs
    1.81/1.65x), and so do passes summing over 1024+ channels x depth taps (C x KD forward and
    for the weight gradient, K x KD for backward data), whose transformed kernels pass 50 MiB:
    512 ch 3x3x3 8x14x14, ms, winograd vs direct (implicit_gemm for the weight gradient)
    90.7/107.7/98.6 vs 87.7/90.6/94.6 with 76/103/33 MiB of workspace; 256 ch on 8x28x28 57.0/
    60.4/45.2 vs 94.3/94.5/105.4."""
    summed = (p.k_per_group if p.conv_pass == "backward_data" else p.c_per_group) * p.kernel[0]
    return (
        len(p.kernel) == 3
        and unit_stride
        and tuple(p.kernel[1:]) == (3, 3)
        and all(d == 1 for d in p.dilation)
        and summed < 1024
    )


def _line_winograd(p: "_Shape") -> bool:
    """Whether a float32 1x7 / 7x1 layer (Inception's mixed 6 blocks) runs Winograd along its
    axis channels-last (csrc/algo/winograd_line.h: F(3,4) on taps 0-3 plus F(3,3) on taps 4-6,
    11 products per 3 outputs against 21, each point a GEMM over the tiles' channel vectors):
    stride and dilation 1, one group, no padding across the axis, padding under 7 along it, 96+
    tiles of 3 outputs along the axis over the batch (the C++ weight gradient's own floor,
    kLineWeightMinTiles; 128 tiles of 2 with the earlier F(2,7) tiles), 64+ channels each side
    for the forward and backward data, 128+ for the weight gradient (whose GEMMs sum over the
    tiles). The figures below were measured with the path's earlier F(2,7) tiles (9 products per
    2 outputs), which set these bounds; F(3,7) ran every pass of Inception's mixed6b layers
    1.11-1.29x faster again (the README's round of 2026-12-07 16:06 UTC).
    `fastconv bench` (2 threads, 3 rounds; ratio to PyTorch, winograd vs the per-tap path or
    implicit GEMM it replaces), single images of 17x17, AVX-512 on Zen 4: 128->128 1x7 1.26 /
    1.27 / 1.26x vs 1.13 / 1.13 / 1.12x (forward / backward data / weight), 128->192 7x1 1.23 /
    1.28 / 1.16x vs 1.09 / 1.10 / 1.02x, 160 ch 1x7 1.24 / 1.24 / 1.29x vs 0.96 / 0.96 / 1.04x,
    192 ch 1x7 1.21 / 1.23 / 1.30x vs 1.07 / 1.08 / 1.04x, 768->192 1.11 / 1.06 / 1.17x vs
    1.01 / 1.03 / 1.01x; AVX2 (PyTorch capped alike) 160 ch 1x7 1.33 / 1.50 / 1.27x vs 1.04 /
    1.26 / 1.14x, 192 ch 1x7 1.36 / 1.37 / 1.23x vs 1.01 / 1.11 / 1.03x in one run and 1.06 /
    1.21 / 0.90x vs 1.07 / 1.33 / 1.13x in a slower one. Batches, 2 threads, median ms,
    winograd vs the previous auto (PyTorch), AVX-512: 128 ch x8 forward 2.08-2.40 vs 2.42-2.92
    (2.39-3.8), weight gradient 2.25-2.59 vs 2.74-3.00 (2.49-2.94); 768->192 x8 forward /
    backward data / weight 18.0 / 20.6 / 17.2 vs 21.6 / 24.4 / 23.4 (20.4 / 21.6 / 22.5); AVX2
    768->192 x8 19.5 / 20.4 / 18.4 vs 21.8 / 23.3 / 24.7, 128 ch x2 weight 0.66 vs 0.76. 64
    channels' weight gradient loses (x4 0.40-0.59 vs 0.39-0.43). Float32 error 3-7x implicit
    GEMM's over 128-768 channels (F(2,7)'s split: 3-8x; a single F(2,7)'s 8 points, +-2 and
    +-1/2 among them: 6-16x)."""
    if len(p.kernel) != 2 or p.kernel not in ((7, 1), (1, 7)) or p.groups != 1:
        return False
    if p.itemsize != 4 or min(p.c_per_group, p.k_per_group) < 64:
        return False
    if any(s != 1 for s in p.stride) or any(d != 1 for d in p.dilation):
        return False
    axis = 0 if p.kernel == (7, 1) else 1
    if p.pad_lo[1 - axis] or p.pad_hi[1 - axis]:
        return False
    if not (0 <= p.pad_lo[axis] < 7 and 0 <= p.pad_hi[axis] < 7):
        return False
    if p.conv_pass == "backward_weight" and min(p.c_per_group, p.k_per_group) < 128:
        return False
    out = p.in_extents if p.conv_pass == "backward_data" else p.out_extents
    return p.n * -(-out[axis] // 3) * out[1 - axis] >= 96


def _axis_winograd(p: "_Shape") -> bool:
    """Whether a 3x1x1 layer (R(2+1)D's temporal convolutions) runs Winograd F(4,3) along depth
    (csrc/algo/winograd_axis.h: 6 products per 4 output planes against 12, the H x W planes
    as the GEMMs' columns): stride and dilation 1, one group, no padding along H and W, 40+
    channels each side, and 4+ output planes along depth. Two output planes (R(2+1)D's layer4:
    F(2,3), 4 products against the direct sum's 4 real ones, its padding skipped) gain nothing:
    1152->512 2x7x7 0.69-0.75x the per-tap path. 2 threads, median of three interleaved runs,
    ms, winograd vs the previous auto (PyTorch), forward / backward data / weight, AVX-512 on
    Zen 4: 576->256 4x14x14 2.24/2.25/2.83 vs 3.06/3.33/3.67 (2.91/2.96/3.66), 288->128 8x28x28
    5.10/4.71/6.29 vs 7.26/7.12/9.79 (6.86/6.88/6.82), 576->256 at batch 8 forward 37.2 vs 57.7
    (73.7), weight 19.4 vs 27.5 (24.1), 144->64 16x56x56 15.6/14.0/19.0 vs 22.6/17.4/21.4, 64
    ch 16x28x28 1.29/1.26/1.46 vs 1.77/1.69/2.23, 256 ch 4x7x7 x4 0.98/1.03 vs 1.36/1.38, the
    45->64 stem 16x56x56 5.3-6.2/5.3-5.8/5.5 vs 5.6-6.1/6.4-6.6/7.4; AVX2 (PyTorch capped alike)
    576->256 2.20/2.21 vs 3.60/3.64, 288->128 4.79/4.47 vs 7.57/6.73, 128 ch 8x14x14 0.71/0.71 vs
    1.12/1.16. 16 channels lose (16x56x56: 0.83 vs 0.56 forward, the transforms' share), 32->64
    8x28x28 split (forward 0.38 vs 0.79, backward data 0.72 vs 0.61). The weight gradient sums
    each point over the columns, so it also needs 8M multiply-adds per point (C x K x columns):
    64 ch on 2 x 8x14x14 (3.2M) 0.76 vs 0.61, 128 ch on 8x14x14 (6.4M) 0.93 vs 1.00. Float32
    error 1.5-4.5x implicit GEMM's over 45-1152 channels (the weight gradient 0.6-3.7x).

    2-D 3x1 / 1x3 layers (along H, or along W on transposed planes) from 128 channels each side
    and 1024 GEMM columns per point (images x tiles x the positions across the axis): ERFNet-like
    128 ch 64x128, forward / backward data / weight, 3x1 2.67/2.87/2.86 vs 3.92/4.02/4.30 (PyTorch
    4.08/4.13/4.37), 1x3 3.50/3.54/3.79 vs 3.95/4.24/4.35. Fewer columns gain little or lose
    (Inception's 384 ch 8x8 at batch 8, 128 columns: 0.99-1.22x; at batch 1 0.62-0.82x), as do
    fewer channels (64 ch 1x3 on 128x256: 0.85-1.00x). At AVX2 (PyTorch capped alike) against
    implicit_gemm: 3x1 4.16/4.23/4.41 vs 4.61/4.70/4.79, but 1x3 5.21/5.15/5.12 vs 4.69/5.06/4.62
    (its planes' transposes and the 8-lane transforms), so for a while at AVX2 only 3x1 there. On
    the 2 MiB-L2 Intel Xeon (2026-12-06) 1x3 at AVX2 won every pass, `fastconv bench` medians,
    ms, against implicit GEMM (PyTorch capped): ERFNet's 128 ch 64x128 forward 6.9-7.2 vs
    11.9-13.5 (8.1-8.5), backward data 7.0 vs 10.6-12.6 (8.3-8.5), weight 7.8 vs 8.9 (11.0); and
    on the same 1 MiB Zen 4 since the kernel transforms moved onto the combine kernels, three
    runs on 2026-12-07 (20:25 UTC, ec1c2e2): forward 3.90/4.41/4.12 vs 4.94/6.53/5.38 (PyTorch
    4.61/5.52/4.76), backward data 3.91/4.15/3.74 vs 4.97/6.51/4.88, weight 4.78/4.38/4.29 vs
    4.74/5.25/4.46: so 1x3 runs it at AVX2 on any L2.

    Batches whose slices across the axis are under 64 elements (8x8 maps) fold their images side by
    side into one wide slice, so the transforms' vector sums are no longer 8-element calls: from 64
    columns there (2026-12-07, Intel Xeon, `fastconv bench`, 2 threads, ratio to PyTorch, winograd
    vs implicit GEMM, forward / backward data / weight): Inception's 384 ch 8x8 at batch 8, 128
    columns, 1x3 1.26/1.13/1.33x vs 0.93/0.87/0.84x, 3x1 1.36/1.60/1.52x vs 0.96/1.04/0.82x (the
    unfolded path had run 0.79/0.73/0.88x); at batch 4, 64 columns, 1x3 1.09/0.94/1.08x vs
    0.99/0.87/ 0.97x, 3x1 1.28/1.04/1.17x vs 1.01/0.90/0.99x; 128 ch at batch 8 1.07-1.33x vs
    0.72-1.17x; AVX2 (PyTorch capped alike) 1.37-2.18x vs 0.95-1.38x from batch 4. At batch 2 (32
    columns) it loses at AVX-512: 0.79-1.05x vs 0.89-1.23x. With the kernel transforms on the
    combine kernels too (runs_to_points, points_to_runs), a later run: mixed7c's 1x3 at batch 8
    1.44/ 1.31/1.55x, 3x1 1.26/1.38/1.50x, at batch 4 1.22-1.46x. 3-D 3x1x1 layers with planes under
    64 (R(2+1)D's 7x7 in batches) fold too, under the 3-D rule unchanged: `algo=winograd`, the
    session's first build vs the fold, `benchmarks/ab_processes.py`, 2 threads, AVX-512, 1.10-1.14x
    faster on 256 ch 4x7x7 x4 and 512 ch 8x7x7 x2, 1.29-1.30x on 128 ch 8x6x6 x8, every pass."""
    if len(p.kernel) == 2:
        if p.kernel not in ((3, 1), (1, 3)) or p.groups != 1:
            return False
        if min(p.c_per_group, p.k_per_group) < 128:
            return False
        if any(s != 1 for s in p.stride) or any(d != 1 for d in p.dilation):
            return False
        axis = 0 if p.kernel == (3, 1) else 1
        isa = _active_isa()
        if axis == 1 and isa not in ("avx512", "avx2"):
            return False
        if p.pad_lo[1 - axis] or p.pad_hi[1 - axis]:
            return False
        out = p.in_extents if p.conv_pass == "backward_data" else p.out_extents
        across = out[1 - axis]
        # (C++ folds where one tile of the folded slices' points, F(4,3)'s 6, fits 16 MiB.)
        folded_bytes = 6 * (p.c_per_group + p.k_per_group) * p.n * across * p.itemsize
        folded = (
            p.n > 1
            and across < _AXIS_FOLD_BELOW
            and folded_bytes <= 16 << 20
            and _axis_folds_measured(isa)
        )
        return p.n * -(-out[axis] // 4) * across >= (64 if folded else 1024)
    if len(p.kernel) != 3 or p.kernel != (3, 1, 1) or p.groups != 1:
        return False
    if min(p.c_per_group, p.k_per_group) < 40:
        return False
    if any(s != 1 for s in p.stride) or any(d != 1 for d in p.dilation):
        return False
    if any(p.pad_lo[1:]) or any(p.pad_hi[1:]):
        return False
    depth = p.in_extents[0] if p.conv_pass == "backward_data" else p.out_extents[0]
    if depth < 4:
        return False
    if p.conv_pass != "backward_weight":
        return True
    columns = p.n * -(-depth // 4) * math.prod(p.out_extents[1:])
    return p.c_per_group * p.k_per_group * columns >= 8_000_000


def _axis_folds_measured(isa: str) -> bool:
    """Where folded 2-D axis layers were measured to win from 64 columns (_axis_winograd): AVX-512
    on 512-bit units and AVX2 with a 2 MiB L2 (the Intel Xeon). Elsewhere (AMD's Zen 4: 256-bit
    units, a 1 MiB L2) they keep the 1024-column rule until measured there."""
    if isa == "avx512":
        return not _avx512_on_256bit_units()
    return isa == "avx2" and _l2_bytes() >= _AXIS_1X3_AVX2_L2_BYTES


def _winograd_tiles(p: "_Shape") -> int:
    """F(2x2) output tiles over the batch: per output plane of a 3-D pass (its depth rows
    counted whole), per image of a 1-D or 2-D one."""
    tiles = p.n
    dims = list(zip(p.in_extents, p.pad_lo, p.pad_hi, p.kernel))
    if len(dims) == 3:
        e, lo, hi, k = dims.pop(0)
        tiles *= max(0, e + lo + hi - k + 1)
    for e, lo, hi, _ in dims:
        tiles *= (e + lo + hi - 2 + 1) // 2
    return tiles


def _fft_3d_at_avx2(p: "_Shape", unit_stride: bool) -> bool:
    """Whether a dense 3-D pass of 27+ taps at stride 1 runs the FFT below
    AVX-512 (AVX-512's direct row kernels keep them): up to 64 channels each side, 1024+ output
    positions, dilation 1, more than 4 input channels (first layers keep their row kernels;
    neither was measured); the weight gradient too (c3d 5.39 vs implicit_gemm 7.15; at AVX-512
    implicit GEMM wins it, 4.27 vs 4.52, I3D 8.84 vs 12.8). 2 threads, median ms, forward /
    backward data, fft vs direct (the
    per-tap path or the previous auto), AVX2: c3d 64 ch 8x28x28 5.12/5.12 vs 6.74/6.75, x4 on
    8x14x14 5.07/5.06 vs 7.09/7.09, 16x56x56 37.8/37.8 vs 78.4/62.1 (auto) and 55.2/59.9
    (direct). More channels lose (128 ch 8x28x28 39.0/39.4 vs 24.4/24.4; I3D's 96->208 16.4/15.5
    vs 17.7/15.8 about even), as do small volumes (256 ch 4x7x7 22.4 vs 3.2)."""
    if _active_isa() == "avx512" or not unit_stride or len(p.kernel) != 3 or p.groups != 1:
        return False
    if _depth_winograd(p, unit_stride):  # Winograd over the depth taps beats it
        return False
    if p.taps < 27:
        return False
    if max(p.c_per_group, p.k_per_group) > 64 or p.c_per_group <= 4:
        return False
    if any(d != 1 for d in p.dilation):
        return False
    return p.n * math.prod(p.out_extents) >= 1024
