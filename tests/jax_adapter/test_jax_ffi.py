"""The XLA FFI layer itself: the handlers turn bad calls into XLA errors with fastconv's message
(never a crash), and the import refuses a jaxlib other than the one the handlers were built for."""

from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax", reason="jax is not installed (pip install 'fastconv[jax]')")

import jax.numpy as jnp  # noqa: E402
from fastconv.jax import _targets  # noqa: E402
from fcj_testing import fcj  # noqa: E402, F401 - registers the targets


def _conv_call(result_shape, dtype=np.float32, **overrides):
    attrs = dict(
        op="conv",
        pass_="forward",
        algo="direct",
        gpu_algo="implicit_gemm_simt",
        stride=np.array([1, 1], np.int64),
        pad_lo=np.array([0, 0], np.int64),
        pad_hi=np.array([0, 0], np.int64),
        dilation=np.array([1, 1], np.int64),
        output_padding=np.array([0, 0], np.int64),
        groups=np.int64(1),
    )
    attrs.update(overrides)
    call = jax.ffi.ffi_call(
        _targets.CONV_TARGET, jax.ShapeDtypeStruct(result_shape, dtype), vmap_method="sequential"
    )
    return lambda *operands: call(*operands, **attrs)


def test_handler_runs_the_resolved_geometry():
    x = jnp.ones((1, 2, 5, 5), jnp.float32)
    w = jnp.ones((3, 2, 3, 3), jnp.float32)
    y = jax.jit(_conv_call((1, 3, 3, 3)))(x, w)
    np.testing.assert_array_equal(np.asarray(y), np.full((1, 3, 3, 3), 18.0, np.float32))


@pytest.mark.parametrize(
    "result_shape, dtype, overrides, operands, message",
    [
        ((1, 3, 4, 4), np.float32, {}, "float32", "y must have shape"),
        ((1, 3, 3, 3), np.float32, dict(algo="fastest"), "float32", "algo"),
        ((1, 3, 3, 3), np.float32, dict(op="deconv"), "float32", "op must be"),
        ((1, 3, 3, 3), np.float32, dict(groups=np.int64(2)), "float32", "groups"),
        ((1, 3, 3, 3), np.int32, {}, "int32", "float32 or float64"),
        ((1, 3, 1, 1), np.float32, dict(algo="winograd", stride=np.array([3, 3], np.int64)),
         "float32", "UNIMPLEMENTED.*winograd"),
    ],
    ids=["shape", "algo", "op", "groups", "dtype", "unsupported"],
)  # fmt: skip
def test_handler_errors_are_xla_errors_with_the_reason(
    result_shape, dtype, overrides, operands, message
):
    x = jnp.ones((1, 2, 5, 5), operands)
    w = jnp.ones((3, 2, 3, 3), operands)
    with pytest.raises(Exception, match=message) as info:
        jax.block_until_ready(jax.jit(_conv_call(result_shape, dtype, **overrides))(x, w))
    assert "fastconv " in str(info.value)


def test_import_refuses_another_jaxlib(monkeypatch):
    version, (major, minor) = _targets.built_for()
    monkeypatch.setattr(_targets.jaxlib, "__version__", "0.0.1")
    with pytest.raises(ImportError) as info:
        _targets.check_jaxlib()
    text = str(info.value)
    assert f"jaxlib {version}" in text and "jaxlib 0.0.1" in text
    assert f"XLA FFI API {major}.{minor}" in text


def test_import_without_handlers_says_why(monkeypatch):
    monkeypatch.delattr(_targets._C, "jax_ffi_built_for")
    with pytest.raises(ImportError, match="no XLA FFI handlers"):
        _targets.built_for()


def test_info_names_the_jaxlib_the_handlers_were_built_for():
    import fastconv

    version, _ = _targets.built_for()
    assert fastconv.info()["jax_ffi"].startswith(f"jaxlib {version} (XLA FFI API ")
