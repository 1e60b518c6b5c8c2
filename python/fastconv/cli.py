"""The `fastconv` command: `fastconv info`, `fastconv bench` and `fastconv tune`."""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def _print_info() -> int:
    from . import info

    d = info()
    print(f"fastconv {d['version']} (compiled with {d['compiler']}, Python {d['python']})")
    print(f"cpu: {d['cpu']} [{d['machine']}]")
    print(f"cpu features: {' '.join(d['cpu_features']) or 'none detected'}")
    print(
        f"isa: {d['isa_active']} (detected {d['isa_detected']}, built up to {d['isa_built']}; "
        "cap with FASTCONV_ISA)"
    )
    if d.get("avx512_units"):
        print(
            f"avx512 units: {d['avx512_units']}-bit (detected; FASTCONV_AVX512_UNITS=256|512 "
            "replaces it)"
        )
    caches = d["caches"]
    print(
        f"caches: L1d {caches['l1d'] >> 10} KiB, L2 {caches['l2'] >> 10} KiB, "
        f"L3 {caches['l3_per_core'] >> 10} KiB per core "
        "(detected; FASTCONV_L2_BYTES replaces the L2)"
    )
    print(f"threads: {d['threads']} (FASTCONV_NUM_THREADS or fastconv.set_num_threads)")
    print(f"gemm micro-kernels: {d['gemm_kernels']}")
    print("algorithms:")
    for op, names in d["algorithms"].items():
        print(f"  {op:15s} {', '.join(names)}")
    cuda = d["cuda"]
    print(f"cuda: {'built' if cuda['built'] else 'not built'}; {cuda['status']}")
    if cuda["built"]:
        core = cuda.get("tensor_op_core") or "none (built without CUTLASS's headers)"
        print(f"  architectures: {cuda.get('architectures')}; tensor-op path: {core}")
    for dev in cuda.get("devices", []):
        print(f"  [{dev['index']}] {dev['name']} (sm_{dev['capability'][0]}{dev['capability'][1]})")
    jax_ffi = d["jax_ffi"]
    print(f"fastconv.jax handlers: {jax_ffi or 'not built (no jaxlib headers at build time)'}")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="fastconv", description="fastconv: compiled convolution kernels for Python"
    )
    parser.add_argument("command", choices=["info", "bench", "tune"], help="what to do")
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    if argv[0] == "bench":
        if "--gemm" in argv[1:]:
            from .gemm_benchmark import main as gemm_main

            return gemm_main([a for a in argv[1:] if a != "--gemm"])
        from .benchmark import main as bench_main

        return bench_main(argv[1:])
    if argv[0] == "tune":
        from .benchmark.tune import main as tune_main

        return tune_main(argv[1:])
    args = parser.parse_args(argv[:1])
    if args.command == "info":
        return _print_info()
    return 2


if __name__ == "__main__":
    sys.exit(main())
