"""Which dense passes `auto` gives the direct algorithm's per-tap GEMM path
(csrc/algo/direct_taps.h: small images, many channels; one GEMM micro-kernel call per kernel tap
over only the positions it reaches), and the exceptions on that domain that go back to one
packed implicit GEMM, and the few-tap kernels that go to im2col's column copies; and batches of
small maps, which run per tap over (column, image) rows (csrc/algo/batch_taps.h). Asked
by _cpu_rule.cpu_rule; each predicate carries its measurements."""

from __future__ import annotations

import math
from typing import Any

from ._cpu_shape import _active_isa, _avx512_on_256bit_units, _Shape, _small_l2
from ._cpu_stems import _few_channel_weight_rows


def _taps_served(p: "_Shape", unit_stride: bool) -> bool:
    """Whether the direct algorithm runs this pass on its per-tap GEMM path: the conditions of
    taps_serve in csrc/algo/direct_taps.cc, mirrored so that `auto` never names one direct path
    while the other runs (dense, 16+ channels each side, output rows of at most 40 positions, 36
    for kernels of 25+ taps; backward data at unit stride)."""
    if p.groups != 1 or p.c_per_group < 16 or p.k_per_group < 16:
        return False
    limit = 36 if p.taps >= 25 else 40
    if p.conv_pass == "forward":
        return p.out_extents[-1] <= limit
    return p.conv_pass == "backward_data" and unit_stride and p.in_extents[-1] <= limit


def _small_image_taps(p: "_Shape", unit_stride: bool) -> bool:
    """Whether `auto` runs a dense pass on the direct algorithm's per-tap GEMM path
    (csrc/algo/direct_taps.h): wherever it is served (_taps_served; rows up to 40 wide for
    short kernels, 36 where the FFT competes: Inception's 5x5 48->64 on 35x35 1.03/0.94 vs fft
    1.19/1.11, but 5x5 64->64 on 40x40 1.72/2.08 vs 1.53/1.82; 256 ch 3x3 d2 on 33x33
    5.93/5.98 vs implicit_gemm 6.77/7.23), except 1x1 kernels (no padding to skip; the GEMM
    reads them in place). One image is transposed to channels-last and each
    output-row segment sums one GEMM micro-kernel call per tap over the input channels, each tap
    over only the positions it reaches: none of the multiply-adds implicit GEMM spends on the
    padding (18% of a 3x3 on 7x7, 10% on 14x14). 2 threads, median ms, forward / backward data,
    direct vs the previous auto (torch), AVX-512: res5.3x3 1.41/1.77 vs 1.95/2.09 (2.11/2.11),
    res4.3x3 1.12/1.14 vs 1.43/1.51 (1.18/1.24), 512 ch 14x14 4.77/4.92 vs 6.35/7.33 (winograd;
    5.38/5.32), deeplab 3x3 d4 28x28 4.96/4.97 vs 5.63/6.25 (4.59/4.61), 512 ch 14x14 d2
    4.43/7.92 vs 5.66/9.53, Inception 5x5 17x17 0.40/0.43 vs 1.17/0.76 (fft), 1x7 17x17 0.92/1.30
    vs 1.03/1.65, 256 ch 28x28 s2 1.27 vs 1.60; batches: res5.3x3 x8 9.25/9.82 vs 13.0/12.8
    (winograd), 512 ch 14x14 d2 x8 32.6/32.8 vs 40.6/41.2. AVX2 alike (res5.3x3 1.80/2.03 vs
    2.12/2.25, res4.3x3 1.52/1.91 vs 1.82/2.45, deeplab 4.89/5.50 vs 6.46/6.88). Winograd keeps
    3x3 stride-1 work of more than 128 F(2x2) tiles (res3.3x3 28x28: 1.04 vs 1.10; 512 ch 28x28
    12.8 vs 17.2; res4.3x3 x8 7.87 vs 8.81); at 100 tiles they tie (SSD 19x19 8.90 vs 8.62).
    3-D (forward / backward data vs implicit_gemm; AVX-512, then AVX2): c3d 64 ch 3x3x3 8x28x28
    11.8/6.75 vs 14.1/9.49, 7.63/7.37 vs 9.07/9.19; I3D 96->208 3x3x3 16x14x14 15.8/14.6 vs
    17.6/21.6, 18.5/17.8 vs 18.8/21.8; R(2+1)D 576->256 3x1x1 4x14x14 3.23/3.42 vs 3.76/3.79,
    4.20/4.47 vs 5.37/4.51 (batch 8 24.7/25.2 vs 32.6/29.1). Against the direct row kernels
    that ran 3-D forwards of 27+ taps at AVX-512 (interleaved A/B, median ms): c3d 7.87 vs 7.94,
    128 ch 27.2 vs 33.3, I3D 17.0 vs 19.8."""
    if p.conv_pass == "forward" and _tiling_kernel(p):
        return False
    return p.taps > 1 and _taps_served(p, unit_stride)


def _tiling_kernel(p: "_Shape") -> bool:
    """Whether the kernel tiles the input: kernel = stride in every dim, no padding, no dilation
    (U-Net's 2x2 / 2, a patch embedding). No padding for the per-tap path to skip: implicit GEMM
    wins its forward on small images (2 threads, median ms, implicit_gemm vs direct's per-tap
    path, AVX-512 / AVX2: 256->512 2x2 / 2 32x32 0.84 vs 1.08 / 1.36 vs 1.65; U-Net's up1,
    512->1024 on 32x32, 3.12 vs 3.36)."""
    return (
        all(k == s for k, s in zip(p.kernel, p.stride))
        and not any(p.pad_lo)
        and not any(p.pad_hi)
        and all(d == 1 for d in p.dilation)
    )


def _short_segments(p: "_Shape") -> bool:
    """Whether a pass `auto` would give the per-tap path (_small_image_taps; asked only there,
    so Winograd keeps its large batches) has rows of at most 4 positions, at AVX-512 float32:
    each tap's GEMM call then runs a 4-row tile (8 accumulators, 6 loads per 8
    multiply-adds), where implicit GEMM's packed 12 x 32 tiles span rows and images. 2 threads,
    median ms, direct vs implicit_gemm, AVX-512: dcgan.g2's backward data (16 x 256->512 4x4 s2
    to 4x4) 5.34 vs 3.85; 512->512 4x4 s2 on 8x8 1.13 vs 0.99; 16 x 512 3x3 s2 to 3x3 4.09 vs
    2.85; 3x3 on 4x4, 512 ch, forward / backward data 0.59/0.79 vs 0.64/0.46, batch 8
    2.80/3.03 vs 2.10/2.96; 1024 ch on 3x3 1.89/2.84 vs 1.78/1.46. Rows of 5 stay on the taps
    path (8 x 256 ch 3x3 on 5x5 0.73/0.78 vs 1.18/1.26; 3x3 s2 to 5x5 0.31 vs 0.34). At AVX2
    (8-row tiles of 16) implicit GEMM loses most of these (5.27 vs 5.68, 2.71 vs 3.56, 0.56/0.68
    vs 0.45/0.67), so the rule is AVX-512's."""
    if _active_isa() != "avx512" or p.itemsize != 4:
        return False
    rows = p.out_extents[-1] if p.conv_pass == "forward" else p.in_extents[-1]
    return rows <= 4


def _strided_packed(
    p: "_Shape", unit_stride: bool, small_l2: bool | None = None, half_units: bool | None = None
) -> bool:
    """Whether a strided float32 forward `auto` would give the per-tap path (_small_image_taps;
    asked only there) runs implicit GEMM instead, whose packed panels read unit-step phase rows:
    at AVX2 for batches with rows longer than 4 and single images with rows of 20+, at AVX-512
    for batches with rows longer than 7 and single images with rows of 17+. 3x3 / 2, 2 threads,
    median ms, implicit_gemm vs direct, AVX2: 128 ch 56x56 (28 wide) 1.29 vs 1.51, x8 10.3 vs
    12.6; 256->512 40x40 (20) 4.74-4.78 vs 4.98-5.01, x8 34.6-35.3 vs 39.7-40.3; 128->256 80x80
    x8 36.9 vs 45.9; 256 ch 28x28 (14) 1.39 vs 1.36, x2 2.43 vs 2.67, x8 9.15 vs 10.9;
    Inception's 288->384 35x35 (17) 3.34 vs 3.15; 512 ch 14x14 (7) 1.54 vs 1.55, x8 9.49 vs
    10.6; U-Net's 2x2 / 2 x8 38.9 vs 44.9; rows of at most 4 stay (_short_segments: dcgan.g2's
    backward data 5.68 vs 5.27). AVX-512: 256 ch 28x28 0.90 vs 0.83 but x2 1.52 vs 1.61, x8 5.85
    vs 6.19; 256->512 40x40 3.00-3.02 vs 3.02-3.09, x8 20.9-21.0 vs 24.0-24.6; Inception's
    288->384 35x35 (17) 1.80 vs 2.01; U-Net's 2x2 / 2 x8 22.8 vs 27.1; rows of 7 stay on the
    taps path (512 ch 14x14 1.16 vs 0.96, x8 6.16 vs 5.58).
    The AVX2 figures above are the Xeon's (2 MiB L2) capped to AVX2. On AVX2 CPUs with an L2
    under 1 MiB (_small_l2) the per-tap path wins below 512 output channels: a 2-vCPU AMD EPYC
    (Zen-1-class, 512 KiB L2, ~3 MiB of L3 in reach), 2 threads, in one process, calls
    interleaved with PyTorch's, PyTorch time / this time (median of the per-call ratios),
    implicit_gemm vs direct: res3.3x3s2 (128 ch 56x56) 0.72 vs 0.98, x8 0.77 vs 0.88; 256 ch
    28x28 x8 0.85 vs 0.93; `fastconv tune`: res3.3x3s2 7.47 vs 5.71 ms; YOLOv5s's 256->512 40x40
    (rows of 20) still implicit GEMM's: 24.2 vs 25.1, x8 184 vs 195.
    The AVX-512 figures are the Xeon's (two 512-bit FMA units per core). Where 512-bit
    instructions run on 256-bit units (_avx512_on_256bit_units: AMD's Zen 4), single images with
    rows under 32 keep the per-tap path; `fastconv bench --algo direct --algo implicit_gemm`, 2
    threads, a 2-vCPU AMD EPYC Zen 4 (1 MiB L2), median ms of two runs, direct vs implicit_gemm
    (torch):
    res3.3x3s2 1.152-1.165 vs 1.230-1.236 (1.144-1.175), Inception's 288->384 35x35 (rows of
    17) 2.773/2.794 vs 3.075/3.091 (2.759/2.749), YOLOv5s's 256->512 40x40 (rows of 20)
    4.430/4.489 vs 4.603/4.618 (4.337/4.332); batches stay implicit GEMM's (that layer x8
    36.2/36.0 vs 36.0/35.6, in one process with PyTorch's calls x8 39.9 vs 37.9; U-Net's 2x2 / 2
    x8 48.7 vs 44.6), and so do rows of 32+ (128->256 on 80x80, rows of 40: 5.52 vs 5.35)."""
    if unit_stride or p.conv_pass != "forward" or p.itemsize != 4:
        return False
    rows = p.out_extents[-1]
    if _active_isa() != "avx512":
        if (_small_l2() if small_l2 is None else small_l2) and p.k_per_group < 512:
            return False
        return rows > 4 and (p.n >= 2 or rows >= 20)
    if p.n >= 2:
        return rows > 7
    return rows >= (32 if _half_units(half_units) else 17)


def _half_units(half_units: bool | None) -> bool:
    """Whether AVX-512 runs on 256-bit units: the detection, or the caller's override (tests and
    _single_image_taps ask with both answers)."""
    return _avx512_on_256bit_units() if half_units is None else half_units


def _single_image_taps(p: "_Shape", unit_stride: bool) -> bool:
    """Whether a strided float32 forward of one small image stays on the per-tap path because
    512-bit instructions run on 256-bit units here (_strided_packed's AVX-512 exception), where
    implicit GEMM would otherwise pack its stride phases, read them in place or gather stride-2
    columns (_cpu_rule: problem.implicit_gemm_strided_panels)."""
    if unit_stride or p.conv_pass != "forward" or p.itemsize != 4 or p.n != 1:
        return False
    if _active_isa() != "avx512" or not _small_image_taps(p, unit_stride):
        return False
    if _packed_taps(p) is not None:  # those run one packed GEMM anyway (explain says which)
        return False
    return _strided_packed(p, unit_stride, half_units=False) and not _strided_packed(p, unit_stride)


def _half_unit_taps(p: "_Shape", half_units: bool | None = None) -> bool:
    """Whether a pass on the per-tap domain keeps the per-tap path at AVX-512 on 256-bit units
    (AMD's Zen 4) where one packed GEMM or im2col's column GEMM would run it on 512-bit units:
    output rows of up to 17 (_packed_taps' measurements; the 1xN / Nx1 backward data that
    _cpu_rule gives im2col: 2 threads, median ms, direct vs im2col, Inception's 768->128 1x7 on
    17x17 1.89 vs 2.20, 128 ch 0.33 vs 0.38, x8 2.44 vs 2.91, 7x1 0.46 vs 0.52, 384 ch 3x1 8x8 x8
    2.12 vs 2.43, 1x3 8x8 0.34 vs 0.33)."""
    return _active_isa() == "avx512" and p.out_extents[-1] <= 17 and _half_units(half_units)


def _packed_taps(
    p: "_Shape", small_l2: bool | None = None, half_units: bool | None = None
) -> str | None:
    """Why a pass on the per-tap domain (_small_image_taps; asked only there, after
    _short_segments and _strided_packed) runs one packed implicit GEMM instead, or None. Its
    packed panels' rows are a few masked vector loads each (csrc/ukernels/panel), so implicit
    GEMM wins where the per-tap path's GEMM calls are short:
    - kernels of at most 3 taps (1x3 / 3x1, R(2+1)D's 3x1x1), every pass it serves: three GEMM
      calls per row segment do not pay for the channels-last copy. 2 threads, median ms, forward
      / backward data, implicit_gemm vs direct, AVX-512: 384 ch 8x8 1x3 0.186/0.218 vs
      0.212/0.276, 3x1 0.163/0.220 vs 0.212/0.273, Inception's 1x3 x8 1.37 vs 1.55; 256 ch 10x10
      1x3 0.172/0.170 vs 0.164/0.178, 16x16 0.318/0.422 vs 0.386/0.385; AVX2 0.296/0.329 vs
      0.347/0.454, 0.283/0.329 vs 0.356/0.444, x8 2.12 vs 2.53, 0.252/0.238 vs 0.234/0.252,
      0.505/0.615 vs 0.563/0.582. R(2+1)D's 576->256 3x1x1 on 4x14x14 (after the masked panel
      rows): AVX-512 2.28/2.26 vs 2.25/2.23, x8 19.3/17.3 vs 19.4/18.4; AVX2 3.29/3.25 vs
      3.32/3.51, x8 28.4/25.7 vs 30.6/31.9.
    - factorised 2-D kernels (one tap along one dim: Inception's 1x7 / 7x1), forward (their
      backward data runs im2col): 128 ch 17x17 1x7 / 7x1, AVX-512 0.257/0.361 vs 0.267/0.384, x8
      1.70/2.40 vs 2.13/3.09; AVX2 0.347/0.539 vs 0.366/0.562, x8 2.49/3.82 vs 2.86/4.37.
    - 3-D forwards over at most 96 channels per group on rows of at most 16 (I3D's Mixed_4b,
      96->208 3x3x3 on 16x14x14), where each tap's GEMM call sums only 96 channels: AVX-512
      10.1 vs 10.8, x4 44.1 vs 45.8; AVX2 16.6 vs 20.6, x4 67.2 vs 81.7. Not with more channels
      or longer rows (AVX-512: 128 ch 8x14x14 4.71 vs 4.12, 256 ch 4x14x14 8.82 vs 6.88, 64 ch
      8x28x28 4.83 vs 4.41), nor their backward data (I3D 11.3 vs 9.6).
    The AVX2 figures of the last two are the Xeon's (2 MiB L2) capped to AVX2; on AVX2 CPUs with
    an L2 under 1 MiB (_small_l2) both forwards keep the per-tap path. `fastconv tune`, 2
    threads, on a 2-vCPU AMD EPYC (Zen-1-class, 512 KiB L2), implicit_gemm vs direct: 128 ch
    17x17 1x7 2.46 vs 1.93 ms, 7x1 3.20 vs 2.65, 1x7 x8 15.3 vs 12.9; I3D's Mixed_4b 100 vs
    91.6 (in one process, calls interleaved with PyTorch's: 0.70x vs 0.89x PyTorch).
    The AVX-512 figures are the Xeon's (two 512-bit FMA units per core). Where AVX-512 runs on
    256-bit units (_avx512_on_256bit_units: AMD's Zen 4) the per-tap path wins all three: a
    2-vCPU AMD EPYC Zen 4, `fastconv bench --suite networks --algo direct --algo
    implicit_gemm`, 2 threads, two runs' medians, forward / backward data, direct vs
    implicit_gemm: Inception's 1x7 0.34/0.37 vs 0.42/0.56 (its backward data runs im2col), 7x1
    0.50 vs 0.59, 1x7 x8 2.97 vs 3.18; 1x3 0.31/0.39 vs 0.31/0.38, x8 2.34/2.47 vs 2.50/2.71;
    R(2+1)D's 3x1x1 3.25/3.77 vs 3.89/3.99, x8 24.5/25.8 vs 29.3/29.2; I3D's Mixed_4b 15.9 vs
    18.3; 256 ch 10x10 1x3 0.34/0.42 vs 0.45/0.48 (calls interleaved in one process); mixed at
    rows of 16 (256 ch 16x16 1x3 0.66/0.70 vs 0.61/0.79). Not on longer rows: R(2+1)D's
    288->128 3x1x1 on 8x28x28 10.0/8.37 vs 9.27/7.35, 128 ch 40x40 3x1 1.38/1.43 vs 0.93/1.00:
    there only rows of up to 17 outputs keep the per-tap path."""
    if _half_unit_taps(p, half_units):
        return None
    if len(p.kernel) >= 2 and p.taps <= 3:
        return "a 3-tap kernel on a small image: one packed GEMM"
    if p.conv_pass != "forward":
        return None
    if _active_isa() != "avx512" and (_small_l2() if small_l2 is None else small_l2):
        return None
    if len(p.kernel) == 2 and min(p.kernel) == 1:
        return "1xN / Nx1 forward on a small image: one packed GEMM"
    if len(p.kernel) == 3 and p.c_per_group <= 96 and p.in_extents[-1] <= 16:
        return "3-D kernel over few channels on a small image: one packed GEMM"
    return None


def _temporal_columns(p: "_Shape", unit_stride: bool, input_bytes: int) -> bool:
    """Whether a 3-D kernel with taps along time only (R(2+1)D's 3x1x1) runs its forward as
    im2col below AVX-512: on planes of 2048+ positions each column is a whole shifted plane, one
    long copy, while implicit GEMM fills its panels run by run with AVX2 masked loads. 2 threads,
    median ms, im2col vs implicit_gemm, FASTCONV_ISA=avx2, two runs: R(2+1)D-18's stem 3x1x1
    (45 -> 64, 16x56x56) 6.44/6.29 vs 7.30/7.11, layer1 (144 -> 64) 21.9/21.3 vs 23.8/22.7;
    not on 28x28 planes (layer2, 288 -> 128 on 8x28x28: 9.67/8.96 vs 9.55/8.68), nor at
    AVX-512 (stem 5.01/5.09 vs 4.11/4.32, layer1 17.4 vs 12.2), nor backward data (stem 11.9
    vs 8.2)."""
    if len(p.kernel) != 3 or p.conv_pass != "forward" or not unit_stride or p.groups != 1:
        return False
    if p.kernel[1:] != (1, 1) or p.kernel[0] < 2 or _active_isa() == "avx512":
        return False
    plane = p.in_extents[1] * p.in_extents[2]
    return plane >= 2048 and input_bytes > (2 << 20)


def _batch_taps_served(p: "_Shape") -> bool:
    """Whether the direct algorithm runs this pass on its path for batches of small maps
    (csrc/algo/batch_taps.h: batch_taps_serve, mirrored): 2-D, dense, 16+ channels each side, 8+
    images, output maps of at most 64 positions; the forward on output rows of at most 7
    positions; strided backward data, and unit-stride backward data as the forward's correlation
    (_unit_data_served: grad_x's maps under the forward's limits).

    `auto` takes it at every level and unit width: for strided backward data with 2+ taps that do
    not tile the input, where Winograd's stride phases do not take it (_batch_scatter; those keep
    dcgan.g3 and g4's transposed forward, 3.8-4.3 ms against 4.8-5.6 here), first in the per-tap
    domain (_taps_choice), float32 forwards and unit-stride backward data ahead of Winograd
    (_batch_first), the weight gradient as _batch_weight_taps says. The
    output side (y, grad_y) is copied with the images innermost and the input side (x, grad_x) split
    into its stride phases in that layout, so a run of (column, image) rows of one output row has
    one stride on both sides and each tap is a few rows-of-A tile calls over only the positions that
    read inside the input: no products on padding, rows of 48-64 per run where the per-tap path's
    segments have 3-6, and for backward data no column buffer (the column path computes every tap at
    every position and drops those in the padding: on DCGAN's 4x4 / 2 with padding 1 on 4x4 maps, 60
    of 256 per channel pair). 2 threads, Zen 4, median ms, this path vs the previous auto (torch),
    AVX-512: dcgan.g2's transposed forward (512->256 4x4 x16) 4.25-4.66 vs im2col 5.27-5.41
    (5.2-6.1), its backward data (the conv's forward 256->512 8x8 / 2 x16) 4.39 vs 5.73 (5.5-5.7);
    3x3 / 2 forward 512->512 6x6 x16 2.91-3.09 vs 3.78-3.85 (3.0-3.3); 3x3 256->256 5x5 x8 0.91-1.09
    vs 1.09-1.15 (0.92-0.98); backward data, 3x3 / 2: 256->512 14x14 x8 4.36 vs im2col 5.04 (4.74),
    8x8 x16 2.75 vs 3.12 (3.34), 128->256 16x16 x8 1.52 vs 1.60 (1.59); 4x4 / 2 512->512 8x8 x8 4.65
    vs 5.62 (7.86). AVX2: g2 4.58-4.66 vs 5.56-5.62 (6.3-7.4), 256->512 14x14 x8 4.59 vs 5.22
    (5.40), 8x8 x16 2.82 vs 3.24 (3.47), 128->256 16x16 x8 1.57 vs 1.68 (1.76). Forwards on 8x8 maps
    tie with the per-tap path (and 7x7 did on Zen 4, 512 ch x8 7.5-8.8 either way; on the Xeon
    this path wins them: _batch_first) and keep it. On the Xeon's
    512-bit units (once left to the per-tap domain's exceptions, implicit GEMM and im2col,
    unmeasured), 2026-12-06, benchmarks/ab_processes.py, 9 blocks, previous auto vs this path, ms:
    dcgan.g2's transposed forward 6.35 vs 4.76 and backward data 7.12 vs 5.53; 4x4 / 2 512->512 8x8
    x8 forward 7.04 vs 5.77, backward data 6.99 vs 5.81; 3x3 / 2 forward 512->512 6x6 x16 5.44 vs
    4.00, 256->512 8x8 x16 3.22 vs 2.59; backward data 512->512 12x12 x16 16.9 vs 13.6, 256->512
    14x14 x8 7.92 vs 6.74, 8x8 x16 3.86 vs 3.34, 128->256 16x16 x8 1.91 vs 1.89 (geometric mean 1.15
    over 20 rows, the 7 unchanged ones 0.92-1.05)."""
    if p.conv_pass == "backward_data" and all(s == 1 for s in p.stride):
        return _unit_data_served(p)
    if p.conv_pass not in ("forward", "backward_data") or not _batch_taps_shape(p):
        return False
    if p.conv_pass == "forward":
        return p.out_extents[-1] <= 7
    return True


def _unit_data_served(p: "_Shape") -> bool:
    """Unit-stride backward data on the path as the forward's correlation with the flipped
    kernel (data_correlation_geometry, fastconv/geometry.h): grad_y in, grad_x out, so grad_x's
    maps take the forward's limits (1-64 positions, rows of at most 7) and the padding the
    kernel's reach less the stored padding (not negative)."""
    if not _batch_of_small_maps(p, p.in_extents) or p.in_extents[-1] > 7:
        return False
    return all((k - 1) * d >= lo for k, d, lo in zip(p.kernel, p.dilation, p.pad_lo))


def _batch_first(p: "_Shape") -> bool:
    """Whether `auto` runs a float32 forward or unit-stride backward data of a batch of small
    maps on direct's path (_batch_taps_served), or its weight gradient as _batch_weight_taps
    says, ahead of Winograd, whatever its tile count (which otherwise took batches of 128+
    F(2x2) tiles: 32 images of 6x6): 2 threads, Xeon, `fastconv bench` medians, ms, direct vs
    the previous auto (torch), forward / backward data (before the path took unit-stride
    backward data: implicit GEMM / Winograd's): 3x3 on 64 ch 6x6 x32 0.52 vs 0.93 (0.49) / 0.59
    vs 1.04 (0.57); 32 ch 5x5 x64 0.31 vs 0.79 (0.24) / 0.32 vs 0.78 (0.26); 512 ch 4x4 x16 4.36
    vs 4.80 (5.72) / 4.49 vs 7.05 (5.31); 256 ch 4x4 x64 4.40 vs 4.75 (4.80) / 4.34 vs 5.94
    (4.53); 512 ch 6x6 x16 8.91 vs 9.22 (10.3) / 10.8 vs 13.2 (11.6); 128 ch 6x6 x64 3.05 vs
    3.25 (2.76) / 3.67 vs 3.80 (3.31); 256 ch 6x6 x32 4.53 vs 4.45 (4.71) / 5.43 vs 5.68 (5.37);
    512 ch 4x4 x64 17.6 vs 19.6 (19.6) / 18.9 vs 21.8 (18.9). AVX2-both: 64 ch 6x6 x32 0.85 vs
    1.79 (0.97) / 0.85 vs 1.89 (0.91); 512 ch 4x4 x64 27.9 vs 34.7 / 31.6 vs 34.5; 128 ch 6x6
    x64 5.90 vs 6.45 / 5.68 vs 6.48. Even maps of 6+ positions a side on 512+ channels, whole
    F(2x2) tiles, keep Winograd: 512 ch 6x6 x32 21.7 vs 18.9 (20.3) / 21.1 vs 20.9, AVX2 36.6 vs
    33.7 / 40.6 vs 37.8 (x16 at AVX2 19.6 vs 19.3 / 21.7 vs 20.7, though at AVX-512 8.9 vs 9.2 /
    10.8 vs 13.2), and below AVX-512 all 3x3 stride-1 maps of 6+ a side on 512+ channels are
    left to the rules after this one (Winograd from 129 F(2x2) tiles, and
    _cpu_rule._winograd_few_tiles' rows of 7-13 measured on a Zen 3; ResNet-50's res5 at batch
    8, 7x7, on the Xeon at AVX2: this path 12.0 vs 12.4 / 14.6 vs 13.6; at AVX-512 7.98 vs 8.46
    / 7.38 vs 9.99). Rows of 7 (on the path since 2026-12-06): 64 ch 7x7 x32 0.48 vs 0.68 / 0.47
    vs 0.69, 128 ch x16 0.94 vs 1.09 / 0.92 vs 1.07, 256 ch x8 at AVX2 3.40 vs 3.58 / 3.67 vs
    3.78. (float64 takes this path only through _taps_choice; measured there, backward data
    direct vs the per-tap path it ran before, ms: 256 ch 5x5 x8 2.41 vs 2.58, 64 ch 6x6 x32 1.01
    vs 1.50, 512 ch 4x4 x16 11.7 vs 18.3.) Since Winograd's runs go on over images (2026-12-06),
    whole F(2x2) tiles from 128 channels keep it too, direct vs Winograd, forward / backward
    data: 128 ch 6x6 x64 2.67 vs 2.58 / 2.33 vs 2.13, AVX2 4.81 vs 3.48 / 5.03 vs 4.99; 256 ch
    6x6 x32 4.72 vs 4.06 / 4.56 vs 4.15, AVX2 7.90 vs 7.20 / 7.74 vs 6.87; at AVX-512 from 256
    tiles only (x16, 144 tiles: 128 ch 0.75 vs 0.79 / 0.75 vs 0.82, 256 ch 1.99 vs 1.97 / 2.08 vs
    2.42; AVX2 128 ch 0.96 vs 1.00 / 1.04 vs 1.04, 256 ch 3.57 vs 3.19 / 3.68 vs 3.39)."""
    if p.conv_pass == "backward_weight":
        return _batch_weight_taps(p)
    if p.itemsize != 4 or p.taps == 1:  # (1x1: one GEMM on the tensor, nothing to skip)
        return False
    unit = all(s == 1 for s in p.stride)
    maps = p.in_extents if p.conv_pass == "backward_data" else p.out_extents
    fewest = min(p.c_per_group, p.k_per_group) if p.kernel == (3, 3) and unit else 0
    if fewest >= 128 and all(e >= 6 for e in maps):
        # left to the rules after this one (Winograd from 129 F(2x2) tiles, _winograd_few_tiles;
        # fewer reach this path through _taps_choice): whole tiles (under 512 channels at
        # AVX-512 from 256 of them), and 512+ channels below AVX-512
        avx512 = _active_isa() == "avx512"
        tiles = p.n * math.prod(e // 2 for e in maps)
        whole = all(e % 2 == 0 for e in maps) and (fewest >= 512 or tiles >= 256 or not avx512)
        if whole or (fewest >= 512 and not avx512):
            return False
    return (p.conv_pass == "forward" or unit) and _batch_taps_served(p)


def _batch_taps_shape(p: "_Shape") -> bool:
    """The shapes direct's path for batches of small maps takes in every pass (batch_taps_serve
    before its per-pass limits): 2-D, one group, 16+ channels each side, 8+ images, output maps
    of 1-64 positions, strides up to 16, no negative padding."""
    if not _batch_of_small_maps(p, p.out_extents) or max(p.stride) > 16:
        return False
    return all(lo >= 0 for lo in p.pad_lo)


def _batch_of_small_maps(p: "_Shape", maps: tuple[int, ...]) -> bool:
    """What every use of direct's batch path asks: 2-D, one group, 16+ channels each side, 8+
    images, maps (the output's, or grad_x's for unit-stride backward data) of 1-64 positions."""
    if len(p.kernel) != 2 or p.n < 8 or p.groups != 1:
        return False
    return min(p.c_per_group, p.k_per_group) >= 16 and 0 < math.prod(maps) <= 64


def _batch_weight_taps(p: "_Shape") -> bool:
    """Whether `auto` runs a 3x3 float32 weight gradient (stride 1 or 2) on direct's path for
    batches of small maps (_batch_taps_shape: per tap, grad_y's images-innermost channel rows
    against the input's) instead of Winograd's F(3x3,4x4) in the transform domain (or, strided,
    implicit GEMM): on up to 64 channels on either side (128 at stride 2), where the tiles'
    transforms cost more than the 4x fewer products save, and on up to 256 with output rows of
    at most 7, where the 4x4 tiles also compute 23-61% past the map (7x7, 6x6, 5x5) or a 4x4 map
    leaves one tile per image, short GEMM reductions. 512 channels keep Winograd, and so do maps
    of whole 4x4 tiles past the channel counts below (their last paragraph). 2 threads, Xeon,
    `fastconv bench` medians (one process, interleaved; every
    stride-1 layer measured has equal channels), ms, direct vs the previous auto (torch),
    AVX-512 / AVX2-both: 64 ch 6x6 x32 0.48 vs 1.21 (0.67) / 0.75 vs 1.78 (1.03); 8x8 x32 0.94
    vs 1.30 (0.94) / 1.33 vs 1.79 (1.57); 4x4 x32 0.21 vs 0.51 (0.32) / 0.34 vs 0.82; 32 ch 8x8
    x64 0.50 vs 1.03 (0.55) / 0.83 vs 1.58 (0.90); 128 ch 4x4 x32 0.72 vs 1.31 (1.05) / 1.08 vs
    1.77; 7x7 x16 0.97 vs 1.27 (1.21) / 1.88 vs 2.26; 256 ch 5x5 x8 1.23 vs 1.78 (1.55) / 2.16
    vs 2.77. Kept: 128 ch 8x8 x32 2.96 vs 2.46 / 5.13 vs 4.37, x8 0.90 vs 0.86 / 1.43 vs 1.27;
    256 ch 8x8 x8 2.83 vs 1.88 / 5.29 vs 3.42; 512 ch 4x4 x16 5.97 vs 5.17, 7x7 x8 10.3 vs 7.58.
    At stride 2 on 8x8 outputs it beats implicit GEMM alike (AVX-512): 32->64 on 16x16 x128 1.80
    vs 2.81 (torch 1.47), 64->128 x64 2.85 vs 4.00 (3.14), 128->256 x8 1.94 vs 2.28 (the channel
    rule leaves that one, and 256->512 x16, 4.04 vs 4.29, to implicit GEMM; 7x7 outputs there
    lose: 256->512 5.95 vs 5.43). Since Winograd's runs go on over images (2026-12-06), maps of
    whole 4x4 tiles keep it from 64 channels on 8x8 and from 256 on 4x4 (128 below AVX-512):
    direct vs Winograd, AVX-512 / AVX2: 64 ch 8x8 x128 4.79 vs 2.87 / 7.93 vs 4.27, x32 0.72 vs
    0.70 / 1.19 vs 0.99; 256 ch 4x4 x64 4.50 vs 3.29 / 8.12 vs 5.07; 128 ch 4x4 x32 0.58 vs 0.62
    / 0.99 vs 0.82; but 64 ch 4x4 x32 0.18 vs 0.24 / 0.30 vs 0.33, 32 ch 8x8 x64 0.49 vs 0.63 /
    0.77 vs 0.83 stay. Only from 16 tiles over the batch: fewer (4x4 maps at batch 8-15) leave
    Winograd's weight gradient to implicit GEMM (winograd_schedule.cc:
    weight_gradient_by_winograd), which the batch path beats."""
    if p.conv_pass != "backward_weight" or p.itemsize != 4 or not _batch_taps_shape(p):
        return False
    if p.kernel != (3, 3) or p.stride not in ((1, 1), (2, 2)) or any(d != 1 for d in p.dilation):
        return False
    most = max(p.c_per_group, p.k_per_group)
    tiles = p.n * math.prod(e // 4 for e in p.out_extents)
    if p.stride == (1, 1) and all(e % 4 == 0 for e in p.out_extents) and tiles >= 16:
        if most >= (64 if min(p.out_extents) >= 8 else 256 if _active_isa() == "avx512" else 128):
            return False  # whole 4x4 tiles, enough of them
    return most <= (64 if p.stride == (1, 1) else 128) or (most <= 256 and p.out_extents[-1] <= 7)


def _batch_scatter(p: "_Shape") -> bool:
    """Whether `auto` runs strided backward data on direct's path for batches of small maps
    (_batch_taps_served): 3x3 / 2 and 4x4 / 2 kernels as measured, not 1x1 / 2 nor kernels that
    tile the input (2x2 / 2), which nothing measured."""
    if p.conv_pass != "backward_data" or p.taps == 1 or _tiling_kernel(p):
        return False
    return any(s > 1 for s in p.stride) and _batch_taps_served(p) and not _few_scatter_columns(p)


def _few_scatter_columns(p: "_Shape") -> bool:
    """Strided backward data into under 128 input channels: the batch path's scatter (a panel of
    the GEMM's columns per input channel block, added into grad_x's planes tap by tap) loses to
    im2col's column tiles there. 2 threads, Xeon, `fastconv bench` medians, ms, direct vs
    im2col, AVX-512 / AVX2: 3x3 / 2 32->64 on 16x16 x128 3.38 vs 2.30 / 3.37 vs 2.64, 32->32
    x64 1.17 vs 0.78 / 1.31 vs 1.06, 64->128 x64 4.24 vs 3.90 / 6.57 vs 6.50, 64->64 12x12 x32
    0.85 vs 0.78 / 1.16 vs 1.14; from 128 it wins: 128->256 x8 1.78 vs 1.80 / 2.15 vs 2.79,
    x32 7.30 vs 7.40 / 10.6 vs 11.9, 256->512 14x14 x8 5.12 vs 5.68 / 7.26 vs 8.52."""
    strided = any(s > 1 for s in p.stride)
    return p.conv_pass == "backward_data" and strided and p.c_per_group < 128


# auto's reason wherever direct runs its path for batches of small maps (_batch_taps_served).
BATCH_TAPS = "a batch of small maps: per-tap GEMMs over (column, image) rows"


def _direct_first(p: "_Shape") -> str:
    """auto's reason where direct runs ahead of Winograd and implicit GEMM on batches: its
    path for small maps (_batch_first), or the row kernels for weight gradients over few input
    channels (_cpu_stems._few_channel_weight_rows); '' elsewhere."""
    if _batch_first(p):
        return BATCH_TAPS
    if _few_channel_weight_rows(p):
        return "a batch over up to 16 input channels: the weight gradient on the row kernels"
    return ""


def _taps_choice(p: "_Shape", unit_stride: bool, usable: Any) -> tuple[str, str]:
    """auto's choice in the per-tap domain (_small_image_taps): the direct algorithm, or the
    exceptions that go back to one packed implicit GEMM or to im2col's columns. Batches of small
    maps that direct serves with the images innermost (_batch_taps_served) take that path first,
    at every level and unit width."""
    if _batch_taps_served(p):
        if _few_scatter_columns(p) and usable("im2col"):
            return "im2col", "a batch of small maps into under 128 channels: column GEMM tiles"
        return "direct", BATCH_TAPS

    def direct(reason: str) -> tuple[str, str]:
        return "direct", reason

    if _short_segments(p):
        return "implicit_gemm", "rows of at most 4 positions: one packed GEMM, 12-row tiles"
    if _strided_packed(p, unit_stride):
        return "implicit_gemm", "strided: one packed GEMM over the stride phases"
    if p.conv_pass == "backward_data" and len(p.kernel) == 2 and min(p.kernel) == 1:
        if _half_unit_taps(p):
            return direct("small image, AVX-512 on 256-bit units: a GEMM call per tap")
        if usable("im2col"):
            # Inception's factorised 1x7 / 7x1 / 1x3: one GEMM of C x taps rows, then a
            # col2im of rows (2 threads, median ms, im2col vs the previous auto, AVX-512 /
            # AVX2): 128 ch 17x17 1x7 0.21 vs 0.25 / 0.35 vs 0.36, 7x1 0.30 vs 0.35 / 0.50
            # vs 0.52, 384 ch 8x8 1x3 0.19 vs 0.22 / 0.29 vs 0.32, x8 1.33 vs 1.65 / 2.20 vs
            # 2.28; 1x7 x8 1.62 vs 1.87 / 2.74 vs 2.70.
            return "im2col", "1xN / Nx1 backward data on a small image: column GEMM, col2im"
    packed = _packed_taps(p)
    if packed:
        return "implicit_gemm", packed
    if _single_image_taps(p, unit_stride) or _packed_taps(p, half_units=False):
        return direct("small image, AVX-512 on 256-bit units: a GEMM call per tap")
    if _strided_packed(p, unit_stride, small_l2=False) or _packed_taps(p, small_l2=False):
        return direct("small image, many channels, L2 under 1 MiB: a GEMM call per tap")
    return direct("small image, many channels: a GEMM call per tap, padding skipped")
