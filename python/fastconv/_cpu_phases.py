"""auto's rules for layers run on their stride or dilation phases by Winograd
(csrc/algo/winograd_phases.h, dilation_phases.h): dilated 3-tap layers, kernels twice the
stride (DCGAN's 4x4 / 2), and the transform-domain products of 2-tap tiles they compare
(_cpu_rule.cpu_rule calls them)."""

from __future__ import annotations

import math

from ._cpu_shape import _active_isa, _avx512_on_256bit_units, _Shape


def _two_tap_products(
    extents: tuple[int, ...], few_summed: bool, images: int = 1, lanes: int = 16
) -> float:
    """Transform-domain products per direct product of F(hxw,2x2) over a stride-1 correlation
    whose output has `extents` (the tile as csrc/algo/winograd_tiles.cc chooses it for backward
    data: the fewest tiles x (h + 1)(w + 1) over the square tiles, m up to 4 when at most 64
    channels are summed, then F(4x3) / F(3x4) in 2-D where strictly fewer and not folding a
    batch of `images` that the best square leaves unfolded (a tile row under `lanes` tiles),
    against 2 taps per dim over the phase plane (the extent less the kernel's extra position)."""

    def cost(tile: tuple[int, ...]) -> float:
        c = 1.0
        for e, m in zip(extents, tile):
            c *= (-(-e // m)) * (m + 1) / (2.0 * (e - 1))
        return c

    def folds(tile: tuple[int, ...]) -> bool:
        return images > 1 and -(-extents[-1] // tile[-1]) < lanes

    squares = [(m,) * len(extents) for m in ((2, 3, 4) if few_summed else (2, 3))]
    best = min(squares, key=cost)  # the first of equals, as the C++ loop
    if len(extents) == 2:
        for tile in ((4, 3), (3, 4)):
            if cost(tile) < cost(best) and (folds(best) or not folds(tile)):
                best = tile
    return cost(best)


def _dilation_phase_winograd(p: "_Shape", unit_stride: bool) -> bool:
    """Whether `auto` runs a dilated 3-tap layer (stride 1, padding a multiple of the dilation:
    atrous convolution) on Winograd over its dilation phases (csrc/algo/dilation_phases.h): the
    input's d^rank phase planes as images of their own make a dense 3x3 convolution. It pays
    where F(4x4)'s tiles cover the phase planes well (`useful`: output positions / positions
    the tiles compute, >= 0.6) and the planes are 11+ positions per dim; the weight gradient
    also on 7x7 planes. 2 threads, median ms, winograd vs the previous auto (direct for forward
    and backward data, implicit_gemm for the weight; torch), forward / backward data / weight,
    Xeon AVX-512 (AVX2, torch capped too):
    - 256 ch 65x65 d6 (11x11 planes, useful 0.82): 15.3/15.2/13.0 vs 57.2 (implicit_gemm 18.6)
      /18.8/18.9 (torch 15.3/17.5/18.3); AVX2 23.9/23.0/19.7 vs 27.0/28.6/28.3;
    - 512 ch 28x28 d2 (14x14, 0.77): 10.6/12.8/13.7 vs 12.5/12.9/13.5 (13.8/14.0/13.6); AVX2
      15.6/16.9/19.3 vs 19.9/20.3/19.1;
    - 128 ch 64x128 d2 / d4 and 64 ch 112x112 d2 (useful 1.0): forward 6.48 / 6.31 / 2.64 vs
      9.01 / 8.54 / 3.72 (implicit_gemm), weight 4.99 / 5.58 / 3.00 vs 9.19 / 9.33 / 4.32;
    - DeepLabv3's dilated ResNet stages: 512 ch 65x65 d4 (17x17 planes, 0.66) 58.1/58.6/80.7
      vs 75.2/78.4/76.2, AVX2 85.5/87.5/98.1 vs 111/116/110; 512 ch 33x33 d2 (17x17, 0.68)
      18.0/20.0/19.3 vs 18.7/19.4/19.4, AVX2 23.7/26.7/30.3 vs 29.4/30.0/34.3;
    - 64 ch 224x224 d2 (112x112 planes): 11.9/11.5/12.7 vs im2col 24.2/18.4 (direct)/21.6
      (torch 13.3/13.1/18.7), AVX2 15.7/15.6/16.4 vs 31.2/24.3/28.7;
    - 1-D 128 ch 1024 k3 d4 x8: 2.99/2.90/3.42 vs 3.31/3.36/3.54;
    - deeplab.atrous3x3d4 (256 ch 28x28, 7x7 planes, 0.77): weight 2.93 vs 3.25 (3.03); AVX2
      4.55 vs 4.93 (6.92); its forward and backward data not (4.01 vs 3.44, 3.65 vs 2.92);
    - float32 dense layers only (float64 and groups not measured);
    - not where the tiles cover the planes poorly: 512 ch 33x33 d6 (6x6 planes, 0.47) 9.7/10.0/
      14.0 vs 8.5/8.3/9.7, 512 ch 33x33 d4 (9x9, 0.47) 12.8/10.9/11.5 vs 9.1/8.9/9.6, 256 ch
      24x24 d4 (6x6, 0.56) weight 3.18 vs 2.56.
    The 7x7 planes' weight gradient only at AVX-512: the AVX2 figures above are a Xeon capped to
    AVX2, and on an AVX2-only AMD Zen 3 (one process, min / median ms of 6 rounds, winograd vs
    implicit_gemm) deeplab.atrous3x3d4's runs 7.76/11.0 vs 6.35/7.61 (14x14 planes there: 512
    ch 28x28 d2 29.5/29.5 vs 29.6/29.8, 256 ch 56x56 d4 25.6/27.8 vs 30.8/31.3)."""
    if not unit_stride or all(d == 1 for d in p.dilation) or any(k != 3 for k in p.kernel):
        return False
    if p.itemsize != 4 or p.groups != 1:  # measured on dense float32 layers only
        return False
    if any((lo % d) or (hi % d) for lo, hi, d in zip(p.pad_lo, p.pad_hi, p.dilation)):
        return False
    computed = 1
    useful = 1
    smallest = None
    # The tiles cover the correlation's output: grad_x's phases for backward data.
    extents = p.in_extents if p.conv_pass == "backward_data" else p.out_extents
    for o, d in zip(extents, p.dilation):
        plane = -(-o // d)  # each phase's output extent
        computed *= d * 4 * (-(-plane // 4))
        useful *= o
        smallest = plane if smallest is None else min(smallest, plane)
    if computed == 0 or useful / computed < 0.6:
        return False
    weight_7 = p.conv_pass == "backward_weight" and smallest >= 7 and _active_isa() == "avx512"
    return smallest >= 11 or weight_7


def _upsampling_winograd(p: "_Shape", unit_stride: bool) -> bool:
    """Whether `auto` runs a strided layer whose kernel is twice its stride (DCGAN's 4x4 / 2, a
    transposed convolution's upsampling) on Winograd over its stride phases
    (csrc/algo/winograd_phases.h): the input split into its phases, stacked as channels, makes a
    stride-1 2x2 convolution, F(mxm,2x2) then takes 9 or 16 products where the stacked sum takes
    16 or 36 (1.78x / 2.25x fewer multiply-adds; the float32 error stays within 1.5x of the
    direct sum's). It pays for the weight gradient, and for a batch (its images side by side, so
    the transforms' vectors fill) while the transformed kernels (alpha^2 x stacked channels x K)
    fit in L2: the conv's forward (the transposed layer's backward data), and its backward data
    (the transposed forward) where the stacked input's gradient, one position longer per dim
    than the phase planes, still takes at most 0.57 of the direct products (_two_tap_products:
    32x32 planes 0.47, 16x16 and 8x8 0.56). 2 threads, median ms, winograd vs the previous
    auto, Xeon AVX-512 / AVX2, transposed layers (the bench's forward = the conv's backward
    data, its backward data = the conv's forward):
    - weight: dcgan.g4 3.39 vs 3.80 / 4.51 vs 6.01; 64->32 32x32 x16 4.19 vs 4.57 / 5.93 vs
      6.81; 128->64 32x32 x4 3.24 vs 3.63 / 4.50 vs 5.84; 64->64 64x64 x1 1.63 vs 2.97 / 2.12
      vs 3.78;
    - the conv's forward: dcgan.g4 3.93 vs 4.78 / 5.92 vs 7.20; 64->32 32x32 x16 4.80 vs 5.00 /
      6.35 vs 8.47; 128->64 32x32 x4 3.27 vs 4.46 / 4.98 vs 6.94; not dcgan.g3 (9 x 512 x 256
      transformed kernels: 4.27 vs 3.46) nor one image (256->128 16x16: 1.43 vs 0.95);
    - the conv's backward data: 64->32 32x32 x16 3.68 vs 4.10 / 4.74 vs 5.91; 128->64 32x32 x4
      3.10 vs 3.46 / 4.15 vs 5.43; dcgan.g4 (0.56 of the products) 2.95 vs im2col 3.18 / 4.48
      vs 5.28 and g3 3.01 vs 3.11 / 4.62 vs 5.14 (since the transforms' vector lane movement;
      before it AVX-512 lost them, 3.61 vs 3.28); not one image (64->64 64x64: 2.12 vs 1.92).
    - the conv's forward with larger transformed kernels, 2-D, once there are 256+ F(2x2) output
      tiles (n x ceil(out / 2) per dim): each kernel's transform is then shared by enough tiles,
      and Winograd's schedule splits a few hundred tiles evenly over the threads (one block,
      csrc/algo/winograd_schedule.cc). 4x4/2, median ms, winograd vs the previous auto (torch),
      AVX-512 / AVX2: dcgan.g3 (128->256 16x16 x16, 256 tiles) 3.00 vs 3.33 (2.87) / 4.47 vs
      5.89; x32 5.71 vs 7.01 / 8.83 vs 12.0; 256->256 16x16 x16 5.67 vs 6.62 / 8.79 vs 11.1;
      256->512 16x16 x16 (18.9 MB of transformed kernels) 10.6 vs 12.1 / 16.4 vs 21.3; 128->256
      32x32 x4 2.78 vs 3.54 / 4.23 vs 5.81; one image: 64->128 128x128 2.91 vs 3.40 / 4.03 vs
      5.59, 128->256 64x64 3.06 vs 3.07 / 4.54 vs 5.86. Below 256 tiles the previous auto keeps
      them: 256->256 16x16 x8 (128 tiles) 3.71 vs 3.28 at AVX-512, 128->256 16x16 x4 1.25 vs
      0.89, 256->512 32x32 x1 3.88 vs 3.28, 256->512 8x8 x16 4.69 vs 3.48.
    - Since implicit GEMM reads strided panels in place, its forward beats or ties Winograd's at
      AVX-512 on 2-D batches with output rows of at most 14 positions (fewer than 8 F(2x2)
      tiles, an empirical cut) under 256 output channels. It once held to rows of 30 (dcgan.g4's
      64->128 16x16 x16 4.50-4.53 vs 4.63-4.76), but Winograd's transforms have since got
      faster: 2026-12-06, Xeon, 2 threads, fastconv bench medians of two runs, implicit_gemm vs
      winograd (torch), ms: g4's 6.13/6.00 vs 4.86/5.27 (5.60), x8 2.96/3.11 vs 2.86/2.81, x4
      1.56/1.50 vs 1.34/1.36, x32 12.7/15.9 vs 10.4/11.8, 128->128 16x16 x16 12.3/10.2 vs
      10.7/9.38, 64->64 16x16 x16 3.60/3.80 vs 3.39/3.60, 32->64 1.91/2.41 vs 1.87/2.27; 8x8
      outputs tie (128->128 x16 3.15/3.06 vs 2.91/3.27). benchmarks/ab_processes.py, the two
      cuts side by side (11 blocks): geometric mean 1.042 over the 22 rows, dcgan.g4's backward
      data 1.072, 64->64 0.943. AVX2 and 256-bit units keep Winograd (float32) on every width
      (dcgan.g4 there: 6.64-7.19 vs 6.56-6.96), as do 256 output channels (dcgan.g3's 128->256
      8x8 x16 2.99-3.03 vs 2.87-2.90: Winograd's GEMMs split evenly over the threads).
      Those are the Xeon's (two 512-bit FMA units per core). Where AVX-512 runs on 256-bit units
      (AMD's Zen 4) Winograd keeps them, as at AVX2: 2 threads, calls interleaved with
      PyTorch's in one process, median ms, implicit_gemm vs winograd (torch / winograd's, the
      median of the per-call ratios): dcgan.g4's 64->128 16x16 x16 6.29 vs 5.19 (1.02), x4 1.64
      vs 1.64 (0.98; best 1.56 vs 1.30), 64->64 x16 3.35 vs 2.70 (0.95), 128->128 8x8 x16 4.00 vs
      3.25 (1.02), 128->128 16x16 x16 11.2 vs 8.73 (1.10), 32->64 16x16 x16 1.76 vs 1.62 (best;
      0.84)."""
    if unit_stride or len(p.kernel) > 2 or p.groups != 1 or p.n < 1:
        return False
    if not all(k == 2 * s for k, s in zip(p.kernel, p.stride)):
        return False
    if p.conv_pass == "backward_weight":
        return True
    # Output rows of at most 14 positions (fewer than 8 F(2x2) tiles), a batch, 2-D, under 256
    # output channels.
    narrow = p.n > 1 and len(p.kernel) == 2 and (p.out_extents[-1] + 1) // 2 < 8
    narrow = narrow and p.k_per_group < 256
    if p.conv_pass == "forward" and narrow and _active_isa() == "avx512":
        if p.itemsize != 4 or not _avx512_on_256bit_units():  # (float32 measured)
            return False
    phases = math.prod(p.stride)
    stacked = phases * p.c_per_group
    # The tile rule's and the backward-data rule's reach: transformed kernels up to 32 MiB
    # (measured up to 18.9 MB; wider layers were not, and their workspace grows with them).
    capped = 16 * stacked * p.k_per_group * p.itemsize <= (32 << 20)
    if p.conv_pass == "forward" and len(p.kernel) == 2 and capped:
        tiles = p.n
        for o in p.out_extents:
            tiles *= (o + 1) // 2
        if tiles >= 256:
            return True
    if p.n == 1:
        return False
    if p.conv_pass == "forward":
        # F(2x2)'s 9 points. Batches of 8-wide outputs run F(4x3)'s 20 (fewer products: 120 an
        # image against 144; csrc/algo/winograd_tiles.cc): before it, F(3x3)'s 16 on 64->64 x8,
        # 64->128 x4 and 32->64 x8 on 8x8 outputs measured within 3% of F(2x2) either way (A/B,
        # 2 threads, both levels), so the size check stays on F(2x2)'s points.
        return 9 * stacked * p.k_per_group * p.itemsize <= (2 << 20)
    # backward data: the stacked input's gradient, out + 1 per dim, summing K channels, where
    # it takes at most 0.57 of the direct products (g2's 4x4 planes, 1.0 of them, lose: 9.42 vs
    # 5.38 at AVX2).
    extents = tuple(o + 1 for o in p.out_extents)
    products = _two_tap_products(extents, p.k_per_group <= 64, p.n, 64 // p.itemsize)
    return capped and products <= 0.57
