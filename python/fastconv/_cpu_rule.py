"""The CPU's `auto` rule (selection.py's table of rules calls cpu_rule): which algorithm runs a
problem on the CPU, and why. The predicates below each name one decision, with the measurements
behind it; explain() reports the reason string the rule returns."""

from __future__ import annotations

import math
from typing import Any

from ._cpu_phases import _dilation_phase_winograd, _upsampling_winograd
from ._cpu_shape import _active_isa, _avx512_on_256bit_units, _Shape
from ._cpu_stems import (
    _direct_weight_taps,
    _stem_column_data,
    _stem_phase_winograd,
    _stem_row_winograd,
    _stride2_winograd,
    _stride2_winograd_weight,
    _strided_rows,
)
from ._cpu_taps import (
    BATCH_TAPS,
    _batch_scatter,
    _direct_first,
    _single_image_taps,
    _small_image_taps,
    _taps_choice,
    _taps_served,
    _temporal_columns,
    _tiling_kernel,
)
from ._cpu_volume import (
    _axis_winograd,
    _depth_winograd,
    _fft_3d_at_avx2,
    _line_winograd,
    _winograd_tiles,
)


def _patch_rows(p: "_Shape") -> bool:
    """Whether a 2x2 / 2 forward that tiles one large image with up to 64 input channels (U-Net's
    transposed decoders seen from their backward data) runs the direct row kernels: 2 threads,
    median ms, direct vs implicit_gemm / im2col, AVX-512 / AVX2: 64->128 128x128 1.01 vs
    1.09/1.16 / 1.59 vs 1.85/1.65, 64->128 256x256 (unet.up4) 3.97 vs 4.26/4.32 / 6.12 vs
    7.21/6.49, 32->64 256x256 1.24 vs 1.61/1.51 / 1.77 vs 2.12/2.05. Not batches (64->128 64x64
    x4 2.06 vs 1.09) nor 128+ channels (128->256 64x64 1.46 vs 0.88). Only below AVX-512 since
    implicit GEMM's panels gather stride-2 columns with vector loads (two per vector) instead of
    element by element: AVX-512, min ms of 3, direct vs implicit_gemm: 64->128 128x128
    1.44-1.46 vs 1.20-1.24, 256x256 5.86-5.91 vs 4.68-4.78, 32->64 256x256 1.75-1.78 vs
    1.46-1.57, 16->32 256x256 0.59-0.64 vs 0.51-0.53 (float32; float64 keeps the row kernels,
    unmeasured). Those were phase-split planes; the row kernels now read such kernels as tap
    pairs from per-row copies (direct_rows.cc pairs_forward), measured on an AVX2-only AMD Zen 3
    (2 threads, one process, min ms of 3 rounds, direct vs implicit_gemm / im2col / PyTorch):
    64->128 128x128 1.96 vs 2.05/2.15/2.29, 256x256 10.1 vs 12.8/10.2/9.5 (a slow phase of the
    VM; alternating runs there: the row kernels 12.3-12.8 before, 8.0-8.5 after), 32->64 256x256
    2.45 vs 4.44/3.50/2.75, 16->32 256x256 1.34 vs 1.31/0.94/1.11 (medians 1.35 / 1.34 / 1.40),
    so the same cases; batches (4 x 64x64: 3.00 vs 2.06) and 128+ channels (128->256 64x64 2.50
    vs 2.28) stay on implicit GEMM. AVX-512 with pairs: unmeasured."""
    if _active_isa() == "avx512" and p.itemsize == 4:
        return False
    if p.conv_pass != "forward" or p.n != 1 or p.groups != 1 or p.c_per_group > 64:
        return False
    if len(p.kernel) != 2 or p.kernel != (2, 2) or not _tiling_kernel(p):
        return False
    # (rows the per-tap path serves are not the row kernels' and were not measured)
    return p.spatial >= 16384 and not _taps_served(p, False)


def _full_winograd_vectors(p: "_Shape", tiles: int) -> bool:
    """Whether 64-128 F(2x2) output tiles of a 2-D 3x3 stride-1 pass (which _small_image_taps
    would give the per-tap path) fill Winograd's transform vectors (16 tiles in float32, 8 in
    float64) with outputs, 94%+: a 16x16 image, or 8x8 at batch 4. Then Winograd runs them
    (since its kernel blocks split evenly over the threads). 2 threads, median ms, forward /
    backward data, winograd vs direct, AVX-512: 512 ch 16x16 2.87/3.32 vs 3.40/3.71, 256->512
    1.54/1.88 vs 1.73/1.87, 512->1024 5.45/7.75 vs 6.61/7.69, 128 ch 0.253/0.264 vs
    0.265/0.278, 512 ch 8x8 x4 3.03/3.48 vs 3.10/3.38; AVX2 4.32/4.82 vs 5.53/5.86, 2.35/2.69 vs
    2.90/2.89, 8.25/10.6 vs 10.8/11.8, 0.398/0.388 vs 0.413/0.415, 4.67/5.06 vs 5.65/5.68. A
    14x14 image (49 tiles in 64 lanes: 77%) stays on the taps path (256 ch 0.86/0.93 vs
    0.65/0.69), as does 19x19 (100 tiles padded to 112, their 20x20 outputs over 19x19: 81%)."""
    if len(p.kernel) != 2 or tiles < 64:
        return False
    lanes = 64 // p.itemsize
    extents = p.out_extents if p.conv_pass == "forward" else p.in_extents
    outputs = p.n * math.prod(extents)
    return 100 * outputs >= 94 * 4 * (-(-tiles // lanes) * lanes)


def _winograd_few_tiles(p: "_Shape", tiles: int) -> bool:
    """Whether a float32 2-D 3x3 stride-1 forward or backward data of at most 128 F(2x2) output
    tiles (which _small_image_taps would give the per-tap path) runs Winograd: from 64 tiles,
    and below AVX-512 the forward from 49 on 256+ channels each side and rows of 7-13 from 64
    tiles on 512+ channels. Since the kernel transform reads a run of kernels with one
    transpose and kernel blocks go one per thread (2 threads,
    median ms, forward / backward data, winograd vs direct, AVX-512; AVX2): 256 ch 15x15 (64
    tiles) 0.66/0.78 vs 0.77/0.81; 1.07/1.21 vs 1.31/1.33; 512 ch 15x15 2.50/3.05 vs 2.99/3.19;
    3.83/4.42 vs 4.97/5.12; Inception's 384 ch 17x17 1.85/2.20 vs 2.13/2.29; 3.00/3.28 vs
    3.47/3.54; 1024 ch 19x19 16.8/21.9 vs 19.1/22.3; 26.6/31.8 vs 32.5/34.5; 256 ch 14x14 x2
    1.06/1.19 vs 1.22/1.28; 1.80/1.94 vs 2.32/2.33. 49 tiles (14x14): AVX2 forward 256 ch 1.06
    vs 1.18 (res4.3x3), 512 ch 3.84 vs 4.46, 256->512 1.96 vs 2.35, but 128 ch 13x13 0.33 vs
    0.29 and backward data even (1.19 vs 1.19); AVX-512 loses them (0.66/0.78 vs 0.63/0.66).
    Fewer channels at 64-128 tiles win or tie too (AVX-512; AVX2): 128 ch 15x15 0.21/0.24 vs
    0.24/0.24; 0.32/0.34 vs 0.39/0.39, 128 ch 19x19 0.34/0.37 vs 0.41/0.39; 0.56/0.57 vs
    0.62/0.63, 64 ch 15x15 0.095/0.103 vs 0.101/0.104; 0.111/0.117 vs 0.123/0.125, except 64 ch
    19x19's forward at AVX-512 (0.139 vs 0.129) and 32 ch 16x16 at AVX2 (0.054/0.056 vs
    0.051/0.054). Rows of at least 14 outputs (7 tiles per run of the transforms' 16 lanes):
    smaller images kept the per-tap path at any batch (res5.3x3 x8, 7x7: 9.25/9.82 vs
    13.0/12.8). Since the transforms' runs go on over the next tile rows (TileKernels::Rows),
    on an AVX2-only AMD Zen 3 (2 threads, interleaved medians, ms, forward / backward data,
    winograd vs the previous auto): res5.3x3 x8 (7x7, 512 ch, 128 tiles) 14.6/14.6 vs direct
    20.7/17.0, so rows of 7-13 from 64 tiles on 512+ channels each side (256 ch 7x7 x8 5.38/6.82
    vs implicit_gemm 5.25/6.17, 256 ch 10x10 x4 6.39/10.7 vs direct 5.10/6.71, 128 ch 10x10 x16
    3.53/4.15 vs 3.93/3.90, 64 ch 7x7 x8 0.65/0.55 vs 0.38/0.33 stay; x4 512 ch 10.2/12.9 vs
    12.7/13.1; not measured at AVX-512, where these rows stay as they were). res4.3x3's
    backward data (49 tiles) stays on direct: 2.51/2.52 vs winograd 2.95/3.11 (implicit_gemm
    3.41/3.59)."""
    if p.itemsize != 4 or len(p.kernel) != 2 or p.conv_pass == "backward_weight":
        return False
    extents = p.out_extents if p.conv_pass == "forward" else p.in_extents
    channels = min(p.c_per_group, p.k_per_group)
    if extents[-1] < 14:
        below_avx512 = _active_isa() != "avx512"
        return below_avx512 and 7 <= extents[-1] and tiles >= 64 and channels >= 512
    if tiles >= 64:
        return True
    if _active_isa() == "avx512" or p.conv_pass != "forward" or channels < 256:
        return False
    return tiles >= 49


def _five_tap_winograd(p: "_Shape", unit_stride: bool) -> bool:
    """Whether a dense 2-D 5x5 stride-1 forward or backward data runs Winograd F(2x2,5x5) (36
    transform-domain products per 2x2 outputs where the direct sum takes 100): 64-128 channels
    each side, 48-128 at AVX-512 (the float32 error grows with the channels the transform domain
    sums: 4.4-5.6x implicit_gemm's at 64, 7.4-8.4x at 128, 8-13x at 256; the weight gradient's
    F(5x5,2x2), ~18x, stays on implicit_gemm) and rows of 28+ (smaller images keep the per-tap
    path). 2 threads, median ms, forward / backward data, winograd vs the previous auto (torch),
    AVX-512: dense5x5 (64 ch 56x56) 1.55/1.57 vs 1.95/1.96 fft (1.69/1.73); 128 ch 28x28
    1.44/1.49 vs 1.65/1.68 direct (1.60/1.68). AVX2: 2.20/2.25 vs 2.21/2.22, 2.03/2.06 vs
    3.01/3.02. At AVX-512 from 48 channels since the transforms' vector lane movement:
    Inception's 48->64 on 35x35 0.52/0.57 vs direct 0.59/0.64 (it lost before, 0.69), 48 ch
    28x28 0.27/0.27 vs 0.33/0.34, 48->64 56x56 1.04/1.08 vs fft 1.62/1.53; at AVX2 only the
    forward from 48 (its backward data loses there: 0.85/1.01 vs 0.98/0.98, 1.72/1.82 vs fft
    1.81/1.70). AVX2 forward, against AVX2-capped PyTorch (MKL too), two runs: 48->64 35x35
    1.08/1.03 vs direct 1.26/1.14 (torch 0.96/0.86), 48 ch 28x28 0.50/0.49 vs 0.60/0.59 (0.61/
    0.58), 48->64 56x56 1.91/1.86 vs fft 2.00/1.97 (2.19/2.22), 64->48 35x35 1.09/1.13 vs direct
    1.09/1.09. Where it loses: 64 ch 14x14 x8 1.36 vs 0.92, 32 ch 112x112 1.89 vs fft 1.80 (AVX2
    3.02 vs 2.05). Those AVX2 figures are a Xeon capped to AVX2; on an AVX2-only AMD Zen 3 (one
    process, min / median ms of 4-5 rounds, winograd vs auto before) the backward data from 48
    channels wins on rows of up to 35: Inception's 48->64 35x35 1.10/1.11 vs direct 1.23/1.24 (x2
    2.24/2.25 vs 2.36/2.37), 64->48 1.06/1.12 vs 1.29/1.72, 48 ch 28x28 0.49/0.50 vs 0.62/0.62,
    but not 48->64 on 56x56 (2.49/2.60 vs fft 1.85/1.93): from 48 there on rows of up to 40."""
    if not unit_stride or p.conv_pass == "backward_weight" or p.groups != 1:
        return False
    if p.kernel != (5, 5) or any(d != 1 for d in p.dilation):  # dilated: not measured
        return False
    row = min(p.out_extents[-1], p.in_extents[-1])
    wide = _active_isa() == "avx512" or p.conv_pass == "forward" or row <= 40
    fewest = 48 if wide else 64
    if max(p.c_per_group, p.k_per_group) > 128 or min(p.c_per_group, p.k_per_group) < fewest:
        return False
    return row >= 28


def _fft_pays(p: "_Shape") -> bool:
    """Whether a 1-D or 2-D pass of a 25+ tap kernel at stride 1 runs the FFT: all but 2-D weight
    gradients on small maps. Its tiles and per-frequency GEMMs lose there to implicit GEMM's
    packed panels: under 256 output positions per image at every level (128 channels 7x7 on
    14x14, 2 threads, ms: AVX-512 8.9 vs 4.3, AVX2 10.0 vs 4.6), and on 512-bit AVX-512 units
    (the 2-vCPU Intel Xeon, 2026-12-06, `fastconv bench` medians, FFT vs implicit GEMM (PyTorch))
    under 48x48 outputs per image unless the batch holds 8192+: Inception's mixed5b 5x5 (48->64
    35x35) 2.29 vs 1.40 (1.36), at batch 2 3.62 vs 2.89 (2.76), 64 channels 40x40 2.90 vs 2.45
    (2.36), 128 channels 28x28 6.58 vs 4.13 (4.31), 7x7 on 28x28 3.41 vs 2.57 (2.32); from 48x48
    or batch 8 the FFT wins (3.41 vs 3.73 (3.51), mixed5b at batch 8 8.35 vs 11.25 (10.03),
    dense5x5 56x56 3.74 vs 4.45 (4.79), 7x7 56x56 5.10 vs 9.80 (8.75)). At AVX2 those small maps
    tie or the FFT wins (35x35 2.56 vs 2.43, 40x40 3.45 vs 4.16, 35x35 x2 3.90 vs 4.86), and on
    AMD's 256-bit units mixed5b's tied: they keep it."""
    if p.conv_pass != "backward_weight" or len(p.kernel) != 2:
        return True
    positions = math.prod(p.out_extents)
    if positions < 256:
        return False
    if _active_isa() == "avx512" and not _avx512_on_256bit_units():
        return positions >= 48 * 48 or p.n * positions >= 8192
    return True


def cpu_rule(problem: Any, usable: Any) -> tuple[str, str]:
    """The CPU's `auto` choice for one pass and the reason.

    Measured with `fastconv bench --suite reference --passes forward,backward_data,backward_weight`
    (2 threads, Zen 5, float32; ratios are PyTorch time / fastconv time, see README):
    - implicit_gemm is the fastest built algorithm on every dense and grouped layer's forward and
      backward-weight pass (e.g. res3.3x3 forward 0.81x vs im2col 0.47x; 1x1 layers 1.05-1.58x).
    - The conv backward-data pass (also the transposed conv's forward) with stride > 1 once ran
      implicit_gemm by phases (one unit-stride GEMM per residue class of the stride): res3.3x3s2
      0.93x vs im2col 0.56x (im2col then scattered a column buffer per image), except upsampling
      (grad_x = stride x grad_y, kernel a multiple of the stride: the transposed dcgan / unet
      layers), which runs im2col's column tiles (Zen 4, 1 thread: dcgan.g2-g4 0.89-1.00x vs
      0.68-0.75x by phases, unet.up2x2 1.39x vs 0.90x; see the rule below). Since the column tiles
      run in parallel every strided backward data runs them (below). With only a few input channels
      per group (a network's first layer) each phase's GEMM has M = C/G rows, and im2col's M = C/G
      * taps wins (resnet50.conv1 1.03x vs 0.80x, alexnet.conv1 0.89x vs 0.59x). On small images
      col2im is cheap and the implicit gather dominates (res5.3x3, 7x7: 0.67x vs 0.54x), except 1x1
      kernels, whose backward data is a plain GEMM (res5.1x1: 0.85x vs 0.60x). Since implicit_gemm
      runs unit-stride backward data on small images as grad_y^T W with the weight in its stored
      layout (no transposed copy; csrc/algo/implicit_gemm.cc), it wins those too (2 threads, median
      ms, implicit_gemm vs im2col, AVX-512 / AVX2): 512 ch 7x7 1.55 vs 2.08 / 1.53 vs 2.12, 256 ch
      7x7 0.47 vs 0.55 / 0.40 vs 0.56, 64 ch 7x7 0.044 vs 0.124, 1024 -> 256 ch 4x4 1.11 vs 1.42 /
      0.81 vs 1.26: im2col only for strided ones (and, since, first layers' short kernels and 1xN /
      Nx1 kernels on small images: _stem_column_data and the small-image clause).
    - One input channel per group (depthwise, any channel multiplier; also a single-channel signal)
      runs the depthwise algorithm: SIMD loops per channel plane beat any GEMM, which has nothing
      to block over (mobilenetv2.dw112 forward 2.1x torch vs reference 0.05x; replknet.dw31 forward
      15.9x, backward weight 8.5x; signal.1d.k1025 forward 15.8x vs implicit_gemm 1.4x). Zen 4, 1
      thread, min us, forward / backward data / backward weight, avx512 (avx2) vs torch: dw112
      117/119/128 (138/139/162) vs 226/241/214, dw56s2 81/121/96 (94/141/99) vs 147/185/144, dw14
      37/44/47 (45/52/53) vs 88/100/88.
    - Grouped convolutions with few channels per group run the direct algorithm (the same plane
      loops, each padded source plane feeding up to four output planes per pass): a GEMM per group
      has too few rows and reductions to block over. Timed on 3x3 groups (1 thread, best of 30, ms,
      forward / backward data / backward weight, direct vs implicit_gemm): 2 channels per group,
      56x56: 0.13/0.14/0.20 vs 0.53/0.53/1.55; 8 per group (resnext50 g32), 28x28: 0.43/0.42/0.95
      vs 0.62/0.60/1.38; 16 per group: 0.76/0.80/1.79 vs 0.70/0.68/1.23. So: up to 8 channels per
      group. Since the direct kernels stack a group's planes (all its input channels summed in
      registers per output block; weight gradient blocked over grad_y planes x taps), ratios vs
      torch (1 thread, Xeon AVX-512, direct vs the previous auto): 16 per group (resnext50 stage 3,
      512 ch, 14x14) 0.92/1.03/0.63 vs 0.18/0.23/0.19 (winograd), 28x28 2.1/5.9/1.3 vs
      0.76/1.65/0.21. Strided backward data runs one stride-1 correlation per input phase (the taps
      that reach it), so it needs no scatter and wins at every group width (3x3 s2, 1 thread, Zen
      4, min ms, direct vs implicit_gemm: 4 per group 112x112 0.67 vs 2.21, 8 per group 56x56 0.52
      vs 1.20, 16 per group 28x28 0.58 vs 0.86, 56x56 0.87 vs 1.38).
    - Dense convolutions with 2-4 input channels (a network's first layer) run the direct
      algorithm's row kernels (register blocks of output channels x output-row vectors over
      phase-split planes), strided or not (the stride-1 forward on one image; batches of small
      images run implicit_gemm, see the rule's comment; 2-D layers with 3 taps per stride phase run
      Winograd as _stem_phase_winograd says, alexnet.conv1 in every pass, YOLOv5s's stem except its
      forward below AVX-512; 7x7 / 2 forwards Winograd along the rows as _stem_row_winograd says;
      3x3 backward data on 4096+ positions im2col: _stem_column_data), except weight gradients of
      kernels over 49 taps (alexnet.conv1 0.70x vs implicit_gemm 0.85-0.95x; resnet50.conv1 1.1x vs
      0.89x on avx512 but 0.50-0.58x vs 0.58-0.65x on avx2). 1 thread, avx512, vs torch, direct vs
      best other (history where rules above took over): resnet50.conv1 forward 1.27-1.39x vs 0.91x,
      backward data 3.5x vs 1.5x; alexnet.conv1 forward 0.88x vs 0.76x, backward data 2.9x vs 1.9x;
      3->32 3x3 s2 224x224: 5.3x/4.8x/2.0x vs 4.3x/3.1x/1.4x; 5x5 s2: 1.30x/3.7x/1.33x vs
      0.80x/1.06x/0.75x; vgg conv1_1 backward data 2.8x vs 1.4x (winograd), weight 1.9x vs 1.0x.
    - fft wins once a kernel is long. 2 threads, median ms (forward / backward data / backward
      weight), fft vs depthwise on 128 channels of 56x56: 9x9 0.70/0.70/0.73 vs 0.50/0.51/1.27,
      13x13 0.82/0.82/0.87 vs 0.96/0.96/2.56, 31x31 (replknet) 1.27/1.35/2.59 vs 6.79/6.72/13.7;
      one channel of 262144 samples: k=129 0.57/0.51/0.77 vs 0.81/0.80/2.74, k=1025 0.81/0.98/ 1.42
      vs 5.84/5.81/20.9. So fft above 128 taps, above 48 for the weight gradient. Dense stride-1
      kernels of 25+ taps, fft vs implicit_gemm (quiet machine): dense5x5 1.15/1.15/1.18 vs
      1.83/1.83/2.42; c3d 3x3x3 3.96/4.20/2.86 vs 4.18/4.15/5.43, so fft for every pass of ranks
      1-2 (2-D weight gradients on small maps excepted: _fft_pays); the 3-D weight gradient once
      ran it too, but implicit GEMM now wins it at AVX-512 (c3d 4.27 vs 4.52, I3D 96->208 8.84 vs
      12.8) and on I3D at AVX2 (15.1 vs 16.0); c3d kept it there (_cpu_volume._fft_3d_at_avx2;
      Winograd over the depth taps now takes 3x3 planes: _depth_winograd). (Under a loaded machine
      fft's many short parallel phases suffer more than one GEMM: dense5x5 forward 2.40 vs 1.93.)
    - winograd (stride 1, 3 taps per dim, 1-D and 2-D; its tile follows the error rule in
      csrc/algo/winograd.cc) at 2 threads, best of 7, ms, winograd vs implicit_gemm: res2.3x3
      0.48/0.49/0.37 vs 0.66/0.69/0.91, res4.3x3 0.65/0.67/0.63 vs 0.77/0.84/0.64, audio.1d.k3
      2.68/2.64/3.54 vs 4.04/3.82/4.65, but res5.3x3 (7x7, 16 output tiles of F(2x2)) 1.42/1.70 vs
      0.92/1.30 forward and data. So winograd from 32 output tiles (its weight gradient picks its
      own implicit_gemm fallback on small images). Since the GEMM reads the weight in place for few
      output columns and backward data transposes it in cache blocks, implicit_gemm wins res4.3x3
      (49 tiles; Xeon AVX-512, 1 thread, interleaved, min ms: forward 2.16 vs 2.81, data 2.44 vs
      3.17; AVX2 7.97 vs 8.78, 4.37 vs 7.03), winograd still res3.3x3 (196 tiles, 2.19 vs 2.49): so
      forward and data from 64 tiles. Re-measured on a 2-core AMD Zen 4 VM (AVX-512, 2 threads,
      median of 10 blocks, ms, after the thread pool's 2 ms poll and the bench's warm-up: before
      them winograd's single parallel stage often ran at one thread's speed): res4.3x3 forward 1.21
      vs 1.56, data 1.27 vs 1.44 (torch 1.12); res5.3x3 (16 tiles) 2.11 vs 1.63; AVX2 res4.3x3 1.37
      vs 1.57, 1.70 vs 1.58 (best 1.30 vs 1.51). So from 32 tiles.
    """
    if not usable("implicit_gemm"):
        return "reference", "the only algorithm in this build"
    p = _Shape.of(problem)
    unit_stride = all(s == 1 for s in p.stride)
    if _stem_row_winograd(p) and usable("winograd"):
        return "winograd", "few input channels, 6-8 taps at stride 2: Winograd along the rows"
    if p.c_per_group == 1:
        # Long kernels: the FFT's cost hardly grows with the kernel, the plane loops' does.
        long_kernel = p.taps > (48 if p.conv_pass == "backward_weight" else 128)
        if unit_stride and long_kernel and usable("fft"):
            return "fft", "one channel per group and a long kernel: tiled FFT, elementwise products"
        if usable("depthwise"):
            return "depthwise", "one input channel per group: direct SIMD loops per channel plane"
    if p.groups > 1 and p.c_per_group <= 16 and usable("direct"):
        return "direct", "few channels per group: direct plane loops beat a GEMM per group"
    if _stem_phase_winograd(p, unit_stride) and usable("winograd"):
        return "winograd", "few input channels, 3 taps per phase: Winograd over the stacked phases"
    if _fft_3d_at_avx2(p, unit_stride) and usable("fft"):
        return "fft", "3-D kernel of 27+ taps on up to 64 channels below AVX-512: tiled FFT"
    if _axis_winograd(p) and usable("winograd"):
        return "winograd", "taps along one axis (3x1x1, 3x1, 1x3) at stride 1: Winograd along it"
    if _line_winograd(p) and usable("winograd"):
        return "winograd", "1x7 / 7x1 at stride 1, batches, 64+ channels: Winograd along the axis"
    if p.groups == 1 and p.c_per_group <= 4 and usable("direct"):
        long_weight = p.conv_pass == "backward_weight" and p.taps > _direct_weight_taps()
        if long_weight:
            # Not the FFT, whose transforms cost more than 3 channels save (AVX2, 2 threads,
            # median ms, implicit_gemm / direct vs fft: 3->64 7x7 224x224 5.27/5.23 vs 11.2,
            # 3->32 7x7 112x112 0.84/0.71 vs 1.39, 1-D k=49 1.71/1.82 vs 3.23, 3->64 3x3x3
            # 16x112x112 14.4/12.1 vs 119).
            return "implicit_gemm", "few input channels, long kernel: one packed GEMM"
        if _stem_column_data(p) and usable("im2col"):
            return "im2col", "few input channels, short kernel: column GEMM over C x taps rows"
        if not unit_stride or p.conv_pass != "forward":
            return "direct", "few input channels: row kernels vectorised along output rows"
        # The stride-1 forward with 2-4 channels fell through to Winograd / the FFT, whose
        # transforms cost more than they save on so few channels: 2 threads, median ms, direct /
        # implicit_gemm / winograd or fft (torch), AVX-512: 3->64 3x3 256x256 3.20/3.27/4.37,
        # 3->64 7x7 224x224 4.61/5.32/4.58 (fft), 3->16 5x5 64x64 0.07/0.11/0.21 (fft), batch 8
        # of 3->64 3x3 32x32 0.22/0.20/0.47; AVX2 2.28/3.18/6.16, 5.24/6.07/10.0, 0.08/0.15/0.22,
        # 0.40/0.32/0.75. Direct on one large image, implicit GEMM on batches of small ones.
        if p.conv_pass == "forward" and p.taps <= 64:
            if p.n == 1 or p.spatial >= 4096:
                return "direct", "few input channels: row kernels vectorised along output rows"
            if usable("implicit_gemm"):
                return "implicit_gemm", "few input channels, small images: one packed GEMM"
    if _upsampling_winograd(p, unit_stride) and usable("winograd"):
        return "winograd", "kernel twice the stride: Winograd F(mxm,2x2) over the stride phases"
    if _dilation_phase_winograd(p, unit_stride) and usable("winograd"):
        return "winograd", "dilated 3x3 at stride 1: Winograd over the dilation phases as images"
    if _five_tap_winograd(p, unit_stride) and usable("winograd"):
        return "winograd", "5x5 at stride 1 on up to 128 channels: Winograd F(2x2,5x5)"
    # Output tiles of F(2x2) where Winograd runs (3 taps per dim, unit stride).
    # (Dilated layers only as _dilation_phase_winograd says.)
    undilated = all(d == 1 for d in p.dilation)
    depth_winograd = _depth_winograd(p, unit_stride)
    winograd = (
        unit_stride
        and undilated
        and (depth_winograd or (len(p.kernel) < 3 and all(k == 3 for k in p.kernel)))
        and usable("winograd")
    )
    tiles = _winograd_tiles(p)
    if _stride2_winograd(p) and usable("winograd"):
        return "winograd", "3x3 / 2 over many channels: Winograd F(2x2,3x3) at stride 2"
    if (why := _direct_first(p)) and usable("direct"):
        return "direct", why
    # (after direct's batch path, which keeps batches of small maps: 32 x 64 ch 12x12 0.47 ms
    # against Winograd's 0.64, 32 x 128 ch 14x14 3.3 against 6.0)
    if _stride2_winograd_weight(p) and usable("winograd"):
        return "winograd", "3x3 / 2 weight gradient, 64+ channels: Winograd F(2x2,3x3) at stride 2"
    if _patch_rows(p) and usable("direct"):
        return "direct", "2x2 / 2 over one large image, few channels: row kernels"
    if _strided_rows(p) and usable("direct"):
        images = "one large image" if p.n == 1 else "large images"
        most = 64 if p.n == 1 and p.conv_pass == "forward" else 32
        cap = ", up to 64 output channels" if p.conv_pass == "forward" else ""  # (_strided_rows)
        units = "AVX2" if _active_isa() == "avx2" else "AVX-512 on 256-bit units"
        if _active_isa() == "avx512" and not _avx512_on_256bit_units():
            units = "AVX-512 on 512-bit units" + cap
        return "direct", f"{images}, 16-{most} input channels, {units}: row kernels"
    if problem.implicit_gemm_strided_panels:
        # Strided forward without a packed phase split (float32: AVX-512, AVX2 batches of small
        # images): column planes of the stride phases read in place, output written in place
        # (csrc/algo/wide_phases.h), or at AVX-512 stride-2 columns gathered from the input on
        # rows of 24+ (forward_double_step, csrc/algo/conv_panels.h). 2 threads, median ms,
        # implicit_gemm (then padded-width phases) vs direct's per-tap path (rows up to 40):
        # res3.3x3s2 0.91-0.92 vs 1.14-1.18 (torch ~1.04); the gather is faster still.
        # One small image on 256-bit units keeps the per-tap path below (_single_image_taps).
        if not (_single_image_taps(p, unit_stride) and usable("direct")):
            return (
                "implicit_gemm",
                "strided: no phase split to pack (column planes in place, stride-2 gather)",
            )
    few_tiles = _full_winograd_vectors(p, tiles) or _winograd_few_tiles(p, tiles)
    small_winograd = tiles <= 128 and not few_tiles
    if _small_image_taps(p, unit_stride) and (not winograd or small_winograd) and usable("direct"):
        return _taps_choice(p, unit_stride, usable)
    if winograd:
        # Below ~32 tiles (a 7x7 image at batch 1) the transforms do not pay.
        if p.conv_pass == "backward_weight" or tiles >= (64 if depth_winograd else 32):
            return "winograd", "3 taps per dim at stride 1: Winograd minimal filtering"
    if unit_stride and p.taps >= 25 and len(p.kernel) < 3 and _fft_pays(p) and usable("fft"):
        return "fft", "kernel of 25+ taps at stride 1: tiled FFT, channel GEMMs per frequency"
    if (
        len(p.kernel) == 3
        and p.taps >= 27
        and unit_stride
        and p.conv_pass == "forward"
        and _active_isa() == "avx512"
        and usable("direct")
    ):
        # 3-D forwards of 27+ taps: with AVX-512's 32 registers the direct row kernels beat the
        # GEMMs' packing of 3-D patches (2 threads, median ms, direct vs implicit_gemm (torch):
        # 64->64 3x3x3 8x28x28 8.0 vs 10.0 (41.9); 96->208 16x14x14 19.6 vs 20.6 (14.3);
        # 128->128 8x28x28 31.1 vs 33.0 (22.8); 64->64 16x56x56 55.5 vs 76.9 (50.0)); at AVX2
        # they lose (12.6 vs 13.0, 29.6 vs 26.2, 53.9 vs 42.4, 97.1 vs 91.6).
        return "direct", "3-D kernel of 27+ taps at AVX-512: row kernels over (channel, tap) terms"
    if _batch_scatter(p) and usable("direct"):
        return "direct", BATCH_TAPS
    if p.conv_pass == "backward_data" and not unit_stride and usable("im2col"):
        # Upsampling (grad_x = stride x grad_y, kernel a multiple of the stride: a transposed
        # convolution's forward such as DCGAN's 4x4 / 2 or U-Net's 2x2 / 2) runs as column GEMM
        # tiles (C/G x taps rows, the weight read in place) gathered plane by plane; a GEMM per
        # stride phase has only C/G rows and packs shifted grad_y rows per phase. 1 thread,
        # avx512, ms, im2col vs implicit_gemm by phases (vs torch): dcgan.g2 11.9 vs 16.5
        # (11.9), g3 11.7 vs 14.0 (11.0), g4 12.4 vs 18.4 (12.1), unet.up2x2 3.7 vs 5.5 (4.8).
        # (Uneven phases on a larger image once stayed by phases, resnet50.res3.3x3s2 3.1 vs 2.7
        # at 1 thread; the parallel column tiles now win those too: below.)
        if all(
            i == s * o and k % s == 0
            for i, s, o, k in zip(p.in_extents, p.stride, p.out_extents, p.kernel)
        ):
            return "im2col", "upsampling backward data: column GEMM tiles gathered by phase"
        # Every other strided backward data: column GEMM tiles too (they once lost to implicit
        # GEMM's phases on larger images, 1 thread; since the tiles run in parallel they win
        # everywhere). 2 threads, median ms, im2col vs implicit_gemm, AVX-512 / AVX2: 3x3 / 2
        # res3 128 ch 56x56 0.70 vs 0.98 / 1.13 vs 1.49 (1 thread 1.37 vs 1.75), 256 ch 28x28
        # 0.74 vs 1.25 / 1.20 vs 1.83, 512 ch 14x14 1.29 vs 2.33 / 1.98 vs 2.95, 64->128
        # 160x160 2.94 vs 4.07 / 4.80 vs 6.26, 256->512 40x40 x8 20.2 vs 23.3 / 35.0 vs 37.8;
        # 1x1 / 2 256->512 56x56 0.69 vs 1.04 / 1.07 vs 1.38; 5x5 / 2 0.98 vs 1.46; 3x3x3 / 2
        # 1.09 vs 1.72; 1-D 3 / 2 2.73 vs 3.33 / 4.31 vs 5.20.
        return "im2col", "strided backward data: column GEMM tiles, col2im per tile"
    # Large images: once one image's input no longer fits L2, implicit panels gather from
    # memory, while im2col's cache-sized column chunks are filled with long row copies and
    # packed by the GEMM's own packers (vgg16.conv1_2, 224x224x64: forward 0.76x vs 0.57x,
    # backward-weight 0.85x vs 0.76x; conv2_2: 0.82x vs 0.72x, 0.91x vs 0.84x). Inputs that
    # fit L2 (res2, 56x56x64) or short kernels (wavenet, k=2) stay on implicit_gemm. Strided
    # forwards stay too: implicit GEMM reads their input split into stride phases (unit-step
    # panel copies; at AVX-512 float32 most of them returned above, gathering stride-2 columns
    # with vector loads), 2 threads, median ms, im2col vs implicit_gemm (torch), AVX-512 / AVX2:
    # yolov5s 64->128 3x3 s2 160x160 5.90/5.04 (4.63), 6.14/5.57 (4.91); 64->128 3x3 s2
    # 112x112 2.91/2.37 (2.23), 2.94/2.61; 32->64 3x3 s2 320x320 8.07/8.41 (5.26), 7.81/7.39.
    input_bytes = p.c_per_group * p.spatial * p.itemsize
    if p.taps >= 9 and input_bytes > (2 << 20) and usable("im2col"):
        # At unit stride: strided weight gradients gather their phase panels faster (64->128
        # 3x3 / 2 160x160: implicit_gemm 3.24 vs im2col 4.03 ms AVX-512, 4.70 vs 5.66 AVX2), and
        # so do dilated ones: on small maps their taps reach far into the padding, which
        # implicit_gemm's weight gradient skips (DeepLabv3's ASPP, 33x33 -> 256 ch, implicit_gemm
        # vs im2col, AVX-512 / AVX2: 512 ch d6 8.8 vs 10.3, 2048 ch d12 30.2 vs 55.4 / 38.3 vs
        # 66.2, d18 21.7 vs 51.7 / 28.2 vs 66.5), and on large ones im2col's columns are longer
        # strided gathers (64 ch 224x224 d2: 17.3 vs 21.6 / 23.4 vs 28.7).
        weight = p.conv_pass == "backward_weight" and undilated
        if unit_stride and (weight or p.conv_pass == "forward"):
            return "im2col", "large image: cache-sized column chunks beat gathering panels"
    if _temporal_columns(p, unit_stride, input_bytes) and usable("im2col"):
        return "im2col", "temporal kernel on large planes below AVX-512: whole-plane column copies"
    # Long 1-D signals with a short kernel once ran im2col (long column copies, then one GEMM;
    # 1 thread it is still ~5% faster forward). Since the GEMM's small-N and packing work,
    # implicit GEMM wins at 2 threads, where im2col's column chunks scale poorly (wavenet.1d.k2d8,
    # Zen 4, median of 5, ms, im2col vs implicit_gemm: AVX-512 forward 1.59/1.43, weight
    # 1.91/1.74, data 1.60/1.44; AVX2 2.59/1.57, 2.84/1.85, 2.12/1.59), so it takes them too.
    return "implicit_gemm", "packed GEMM with panels read straight from the input, no column buffer"
