"""The pool of large host outputs (fastconv/_host_memory.py): an output's memory is reused only
after every array and tensor over it is gone, never beyond the limit, and results stay right."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import fastconv
import numpy as np
import pytest
from conftest import requires_torch, torch
from fastconv._host_memory import OutputPool, _parse_bytes

MIB = 1 << 20


def _address(a):  # not a.ctypes.data: its object can sit in a reference cycle, holding `a`
    return a.__array_interface__["data"][0]


def test_small_outputs_are_plain_arrays():
    pool = OutputPool(limit=64 * MIB, min_bytes=MIB)
    a = pool.empty((16, 16), np.float32)
    assert a.flags.owndata and pool.held() == (0, 0)


def test_block_reused_only_when_no_view_is_left():
    pool = OutputPool(limit=64 * MIB, min_bytes=MIB)
    a = pool.empty((2, MIB // 4), np.float32)  # 2 MiB
    assert _address(a) % 64 == 0 and a.shape == (2, MIB // 4) and a.dtype == np.float32
    b = pool.empty((2, MIB // 4), np.float32)
    assert not np.shares_memory(a, b)  # a is alive: a second block
    view = a[1]
    address = _address(a)
    del a
    c = pool.empty((2, MIB // 4), np.float32)
    assert not np.shares_memory(c, view)  # a's block is still referenced by `view`
    del view
    d = pool.empty((MIB // 8,), np.float64)  # same size in bytes, another dtype and shape
    assert _address(d) == address
    assert pool.held() == (3 * (2 * MIB + 64), 0)
    del b, c, d
    assert pool.held() == (3 * (2 * MIB + 64), 3 * (2 * MIB + 64))
    assert pool.release() == 3 * (2 * MIB + 64) and pool.held() == (0, 0)


def test_limit_is_respected_and_idle_blocks_make_room():
    pool = OutputPool(limit=5 * MIB, min_bytes=MIB)
    a = pool.empty((2 * MIB,), np.uint8)
    b = pool.empty((2 * MIB,), np.uint8)
    c = pool.empty((2 * MIB,), np.uint8)  # over the limit with a and b alive: not pooled
    assert c.flags.owndata and pool.held()[0] == 2 * (2 * MIB + 64)
    del a
    d = pool.empty((4 * MIB,), np.uint8)  # a's idle block is freed to make room? not enough
    assert d.flags.owndata
    del b, c
    e = pool.empty((4 * MIB,), np.uint8)  # both idle blocks go, a 4 MiB block comes
    assert not e.flags.owndata and pool.held() == (4 * MIB + 64, 0)
    assert OutputPool(limit=0).empty((64 * MIB,), np.uint8).flags.owndata


def test_threads_never_share_a_block():
    pool = OutputPool(limit=256 * MIB, min_bytes=MIB)
    seen, errors = [], []

    def work(tid):
        for i in range(50):
            a = pool.empty((MIB,), np.uint8)
            a.fill(tid)
            if not (a == tid).all():
                errors.append((tid, i))
            seen.append(a.nbytes)
            del a

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(seen) == 200
    assert pool.held()[0] <= 4 * (2 * MIB + 64)  # at most one block per thread in flight


@requires_torch
def test_torch_tensor_keeps_its_block(rng):
    x = rng.standard_normal((8, 64, 128, 128)).astype(np.float32)  # 32 MiB output: pooled
    w = rng.standard_normal((64, 64, 1, 1)).astype(np.float32)
    y = fastconv.conv(torch.from_numpy(x), torch.from_numpy(w))
    expected = y.clone()
    for _ in range(3):
        other = fastconv.conv(torch.from_numpy(x), torch.from_numpy(2 * w))
        assert other.data_ptr() != y.data_ptr()
        del other
    assert torch.equal(y, expected)


def test_outputs_stay_right_across_reuse(rng):
    x = rng.standard_normal((8, 64, 128, 128)).astype(np.float32)
    w1 = rng.standard_normal((64, 64, 1, 1)).astype(np.float32)
    first = fastconv.conv(x, w1)
    expected = np.einsum("nchw,kc->nkhw", x.astype(np.float64), w1[:, :, 0, 0].astype(np.float64))
    np.testing.assert_allclose(first, expected, rtol=1e-4, atol=1e-3)
    keep = first.copy()
    for i in range(3):  # dropped each round: the next output reuses its block
        y = fastconv.conv(x, w1 * (i + 2))
        np.testing.assert_allclose(y, expected * (i + 2), rtol=1e-4, atol=1e-3 * (i + 2))
        del y
    np.testing.assert_array_equal(first, keep)
    assert fastconv.empty_cache() >= 0


@pytest.mark.parametrize(
    "text,value", [("0", 0), ("123", 123), ("4k", 4096), ("2M", 2 * MIB), ("1G", 1 << 30)]
)
def test_parse_bytes(text, value):
    assert _parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "x", "-1", "1.5G", "M"])
def test_parse_bytes_rejects(text):
    with pytest.raises(ValueError):
        _parse_bytes(text)


def test_environment_limit():
    code = (
        "import fastconv._host_memory as m; print(m.POOL.limit); "
        "import numpy as np; a = m.POOL.empty((64 << 20,), np.uint8); print(a.flags.owndata)"
    )
    for env, limit, owns in (("0", 0, True), ("128M", 128 * MIB, False), ("bad", None, False)):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "FASTCONV_OUTPUT_CACHE": env},
            capture_output=True,
            text=True,
            check=True,
        )
        lines = out.stdout.split()
        if limit is not None:
            assert int(lines[0]) == limit
        else:
            assert "ignoring FASTCONV_OUTPUT_CACHE" in out.stderr
        assert lines[1] == str(owns)
