"""`fastconv bench --peer jax`: XLA's convolution and pooling as a peer on every op and pass of
the tiny test suite; its results agree with fastconv's (the driver flags mismatches)."""

from __future__ import annotations

from pathlib import Path

import pytest

jax = pytest.importorskip("jax", reason="jax is not installed (pip install 'fastconv[jax]')")

from test_benchmark import ALL_PASSES, TINY_SUITE, run_json, write_suite  # noqa: E402


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_jax_peer_runs_every_pass_and_agrees(tmp_path: Path, dtype: str) -> None:
    suite = write_suite(tmp_path, TINY_SUITE)
    # fastconv's reference algorithm only (its other algorithms have their own bench tests): the
    # jax rows are what is checked here, against torch's outputs
    args = ["--suite", str(suite), *ALL_PASSES, "--peer", "jax", "--dtype", dtype]
    args += ["--algo", "reference"]
    code, data = run_json(args, tmp_path)
    assert code == 0
    layers = {layer["name"]: layer for layer in data["layers"]}
    for name, layer in layers.items():
        if layer["op"] == "max_pool" and any(d != 1 for d in layer.get("dilation", [1])):
            continue  # lax has no VJP for a dilated max window: no jax row
        passes = ["forward", "backward_data"]
        passes += [] if layer["op"].endswith("pool") else ["backward_weight"]
        for pass_ in passes:
            rows = [r for r in data["rows"] if r["layer"] == name and r["pass"] == pass_]
            jax_rows = [r for r in rows if r["candidate"] == "jax"]
            assert len(jax_rows) == 1 and jax_rows[0]["kind"] == "peer", (name, pass_)
            assert jax_rows[0]["status"] == "ok", jax_rows[0]
            assert jax_rows[0]["max_rel_err"] is not None, jax_rows[0]  # compared, not just run
    for row in data["rows"]:
        assert row["status"] in ("ok", "unsupported"), row
