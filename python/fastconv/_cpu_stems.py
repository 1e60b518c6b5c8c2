"""The CPU rule's predicates for first layers (2-4 input channels: image and video stems), asked
by _cpu_rule.cpu_rule: which of them run Winograd over their stride phases, im2col's column GEMM,
or the direct row kernels' weight gradient, and for the strided layers after them (one large
image over 16-64 channels at stride 2, 16-32 for the weight gradient: the row kernels; 3x3 / 2
over many channels: Winograd F(2x2,3x3) at stride 2), with the measurements behind each."""

from __future__ import annotations

import math

from ._cpu_shape import _active_isa, _avx512_on_256bit_units, _l2_bytes, _Shape


def _direct_weight_taps() -> int:
    """Largest kernel (taps) whose few-input-channel weight gradient runs the direct row kernels:
    49 at every level. At AVX-512 their weight kernel keeps more taps in flight (a quiet AMD
    Zen 4, 2 threads, median ms, direct vs implicit_gemm: resnet50.conv1 1.75 vs 2.17,
    alexnet.conv1's 121 taps 1.95 vs 1.82, so not past 49). Below it, a Zen 4 and a Xeon capped
    to AVX2 favoured implicit GEMM from 26 taps (conv1 3.11 vs 2.53), but the AVX2 level runs on
    CPUs without AVX-512, and on one (an AVX2-only AMD Zen 3; one process, min / median ms of
    3-5 rounds, direct vs implicit_gemm) the row kernels win: conv1 1.71/2.17 vs 1.86/2.17, at
    batch 4 7.06/10.8 vs 10.2/11.2, 3->24 7x7/2 on 320x320 1.13/1.27 vs 1.72/2.00, R(2+1)D's
    1x7x7 stem 6.26/6.58 vs 7.95/9.62, YOLOv5s's 6x6/2 6.94/7.75 vs 6.70/8.45, C3D's 3x3x3 stem
    16.1/18.3 vs 18.1/18.3, a 1-D k=49 1.94/2.15 vs 2.19/2.20 (a 9x9, 81 taps, 10.5 vs 10.9: not
    measured further, so not taken)."""
    return 49


def _stem_phase_winograd(p: "_Shape", unit_stride: bool) -> bool:
    """Whether a 2-D first layer (2-4 input channels) runs Winograd over its stride phases: with 3
    taps per phase the phase planes of each channel stack into 4 x C (stride 2) or 16+ x C
    (stride 4+) summed channels of a stride-1 3x3 convolution, where the direct row kernels sum
    C x taps terms per output. The transforms' fixed cost needs 2048+ output positions (AVX-512,
    11x11/4, ms: 31x31 outputs 0.046 vs 0.195, 47x47 0.559 vs 0.565). 2 threads, median ms,
    winograd vs the previous auto, AVX-512 / AVX2, since the transforms' vector lane movement
    (csrc/ukernels/winograd/winograd_lanes.h):
    - stride 4+ (alexnet.conv1's 11x11/4, 48 stacked channels), every pass: forward 0.56 vs
      direct 0.69 / 0.79 vs 1.25, backward data 0.81 vs im2col 0.96 / 1.27 vs 1.52, weight
      gradient 0.62 vs implicit_gemm 0.77 / 0.75 vs 1.10.
    - stride 2 (6x6/2, 5x5/2; 12 stacked channels), backward data: YOLOv5s's 640x640 stem 2.89
      vs direct 4.64 / 4.00 vs 5.87, 3->64 224x224 0.73 vs 1.07 / 1.01 vs 1.47, 3->32 112x112
      0.147 vs 0.162 / 0.175 vs 0.198, 5x5/2 224x224 0.37 vs 0.47 / 0.54 vs 0.61; the forward
      only on 65536+ outputs (640x640: 2.15 vs 2.54 / 3.16 vs 3.55; 320x320 0.65 vs 0.61 / 0.94
      vs 0.90 and 5x5/2 416x416 1.04 vs 0.86 / 1.51 vs 1.13 lose), not the weight gradient
      (YOLOv5s 4.20 vs direct 3.76). 9x9/3 was even before the lane movement and is unmeasured
      since; 1-D stems were never measured.
    That stride-2 forward only at AVX-512: the AVX2 figures above are a Xeon capped to AVX2; on
    an AVX2-only AMD Zen 3 (one process, min / median ms of 5 rounds, direct vs winograd) the
    640x640 stem runs 5.05/6.19 vs 6.08/7.45 and 416x416 1.84/2.27 vs 2.37/3.01 (fastconv bench
    --suite networks: direct 1.04x PyTorch, winograd 0.79x)."""
    if unit_stride or p.groups != 1 or p.c_per_group > 4:
        return False
    outputs = p.n * math.prod(p.out_extents)
    if len(p.kernel) != 2 or outputs < 2048:
        return False
    if not all(-(-k // s) == 3 for k, s in zip(p.kernel, p.stride)):
        return False
    if all(s >= 4 for s in p.stride):
        return True
    if not all(s == 2 for s in p.stride):
        return False  # 9x9 / 3: unmeasured since the transforms' vector lane movement
    if p.conv_pass == "backward_data":
        return True
    return p.conv_pass == "forward" and outputs >= 65536 and _active_isa() == "avx512"


def _stem_row_winograd(p: "_Shape") -> bool:
    """Whether a first layer's forward (1-4 input channels, one group; 2-D, or 3-D with a kernel
    depth of 1) runs Winograd along its rows (csrc/algo/winograd_rows.h): 6-8 taps along W at
    stride 2, rows of 48+ outputs. 7x7 / 2 runs F(3,4) on both phases, 6 points per 3 outputs (4
    products per output, channel and kernel row, against the direct row kernels' 7); 6x6 / 2
    F(4,3) (3 against 6: YOLOv5s's stem, and others, as winograd_rows::preferred says).
    2 threads, AMD Zen 4, `fastconv bench --rounds 3`, median ms, winograd vs the previous auto
    (torch), AVX-512 / AVX2: resnet50.conv1 0.92 vs 1.12 (1.14) / 0.97 vs 1.15 (1.21),
    batch 8 8.24 vs 10.2 / 8.12 vs 9.60, R(2+1)D's 1x7x7 stem 3.19 vs 3.69 (4.24) / 3.16 vs 3.80
    (5.24), 3->24 on 320x320 0.88 vs 0.95 / 0.90 vs 0.92, 3->32 on 112x112 0.161 vs 0.176 /
    0.156 vs 0.165, one channel (else the depthwise loops) 1->64 on 224x224 0.53 vs 0.74 (0.49)
    / 0.41 vs 0.78 (0.47). Losing: 16-wide rows (3->64 on 32x32 x8 0.38 vs 0.24) and 1-D
    k=7 / 2 (0.61 vs 0.45); 5x5 / 2 tied and 3x3 / 2 lost (winograd_rows::preferred)."""
    if p.conv_pass != "forward" or p.groups != 1 or p.c_per_group > 4:
        return False
    kernel, stride = p.kernel, p.stride
    if len(kernel) == 3 and kernel[0] != 1:
        return False
    if len(kernel) < 2 or stride[-1] != 2 or not 6 <= kernel[-1] <= 8:
        return False
    return (not p.dilation or p.dilation[-1] == 1) and p.out_extents[-1] >= 48


def _stem_column_data(p: "_Shape") -> bool:
    """Whether a first layer's (2-4 input channels) 2-D backward data with at most 9 taps runs
    im2col: one GEMM of C x taps rows (27 for 3x3) over K, then col2im, where the direct row
    kernels sum K x taps terms per input channel plane. From 4096 input positions (a batch's):
    2 threads, median ms, im2col vs direct, AVX-512 / AVX2: Inception's 3->32 3x3 / 2 299x299
    0.37 vs 0.57 / 0.51 vs 0.68, EfficientNet's 224x224 0.18 vs 0.29 / 0.27 vs 0.38, YOLOv8s
    640x640 1.49 vs 2.04 / 2.10 vs 2.98, U-Net's 3->64 3x3 256x256 1.45 vs 2.42 / 2.08 vs 3.37,
    3->64 3x3 32x32 x4 0.12 vs 0.23 / 0.14 vs 0.24, 3->16 64x64 0.054 vs 0.053 / 0.063 vs 0.060
    (even); one 32x32 image stays direct (0.040 vs 0.030). Longer kernels stay too (resnet50.conv1
    7x7 / 2 1.31 vs 1.27 at AVX-512; YOLOv5s's 6x6 / 2 6.3 vs 4.5 and 8.3 vs 5.8, which runs
    Winograd: _stem_phase_winograd)."""
    if p.conv_pass != "backward_data" or len(p.kernel) != 2 or p.taps > 9:
        return False
    return p.n * p.spatial >= 4096


def _strided_rows(p: "_Shape") -> bool:
    """Whether a strided float32 forward of one large image (output rows past the per-tap path's
    40) over 16-64 input channels (weight gradient, and batches: 16-32) runs the direct row
    kernels over its stride phases instead of implicit GEMM's stride-2 gather: at AVX2 and where
    AVX-512 runs on 256-bit units (AMD's Zen 4), and on 512-bit units (the Intel Xeon) where the
    forward has up to 64 output channels (below). On 256-bit units, 2 threads, calls
    interleaved with PyTorch's in one process, median ms, implicit_gemm vs direct:
    YOLOv5s's 32->64 3x3 / 2 on 320x320 7.18-7.25 vs 6.00-6.31, 64->128 on 160x160 5.83 vs
    5.35, 64->128 on 224x224 11.7 vs 11.3, 64->64 on 224x224 5.92 vs 4.97, on 112x112 2.89 vs
    1.99 (best 1.41 vs 1.25), 16->32 on 224x224 best 1.09 vs 0.81. Not with more channels
    (128->128 on 112x112 5.70 vs 8.37). 3x3 or larger kernels at stride 2, undilated, only: 1x1
    / 2 layers, other strides and dilations were not measured.
    At AVX2 as well (measured on the same Zen 4 capped to AVX2, where implicit GEMM splits the
    stride phases band by band; median of three, ms, implicit_gemm vs direct (torch)): 32->64
    320x320 7.31 vs 7.10 (8.13), 64->128 160x160 6.45 vs 6.52 (7.44), 64->64 224x224 7.04 vs
    6.55 (7.03), 64->64 112x112 2.03 vs 1.68 (2.18), 16->32 224x224 1.42 vs 0.75 (1.21); 128->128
    112x112 6.63 vs 6.81 (7.39) stays out.
    The weight gradient too over 16-32 input channels, since the row kernels' weight gradient
    runs band by band (csrc/algo/direct_rows_weight.cc). 2 threads, interleaved, median of five,
    ms, implicit_gemm vs direct (torch), AVX-512 on 256-bit units: 32->64 320x320 6.46 vs 5.56
    (6.46), 32->64 208x208 3.42 vs 2.72 (2.80), 16->32 224x224 1.07 vs 0.69 (0.81); AVX2 6.81
    vs 6.36 (6.97), 2.71 vs 2.45 (2.74), 0.91 vs 0.75 (0.89). From 64 input channels implicit
    GEMM wins: 64->128 160x160 5.64 vs 5.80, 64->64 112x112 1.57 vs 1.88 (AVX2 6.13 vs 7.21,
    1.45 vs 1.88).
    On 512-bit units (the 2-vCPU Intel Xeon, 2026-12-06) the row kernels' forward blocks came
    out of the issue-slot model with a split 64-byte load counted as four slots
    (csrc/ukernels/rows/rows_impl.h, source_load_slots) and now win there too, up to 64 output
    channels. `benchmarks/ab_processes.py` (two live processes taking turns, 21 rounds, 2
    threads; auto before / auto with this rule, ms): YOLOv5s's 32->64 320x320 forward 7.77 vs
    6.42 and weight gradient 9.38 vs 7.91 (a first run of 15 rounds: 8.15 vs 7.17, 8.50 vs
    8.12), 16->32 224x224 0.98 vs 0.90 and 1.39 vs 1.09, 32->32 5x5 / 2 416x416 21.5 vs 16.2 and
    20.7 vs 16.2, 64->64 224x224 forward 7.82 vs 7.26, 32->64 208x208 4.44 vs 4.44 and 3.82 vs
    3.64. In one process with PyTorch (`fastconv bench --algo implicit_gemm --algo direct`,
    median ms, implicit_gemm vs direct): 64->128 160x160 6.54 vs 7.09 and 224x224 12.6 vs 13.0,
    128->128 112x112 6.74 vs 6.98, so 128 output channels stay on implicit GEMM; the weight
    gradient over 64 input channels too (64->128 160x160 7.46 vs 9.02, 64->64 112x112 2.75 vs
    2.91).
    Batches over 16-32 input channels too (the weight gradient with output rows past 40, the
    forward from rows of 64), measured on the Xeon (ab_processes, auto before / after, 2
    threads, ms; three runs at AVX-512 in a slow, noisy spell, one at AVX2): weight gradient
    32->64 3x3 / 2 on 2 x 160x160 7.2 vs 7.4, 10.8 vs 9.7 (AVX2 8.5 vs 8.2), 4 x 112x112 7.9 vs
    8.4, 16.7 vs 14.0 (12.1 vs 8.8), 16->32 on 8 x 112x112 4.5 vs 3.9, 13.8 vs 5.7 (13.5 vs 6.0),
    32->32 5x5 / 2 on 4 x 96x96 5.6 vs 4.8, 13.9 vs 10.8 (15.0 vs 9.7), 16->32 on 2 x 224x224
    3.6 vs 2.9, 9.9 vs 7.4 (7.1 vs 6.3), 32->64 on 8 x 96x96 7.6 vs 9.1, 18.1 vs 11.4 (26.7 vs
    14.4); the forward on 2 x 160x160 9.2 vs 5.3, 11.8 vs 7.8, 13.7 vs 9.3 (6.4 vs 6.2) and on 2 x
    224x224 2.6 vs 2.2, 6.8 vs 5.8 (10.6 vs 7.4), but on output rows of 48-56 it lost or
    swung (32->64 on 4 x 112x112 5.2 vs 6.8, 10.8 vs 12.7, 14.1 vs 15.3; 16->32 on 8 x 112x112
    3.3 vs 3.6, 9.6 vs 8.9), and 64 input channels at batch 2 stay on implicit GEMM (`fastconv
    bench`, 112x112: forward 3.67 vs 4.04, weight gradient 5.23 vs 5.57)."""
    if p.itemsize != 4 or p.n < 1 or p.groups != 1:
        return False
    if p.conv_pass == "forward":
        most = 64 if p.n == 1 else 32
    elif p.conv_pass == "backward_weight":
        most = 32
    else:
        return False
    if len(p.kernel) != 2 or min(p.kernel) < 3 or not 16 <= p.c_per_group <= most:
        return False
    if p.stride != (2, 2) or any(d != 1 for d in p.dilation):
        return False
    if p.out_extents[-1] <= (40 if p.n == 1 or p.conv_pass != "forward" else 63):
        return False
    isa = _active_isa()
    if isa == "avx2" or (isa == "avx512" and _avx512_on_256bit_units()):
        return True
    return isa == "avx512" and (p.conv_pass == "backward_weight" or p.k_per_group <= 64)


def _few_channel_weight_rows(p: "_Shape") -> bool:
    """Whether `auto` runs a float32 3x3 weight gradient (stride 1 or 2) of a batch of 8+ images
    over 5-16 input channels and up to 32 output channels (16 at stride 1 below AVX-512), on
    maps past 64 outputs (smaller ones take direct's batch path), on direct's row kernels: there
    Winograd's transforms and implicit GEMM's packing cost more than a reduction over 16 x 9
    terms saves (CIFAR ResNets' first stage). 2 threads, Xeon AVX-512, `fastconv bench` medians,
    ms, direct vs the previous auto (torch): 16 ch 32x32 x128 3.11 vs 5.48 (6.26), x32 0.83 vs
    1.38 (0.77), 16x16 x128 1.37 vs 2.13 (0.89), 16->32 32x32 x64 3.15 vs 3.78 (2.92); 3x3 / 2,
    16->32 on 32x32 x128 2.90 vs 3.72 (2.10), x32 0.69 vs 0.95 (0.49). 32 input channels keep
    Winograd (32x32 x32 2.97 vs 2.41, 16x16 x128 4.59 vs 3.24) and implicit GEMM (3x3 / 2 on
    32x32 x32 2.48 vs 2.25). AVX2-both, direct vs winograd / implicit_gemm (torch): 16 ch 32x32
    x128 5.50 vs 6.59 (6.59), x32 1.29 vs 1.58 (1.40), 16x16 x128 1.62 vs 2.05 (1.39); 3x3 / 2
    16->32 x128 4.19 vs 6.55 (3.90), x32 0.99 vs 1.67 (1.07); but 16->32 32x32 x64 4.52 vs 4.28
    (5.05): 16 output channels there."""
    if p.conv_pass != "backward_weight" or p.itemsize != 4 or p.n < 8 or p.groups != 1:
        return False
    if p.kernel != (3, 3) or p.stride not in ((1, 1), (2, 2)) or any(d != 1 for d in p.dilation):
        return False
    most = 16 if p.stride == (1, 1) and _active_isa() != "avx512" else 32  # output channels
    return 5 <= p.c_per_group <= 16 and p.k_per_group <= most and math.prod(p.out_extents) > 64


# L2 from which the stride-2 Winograd forward runs at AVX2 and on 512-bit AVX-512 units too.
_STRIDE2_WINOGRAD_L2_BYTES = 2 << 20


def _stride2_winograd(p: "_Shape") -> bool:
    """Whether a 3x3 / 2 float32 forward runs Winograd F(2x2,3x3) at stride 2 (csrc/algo/
    winograd_stride2.h: 25 products per tile of 2x2 outputs, 6.25 per output against 9), where
    AVX-512 runs on 256-bit units (AMD's Zen 4, where it was measured): 64+ channels on both sides
    (there 32+ input channels since 2026-12-07, below) and tiles that waste little (25 x tiles / (9
    x outputs) <= 0.75: even outputs 0.69, a 35x35 0.73, a 17x17 0.78, a 7x7 0.91). 2 threads, calls
    interleaved with PyTorch's in one process, median of three, ms, winograd vs the previous auto
    (torch), quiet spells: res3 128->128 56x56 0.93-1.01 vs 1.13 (1.13-1.16), YOLOv5s's 256->512
    40x40 3.80 vs 4.47 (4.32) and at batch 8 30.4 vs 36.8 (35.4), 64->128 56x56 0.49 vs 0.61 (0.62),
    128->256 28x28 0.51 vs 0.58 (0.61), 256->256 28x28 1.01 vs 1.09 (1.11), 128->128 28x28 x8 2.01
    vs 2.45 (2.13), 64->64 112x112 1.04 vs 1.17 (1.22), 128->256 80x80 3.90-4.22 vs 4.48-4.58
    (4.32-4.43), Inception's 192->192 71x71 (35x35 out) 3.77 vs 4.10 (3.87); in a slow spell of the
    VM (memory-heavy paths 15-40% slower) res3 1.08-1.29 vs 1.24-1.27 (1.21-1.22), YOLOv5s 4.93 vs
    5.13 (5.19). Not Inception's 288->384 35x35 at padding 0 (17x17 out: 2.57 vs 2.76 quiet,
    3.39-3.67 vs 3.08-3.40 slow), 7x7 outputs (256->512 14x14 0.94 vs 0.60), nor, with whole
    channels-last copies of each image (before the bands below), 32 channels (32->64 320x320 6.14 vs
    4.96) or large maps: past 4096 outputs per image on up to 64 input channels, where the row
    kernels of _strided_rows gained on it (64->64 224x224 6.22 vs 5.35, 64->128 10.4 vs 9.7; 80x80
    outputs tie, 64->128 4.36 vs 4.47), past 2048 on more (128->128 112x112: 4.45-4.72 vs direct
    4.53, implicit_gemm 4.63, torch 4.35; its transformed kernels past half the L2, the points and
    products of a chunk of tiles go through memory).

    At AVX2 (the GEMM's 6-row tiles) it swings with the VM's phase, res3 1.07-2.50 ms
    against the previous auto's 1.31-1.96 (2.05 vs 1.65-1.79, 1.23 vs 1.47-1.55, 2.12 vs
    1.67-1.82 in three runs), and lost on YOLOv5s's 256->512 in every run (6.5-6.7 vs 5.2-5.4),
    in 2026-12-05's rounds; on 2026-12-07 (the kernels' later rounds: transform runs over
    images, wider tile blocks) it won on every one of ten maps at AVX2 there, so it runs at
    both levels on those units: `fastconv bench --suite S --algo auto --algo winograd --passes
    forward --threads 2 --rounds 5` at AVX2-both, ms, winograd vs the previous auto (PyTorch):
    res3 1.02 vs 1.45 (1.35), YOLOv5s's 256->512 40x40 5.21 vs 5.37 (5.69) and at batch 8 32.7
    vs 38.9 (40.3), 64->128 56x56 0.67 vs 0.86 (0.81), 128->256 28x28 0.64 vs 0.72 (0.82),
    256->256 28x28 1.22 vs 1.35 (1.53), 128->128 28x28 x8 2.28 vs 3.00 (2.70), 64->64 112x112
    1.26 vs 1.74 (1.52), 128->256 80x80 4.98 vs 5.82 (5.64), Inception's 192->192 71x71 3.88 vs
    5.04 (4.52). Its weight gradient: _stride2_winograd_weight below.

    Since 2026-12-07 large images whose transformed kernels fit half the L2 run in bands of tile
    rows, each block of tiles filling its own input window from x and moving its outputs into y
    in cache (the whole-image copies went to memory and back); on those units auto then takes
    them past the limits on outputs above, and from 32 input channels (not 16, and 64+ output
    channels still). `fastconv bench --algo auto --algo winograd --passes forward --threads 2
    --rounds 5`, two runs (one for the last five maps), ms, winograd vs the previous auto
    (PyTorch), AVX2-both: YOLOv5s's 32->64 on 320x320 5.50/5.66 vs 6.47/6.62 (5.86/6.12), its
    64->128 on 160x160 5.14/5.19 vs 5.95/5.92 (5.28/5.15), 32->64 160x160 x4 5.56/5.36 vs
    6.73/6.28, 64->64 224x224 5.20/4.93 vs 6.57/6.18, 64->128 224x224 8.86/8.79 vs 11.44/11.25
    (10.03/9.92), 64->64 448x448 20.9 vs 26.4 (38.2), 32->64 112x112 0.63/0.57 vs 0.78/0.71,
    32->64 56x56 0.157 vs 0.197, at batch 8 1.19 vs 1.55 (1.29), 48->96 112x112 1.23 vs 1.56,
    32->128 80x80 0.645 vs 0.854; AVX-512: YOLOv5s's conv1 5.39/5.20 vs 5.37/5.17 (a tie), its
    64->128 4.75/4.33 vs 4.93/4.73, 32->64 160x160 x4 5.37/5.12 vs 5.66/5.22, 64->64 224x224
    5.54/4.52 vs 5.56/4.88, 64->128 224x224 8.98/8.21 vs 10.17/9.32, 64->64 448x448 19.2 vs
    19.7, 32->64 112x112 0.56/0.56 vs 0.62/0.63, 32->64 56x56 0.150 vs 0.181, at batch 8 1.17
    vs 1.49 (1.20), 48->96 1.22 vs 1.33, 32->128 0.563 vs 0.633. Not 16 -> 32 on 224x224 (0.85
    / 0.80 vs 0.79 / 0.64 at AVX2 / AVX-512) nor 32 -> 32 (1.45/1.29 vs 1.34/1.22 at AVX-512),
    nor past the limits where the kernels do not fit (96->96 112x112, staged: 3.30/2.33 vs
    2.93/2.75 at AVX-512), nor under 14x14 outputs per image below 64 input channels: CIFAR
    ResNet's 32->64 16x16 x128 (8x8 outputs, 16 tiles an image) 2.38 / 2.08 vs implicit GEMM's
    1.82 / 1.89 at AVX-512 / AVX2, where on 14x14 (28x28 x32) it ties or wins (1.43 / 1.63 vs
    1.48 / 1.61) and on 20x20 (40x40 x16) wins (1.28 / 1.36 vs 1.52 / 1.68).

    With an L2 of 2 MiB or more (the 2-vCPU Intel Xeon with two 512-bit FMA units, 2026-12-06:
    the transformed kernels of 128 channels each side, 1 MiB, fit half of it, so each thread
    takes its tiles from points to outputs in L2, csrc/algo/winograd_stride2.cc), at AVX-512 on
    512-bit units and at AVX2 alike, it won on every measured map of 400+ outputs over the batch
    up to 56x56 outputs: two runs each, 2 threads, min ms, winograd vs the previous auto
    (PyTorch), AVX-512: res3 1.38-1.48 vs 1.52-1.56 (1.75-1.95), YOLOv5s's 256->512 40x40
    4.48-5.45 vs 4.72-5.72 (6.2-6.7) and at batch 8 33.5-40.5 vs 40.8-48.2 (39.7-44.8), 128->128
    28x28 x8 2.82-3.30 vs 3.07-3.74 (2.90-2.97), 64->64 112x112 1.50-1.78 vs 1.79-2.10 (2.03-
    2.26), Inception's 192->192 71x71 4.15-5.87 vs 4.79-6.25 (4.10-5.18); AVX2 (PyTorch capped
    too): res3 1.95-2.32 vs 2.52-2.95 (2.42-2.62), YOLOv5s 7.3-9.0 vs 8.7-10.6 (8.9-10.9), at batch
    8 62.7-66.9 vs 79.9-86.7 (68.9-74.8), 128->128 28x28 x8 4.36-4.71 vs 5.44-6.39 (4.48-5.12),
    64->64 112x112 2.16-2.18 vs 2.38-2.44 (2.39-2.47), 192->192 71x71 7.5-7.7 vs 9.1-9.3 (7.8-
    8.3). Single images of 14x14 outputs tie with direct's (128->256 28x28: 0.75-0.78 vs
    0.73 at AVX-512), so not under 400 outputs over the batch; the limits above per image
    apply (larger maps not measured there). Off those two CPUs, where the L2 is under 2 MiB, it
    stays off (unmeasured)."""
    if not _stride2_layer(p, "forward", 32):
        return False
    if _active_isa() not in ("avx512", "avx2"):
        return False
    outputs = math.prod(p.out_extents)
    large = outputs > (4096 if p.c_per_group <= 64 else 2048)
    tiles = math.prod((o + 1) // 2 for o in p.out_extents)
    if 25 * tiles > 0.75 * 9 * outputs:
        return False
    if _avx512_on_256bit_units():
        if p.c_per_group < 64 and (outputs < 196 or not _stride2_kernels_fit(p)):
            return False  # under 14x14 outputs too few tiles per image; staged: not measured
        return not large or (_stride2_kernels_fit(p) and _stride2_copies_fit(p))
    return (
        p.c_per_group >= 64
        and not large
        and _l2_bytes() >= _STRIDE2_WINOGRAD_L2_BYTES
        and p.n * outputs >= 400
    )


def _stride2_layer(p: "_Shape", conv_pass: str, least_c: int) -> bool:
    """Whether p is `conv_pass` of a float32, one-group, undilated 3x3 / 2 layer with least_c+
    input and 64+ output channels and no negative padding: where auto's stride-2 Winograd rules
    (above, below) look further."""
    if p.conv_pass != conv_pass or p.itemsize != 4 or p.groups != 1:
        return False
    if p.kernel != (3, 3) or p.stride != (2, 2) or any(d != 1 for d in p.dilation):
        return False
    return p.c_per_group >= least_c and p.k_per_group >= 64 and all(lo >= 0 for lo in p.pad_lo)


def _stride2_winograd_weight(p: "_Shape") -> bool:
    """Whether a 3x3 / 2 float32 weight gradient runs Winograd at stride 2 (csrc/algo/
    winograd_stride2.cc: per point, the tiles' input points times grad_y's summed over the batch
    in 25 GEMMs, folded into the taps): on a CPU with 256-bit AVX-512 units (Zen 4, where
    measured) at AVX-512 and AVX2 alike, 64+ channels each side, 128+ tiles over the batch
    (fewer: the path declines, kStride2WeightMinTiles) and an image's copies within the path's
    limit. 2026-12-07, `fastconv bench --algo auto --algo winograd --passes backward_weight
    --rounds 5`, 2 threads, ms, winograd vs the previous auto (implicit GEMM; PyTorch), AVX-512:
    res3 128->128 56x56 1.05 vs 1.29 (1.26), at batch 8 8.5 vs 10.8 (9.6), 256->512 40x40 x8 32.5
    vs 38.4 (38.8), 64->128 56x56 0.55 vs 0.65 (0.66), 128->128 28x28 x8 2.11 vs 2.91 (2.55),
    64->64 112x112 1.35 vs 1.42 (1.37), 128->256 80x80 4.36 vs 4.78 (5.36), 192->192 71x71 4.06
    vs 4.33 (5.03), 64->128 160x160 5.47 vs 5.58 (5.37), 64->64 224x224 6.66 vs 6.94 (5.77),
    512->512 28x28 x8 34.0 vs 37.6 (40.2), 96->96 112x112 2.71 vs 3.08 (2.88), 256->256 28x28 x8
    8.0 vs 10.1 (9.7); three rounds before, the same within 4%. AVX2-both, `--rounds 3`: res3
    1.17 vs 1.37 (1.43), x8 9.2 vs 11.3 (10.8), 256->512 40x40 x8 32.2 vs 38.1 (43.3), 128->128
    28x28 x8 2.18 vs 2.95 (2.72), 256->256 28x28 x8 8.3 vs 10.0 (10.7), 96->96 112x112 2.74 vs
    3.09 (3.23), the rest 1.00-1.14x but 64->128 160x160, 5.56 vs 5.46 (5.90).
    Earlier rounds had it too unsteady for auto (res3 1.10-2.45 ms from run to run); these were
    steady, and it kept its lead with another process busy on one of the two cores (res3 1.17 vs
    1.31, x8 18.9 vs 22.1) or streaming 256 MB copies there (1.15 vs 1.35, x8 16.3 vs 23.5). Two
    slow spells of the VM did turn it: right after a CI run res3 2.2-3.2 vs 1.40-1.49 and x8
    14.8-16.7 vs 11.6 over five processes at AVX-512, back to 1.04 vs 1.28 ten minutes later;
    and one AVX2 run (x8 14.9 vs 11.9, 96->96 112x112 4.9 vs 3.3), 9.2 vs 11.4 and 2.7 vs 3.0
    when rerun (its 19 MB workspace - the padded input copy, the tiles' points - against
    implicit GEMM's in-cache panels; the cause is not known: no co-running load reproduced it).
    Not with 32 input channels (YOLOv5s's 32->64 320x320 8.6 vs the row kernels' 6.1, CIFAR
    ResNet's 32->64 16x16 x128 2.8 vs 2.2), nor off those units (unmeasured). Direct's batch path
    for small maps comes first (_cpu_rule: 32 x 64 ch 12x12, 6x6 outputs, 0.47 vs 0.64)."""
    if not _stride2_layer(p, "backward_weight", 64):
        return False
    if _active_isa() not in ("avx512", "avx2") or not _avx512_on_256bit_units():
        return False
    tiles = p.n * math.prod((o + 1) // 2 for o in p.out_extents)
    return tiles >= 128 and _stride2_copies_fit(p)


def _stride2_kernels_fit(p: "_Shape") -> bool:
    """Whether the stride-2 Winograd forward's transformed kernels (16 points per kernel, in
    panels of the GEMM's 32 output channels at AVX-512, 16 at AVX2) fit half the L2: its fused
    schedule, which runs large images in bands of tile rows (csrc/algo/winograd_stride2.cc,
    Layout::banded)."""
    nr = 32 if _active_isa() == "avx512" else 16
    panels_k = -(-p.k_per_group // nr) * nr
    return 16 * p.c_per_group * panels_k * p.itemsize <= _l2_bytes() // 2


def _stride2_copies_fit(p: "_Shape") -> bool:
    """Whether an image's padded input and output copies stay within kStride2MaxImageElems
    (csrc/algo/winograd_stride2.h), which the path checks whatever its schedule: past it
    Winograd runs the stacked stride phases instead (64->64 on 512x512 and up)."""
    tiles_h, tiles_w = ((o + 1) // 2 for o in p.out_extents)
    outputs = math.prod(p.out_extents)
    copies = (4 * tiles_h + 1) * (4 * tiles_w + 1) * p.c_per_group + outputs * p.k_per_group
    return copies <= 16 << 20
