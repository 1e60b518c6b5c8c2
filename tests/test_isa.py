"""Every FASTCONV_ISA level (one subprocess each) and every algorithm match the oracle."""

from __future__ import annotations

import json
import math
import textwrap

import numpy as np
import reference as ref
from conftest import ISA_LEVELS, assert_close, rand, run_with_isa

# (name, op, x_shape, w_shape, kwargs): shapes that steer selection to each algorithm family
CASES = [
    ("winograd3x3", "conv", (2, 8, 12, 12), (8, 8, 3, 3), dict(padding=1)),
    ("pointwise", "conv", (1, 16, 7, 9), (8, 16, 1, 1), dict()),
    ("depthwise", "conv", (2, 8, 10, 11), (8, 1, 3, 3), dict(padding="same", groups=8)),
    ("depthwise_s2", "conv", (1, 6, 11, 9), (12, 1, 3, 3), dict(stride=2, padding=1, groups=6)),
    ("large_kernel", "conv", (1, 3, 12, 12), (4, 3, 7, 7), dict(padding=3)),
    ("long_1d", "conv", (2, 3, 200), (4, 3, 9), dict(padding="same")),
    ("conv3d", "conv", (1, 4, 6, 5, 6), (5, 4, 3, 3, 3), dict(padding=1, mode="conv")),
    (
        "awkward",
        "conv",
        (1, 23, 5, 6),
        (19, 23, 3, 3),
        dict(stride=(2, 1), dilation=(1, 2), padding=2),
    ),
    ("bwd_data", "conv_backward_data", (2, 8, 12, 12), (8, 8, 3, 3), dict(padding=1)),
    ("bwd_weight", "conv_backward_weight", (2, 8, 12, 12), (8, 8, 3, 3), dict(padding=1)),
    (
        "bwd_data_dw",
        "conv_backward_data",
        (2, 8, 10, 11),
        (8, 1, 3, 3),
        dict(stride=2, padding=1, groups=8),
    ),
    (
        "bwd_weight_dw",
        "conv_backward_weight",
        (2, 6, 9, 70),
        (12, 1, 3, 3),
        dict(padding=(1, 2), groups=6, mode="conv"),
    ),
    (
        "bwd_data_dw_s1",
        "conv_backward_data",
        (1, 4, 9, 40),
        (8, 1, 5, 5),
        dict(padding=2, groups=4),
    ),
    # few input channels: the direct algorithm's row kernels (rows wider than one block)
    ("stem_s2", "conv", (2, 3, 11, 150), (20, 3, 7, 7), dict(stride=2, padding=3)),
    ("stem_bwd_data", "conv_backward_data", (1, 3, 13, 70), (13, 3, 5, 5), dict(stride=(2, 3))),
    (
        "stem_bwd_weight",
        "conv_backward_weight",
        (2, 4, 9, 41),
        (9, 4, 3, 3),
        dict(stride=2, padding=1, mode="conv"),
    ),
    ("wide_s2", "conv", (1, 60, 9, 13), (20, 60, 3, 3), dict(stride=2, padding=1)),
    ("transpose", "conv_transpose", (2, 8, 6, 7), (8, 5, 4, 4), dict(stride=2, padding=1)),
    # upsampling by column tiles gathered plane by plane (whole images, bands of k == s), a
    # strided conv whose backward data runs in bands of grad_y lines, a strided weight gradient
    ("upsample_k4s2", "conv_transpose", (3, 8, 6, 5), (8, 24, 4, 4), dict(stride=2, padding=1)),
    ("upsample_k2s2_bands", "conv_transpose", (1, 16, 30, 70), (16, 24, 2, 2), dict(stride=2)),
    (
        "strided_bwd_data_bands",
        "conv_backward_data",
        (1, 64, 96, 100),
        (12, 64, 3, 3),
        dict(stride=2, padding=1),
    ),
    (
        "strided_bwd_weight",
        "conv_backward_weight",
        (2, 8, 10, 12),
        (6, 8, 4, 4),
        dict(stride=2, padding=1),
    ),
    # 16+ taps and channels: the weight gradient's channels-last columns (20 channels: panel
    # rows spanning two taps; the transposes' register tiles and their edges)
    (
        "bwd_weight_channels_last",
        "conv_backward_weight",
        (3, 20, 9, 10),
        (6, 20, 4, 4),
        dict(stride=2, padding=1),
    ),
    # output rows wider than the panels: implicit GEMM's interior panels read in place
    ("in_place_rows", "conv", (1, 8, 5, 100), (8, 8, 3, 3), dict(padding=1)),
    ("in_place_rows_bwd", "conv_backward_data", (1, 8, 5, 100), (8, 8, 3, 3), dict(padding=1)),
    # strided: interior panels of the stride-phase planes (forward) and of grad_y (phases of
    # backward data) read in place
    ("in_place_phases", "conv", (1, 8, 7, 140), (8, 8, 3, 3), dict(stride=2, padding=1)),
    (
        "in_place_phases_bwd",
        "conv_backward_data",
        (1, 8, 10, 140),
        (8, 8, 4, 4),
        dict(stride=2, padding=1),
    ),
    # channels-last depthwise (small planes): row segments of 8 + 8 + 3 outputs, 20 channels
    # (a masked channel tail at every vector width), a 5x5 kernel, and its weight gradient
    ("dw_channels_last", "conv", (2, 20, 19, 19), (20, 1, 3, 3), dict(padding=1, groups=20)),
    ("dw_channels_last_5x5", "conv", (1, 20, 7, 9), (20, 1, 5, 5), dict(padding=2, groups=20)),
    (
        "dw_channels_last_weight",
        "conv_backward_weight",
        (2, 20, 7, 9),
        (20, 1, 5, 5),
        dict(padding=2, groups=20),
    ),
    # padding-heavy weight gradient: one GEMM per tap over its box, A packed by a source
    (
        "box_weight",
        "conv_backward_weight",
        (2, 16, 12, 12),
        (16, 16, 3, 3),
        dict(padding=3, dilation=3),
    ),
    ("max_pool", "max_pool", (2, 8, 11, 12), None, dict(kernel_size=3, stride=2, padding=1)),
    (
        "avg_pool",
        "avg_pool",
        (2, 8, 11, 12),
        None,
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
    ),
]
DTYPES = {"f32": np.float32, "f64": np.float64}

CHILD = textwrap.dedent("""
    import json
    import numpy as np
    import fastconv
    cases = json.loads(open(SPEC).read())
    data = np.load(INPUTS)
    results = {}
    notes = {}
    ALGO_OP = {"conv": "conv", "conv_backward_data": "conv", "conv_backward_weight": "conv",
               "conv_transpose": "conv_transpose"}
    for name, op, x_shape, w_shape, kw in cases:
        for dt in ("f32", "f64"):
            a, b = data[f"{name}-{dt}-a"], data[f"{name}-{dt}-b"]
            fn = getattr(fastconv, op)
            algos = ["auto"] + fastconv.algorithms(ALGO_OP[op]) if op in ALGO_OP else [None]
            for algo in algos:
                key = f"{name}-{dt}-{algo}"
                extra = {} if algo is None else {"algo": algo}
                try:
                    if op == "conv_backward_data":
                        out = fn(a, b, tuple(x_shape), **kw, **extra)
                    elif op == "conv_backward_weight":
                        out = fn(a, b, tuple(w_shape), **kw, **extra)
                    elif op in ("max_pool", "avg_pool"):
                        out = fn(a, **kw)
                    else:
                        out = fn(a, b, **kw, **extra)
                except NotImplementedError as e:  # a forced algorithm may decline, naming itself
                    notes[key] = str(e)
                    continue
                results[key] = out
    np.savez(OUTPUTS, **results)
    open(NOTES, "w").write(json.dumps(notes))
""")


def _inputs(rng):
    """Per case and dtype: the two array arguments and the float64 oracle result."""
    arrays, oracle = {}, {}
    for name, op, x_shape, w_shape, kw in CASES:
        for dt, dtype in DTYPES.items():
            x = rand(rng, x_shape, dtype)
            if op == "conv":
                w = rand(rng, w_shape, dtype)
                a, b, want = x, w, ref.conv(x, w, **kw)
            elif op == "conv_backward_data":
                w = rand(rng, w_shape, dtype)
                gy = rand(rng, ref.conv(x, w, **kw).shape, dtype)
                a, b, want = gy, w, ref.conv_backward_data(gy, w, x_shape, **kw)
            elif op == "conv_backward_weight":
                gy = rand(rng, ref.conv(x, np.zeros(w_shape), **kw).shape, dtype)
                a, b, want = x, gy, ref.conv_backward_weight(x, gy, w_shape, **kw)
            elif op == "conv_transpose":
                w = rand(rng, w_shape, dtype)
                a, b, want = x, w, ref.conv_transpose(x, w, **kw)
            else:
                pool_kw = dict(kw)
                k = pool_kw.pop("kernel_size")
                a, b = x, np.zeros(1, dtype)
                want = (
                    ref.max_pool(x, k, **pool_kw)[0]
                    if op == "max_pool"
                    else ref.avg_pool(x, k, **pool_kw)
                )
            arrays[f"{name}-{dt}-a"], arrays[f"{name}-{dt}-b"] = a, b
            oracle[(name, dt)] = want
    return arrays, oracle


def _reduction(op, x_shape, w_shape, want):
    if op in ("conv", "conv_transpose"):
        return math.prod(w_shape[1:]) * (w_shape[0] if op == "conv_transpose" else 1)
    if op == "conv_backward_data":
        return w_shape[0] * math.prod(w_shape[2:])
    if op == "conv_backward_weight":
        return x_shape[0] * math.prod(want.shape[2:])
    return 9


def test_every_isa_level_matches_oracle(isa, rng, tmp_path):
    arrays, oracle = _inputs(rng)
    np.savez(tmp_path / "inputs.npz", **arrays)
    (tmp_path / "spec.json").write_text(json.dumps(CASES))
    paths = {
        k: repr(str(tmp_path / f))
        for k, f in dict(
            SPEC="spec.json", INPUTS="inputs.npz", OUTPUTS="out.npz", NOTES="notes.json"
        ).items()
    }
    code = "\n".join(f"{k} = {v}" for k, v in paths.items()) + CHILD
    run_with_isa(code, isa)
    got = np.load(tmp_path / "out.npz")
    notes = json.loads((tmp_path / "notes.json").read_text())
    for key, msg in notes.items():
        algo = key.rsplit("-", 1)[1]
        assert algo not in ("auto", "reference"), (
            f"{key}: {msg}"
        )  # auto and reference serve everything
        assert algo in msg, f"NotImplementedError for {key} does not name the algorithm: {msg!r}"
    checked = 0
    for name, op, x_shape, w_shape, _ in CASES:
        for dt, dtype in DTYPES.items():
            want = oracle[(name, dt)]
            keys = [k for k in got.files if k.startswith(f"{name}-{dt}-")]
            assert keys, f"no result for {name}-{dt}"
            for key in keys:
                y = got[key]
                assert y.dtype == dtype, key
                if op == "max_pool":
                    np.testing.assert_array_equal(y, want, err_msg=key)
                else:
                    assert_close(
                        y, want, reduction=_reduction(op, x_shape, w_shape, want), err_msg=key
                    )
                checked += 1
    assert checked >= 2 * len(CASES)


FALLBACK_CHILD = textwrap.dedent("""
    import json
    import numpy as np
    import fastconv
    import reference as ref
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 8, 12, 12)).astype(np.float32)
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    gemm_w = rng.standard_normal((16, 8, 1, 1)).astype(np.float32)
    for got, want in ((fastconv.conv(x, w, padding=1), ref.conv(x, w, padding=1)),
                      (fastconv.conv(x, gemm_w), ref.conv(x, gemm_w))):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    info = fastconv.info()
    levels = {k: info[k] for k in ("isa_active", "isa_detected", "isa_built")}
    print(json.dumps(dict(levels, kernels=info["gemm_kernels"].split(", "))))
""")


def test_each_requested_level_runs_or_falls_back():
    """FASTCONV_ISA=<level> runs that level where the CPU has it and the build compiled it, else
    the highest level below it that both have (avx2 on a CPU without AVX-512 or in a
    FASTCONV_AVX512=OFF build), and the convolutions stay right either way."""
    rank = {"scalar": 0, "avx2": 1, "avx512": 2}
    for requested in ISA_LEVELS:
        levels = json.loads(run_with_isa(FALLBACK_CHILD, requested).stdout)
        top = min(levels["isa_detected"], levels["isa_built"], key=rank.__getitem__)
        want = min(requested, top, key=rank.__getitem__)
        assert levels["isa_active"] == want, (requested, levels)
        # the reported level is the one whose kernels run
        assert levels["kernels"] and all(k.endswith(f"_{want}") for k in levels["kernels"]), levels


def test_avx512_units_detected_and_replaced_by_the_environment():
    """info()["avx512_units"]: 256 where the CPU is AMD family 0x19 with AVX-512 (Zen 4), 512
    on other AVX-512 CPUs, None without AVX-512; FASTCONV_AVX512_UNITS=256|512 replaces the
    detection, other values are ignored. cpu_info() reports CPUID's display family and model."""
    import fastconv
    from conftest import FastconvProcess
    from fastconv import _C

    cpu = _C.cpu_info()
    assert isinstance(cpu["family"], int) and isinstance(cpu["model"], int)
    has_avx512 = cpu["detected_isa"] == "avx512"
    zen4 = cpu["vendor"] == "AuthenticAMD" and cpu["family"] == 0x19
    if cpu["vendor"] in ("AuthenticAMD", "GenuineIntel"):
        assert cpu["family"] >= 6, cpu  # every x86-64 CPU of both vendors
    detected = (256 if zen4 else 512) if has_avx512 else None
    assert fastconv.info()["avx512_units"] in (detected, 256, 512)  # the env may set it here
    settings = (("", detected), ("256", 256), (" 256 ", 256), ("512", 512), ("wide", detected))
    for setting, want in settings:
        with FastconvProcess({"FASTCONV_AVX512_UNITS": setting}) as fc:  # "": as if unset
            assert fc.info()["avx512_units"] == (want if has_avx512 else None), setting
