"""Hostile input where torch and Hydra are involved (issue 13): budgets instead of luck.

- the minimum-input search is bounded (a reshape that pins a 2^20 input walked every size);
- sizes are checked before allocation: `netc.build`, `netc build`, the sweep's jobs and
  measurements refuse a net past the memory limit with E211 (exit 1), never allocate it;
- sweep values are data: spec strings and overrides never reach OmegaConf's resolvers
  (`${oc.env:SECRET}` stays literal), malformed overrides are usage errors (exit 2).

Whatever could blow up runs in a subprocess with a timeout and an address-space cap.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT

from netc.analysis import check_memory, memory_estimate, min_input_size
from netc.compiler import compile_spec
from netc.diagnostics import NetcError

PYTHON = sys.executable
CAP_MB = 3000  # address space of a hostile subprocess: torch needs ~0.7 GB, the bomb 8.6 GB

BOMB = """
net B() {
  input x: [1048576]
  out x >> linear(2048)
}
"""
SMALL = """
net S() {
  input x: [3, 8, 8]
  out x >> conv(4, 3) >> gap >> flatten >> fc: linear(10)
}
"""


def write(tmp_path: Path, text: str, name: str = "net.net") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def run(args, *, cwd=ROOT, env=None, timeout=120, cap_mb=CAP_MB) -> subprocess.CompletedProcess:
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap_mb * 2 ** 20, cap_mb * 2 ** 20))

    env = {**os.environ, "NO_COLOR": "1", "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run([PYTHON, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout, preexec_fn=limit)


# ---- the minimum-input search

def _pinned(tmp_path, layers: int) -> Path:
    chain = "".join(" >> relu" for _ in range(layers))
    return write(tmp_path, f"""
        net M() {{
          input x: [1, 1048576, 1]
          out x{chain} >> reshape([1, 1024, 1024]) >> conv(4, 3)
        }}
    """)


@pytest.mark.parametrize("layers", [0, 200])
def test_min_input_search_is_bounded(tmp_path, layers):
    """Only the declared size is valid below 2^20: the search gives up within its budget
    and says so, instead of trying every size (21 s; over 60 s with 200 layers)."""
    compiled = compile_spec(_pinned(tmp_path, layers))
    assert compiled.ok, compiled.diagnostics
    tic = time.perf_counter()
    found = min_input_size(compiled.graph)
    assert time.perf_counter() - tic < 5
    assert not found.height.searched
    assert found.shape == (1, 1048576, 1)
    assert found.describe().startswith("not searched") and not found.any_size


def test_min_input_unchanged_where_the_search_completes(tmp_path):
    compiled = compile_spec(write(tmp_path, """
        net N() {
          input x: [3, 32, 32]
          out x >> conv(8, 3, padding = 0) >> conv(8, 3, padding = 0) >> conv(8, 3, padding = 0)
        }
    """))
    found = min_input_size(compiled.graph)
    assert found.height.searched and found.describe() == "any size >= 7x7"


# ---- sizes before allocation

def test_memory_estimate_and_check_are_static(tmp_path):
    """torch-free: 2^20 x 2048 parameters are 8 GiB of float32, past the default limit (4 GiB)."""
    graph = compile_spec(write(tmp_path, BOMB)).graph
    estimate = memory_estimate(graph)
    assert estimate.param_bytes == (1048576 * 2048 + 2048) * 4
    with pytest.raises(NetcError) as error:
        check_memory(graph)
    assert error.value.diagnostics[0].code == "E211"
    assert "--limit memory=" in str(error.value)
    check_memory(graph, {"memory": 16 * 2 ** 30})  # raised: fits
    small = compile_spec(write(tmp_path, SMALL, "small.net")).graph
    check_memory(small)
    with pytest.raises(NetcError, match="forward pass at batch 100000000"):
        check_memory(small, batch=100_000_000)
    with pytest.raises(NetcError, match="training step"):
        check_memory(small, {"memory": memory_estimate(small).run_bytes(2) + 1}, batch=2,
                     train=True)


def test_sweep_refuses_a_measurement_past_the_limit(tmp_path):
    from netc.sweep import BENCH_DEFAULTS, _memory_problem

    bomb = compile_spec(write(tmp_path, BOMB)).graph
    small = compile_spec(write(tmp_path, SMALL, "small.net")).graph
    opts = {"artifact": None, "measure": "latency", "bench": dict(BENCH_DEFAULTS)}
    assert _memory_problem(bomb, {**opts, "measure": "none"}) is None  # builds nothing
    assert _memory_problem(bomb, opts).diagnostics[0].code == "E211"
    assert _memory_problem(bomb, {**opts, "measure": "none", "artifact": "py"}) is not None
    assert _memory_problem(small, opts) is None
    big_batch = {**opts, "bench": {**BENCH_DEFAULTS, "batch_size": 10 ** 7}}
    assert "batch 10000000" in str(_memory_problem(small, big_batch))
    tiny = {**opts, "bench": {**BENCH_DEFAULTS, "memory": 1000}}
    assert _memory_problem(small, tiny) is not None


API_SCRIPT = """
import json, sys, time
import torch
import netc
from netc.codegen import emit_module
from netc.compiler import compile_spec
from netc.load import _example_inputs, instantiate
bomb, small, huge_input = sys.argv[1:4]
out = {}
tic = time.perf_counter()
try:
    netc.build(bomb)
except netc.NetcError as error:
    out["build"] = error.diagnostics[0].code
try:
    netc.build(small, limits={"memory": 100})
except netc.NetcError as error:
    out["build_limit"] = error.diagnostics[0].code
# the CLI's path: the size is checked from the graph before the class is made
compiled = compile_spec(bomb)
try:
    instantiate(emit_module(compiled.graph, "bomb"), compiled.graph)
except netc.NetcError as error:
    out["instantiate"] = error.diagnostics[0].code
out["seconds"] = time.perf_counter() - tic
compiled_small = compile_spec(small)
try:
    instantiate(emit_module(compiled_small.graph, "small"), compiled_small.graph, {"memory": 100})
except netc.NetcError as error:
    out["instantiate_limit"] = error.diagnostics[0].code
out["small_params"] = sum(p.numel() for p in netc.build(small).parameters())
examples = _example_inputs(compile_spec(huge_input).graph)
out["fake"] = type(examples[0]).__name__
# VmHWM: this process's peak (ru_maxrss would include the forking pytest's, kept over exec)
status = open("/proc/self/status").read()
out["rss_mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024
print(json.dumps(out))
"""


def test_api_refuses_before_allocating(tmp_path):
    script = write(tmp_path, API_SCRIPT, "script.py")
    huge = write(tmp_path, """
        net H() {
          input x: [3, 25000, 25000]
          out x >> conv(4, 3, 2) >> gap >> flatten
        }
    """, "huge.net")
    result = run([script, write(tmp_path, BOMB, "bomb.net"), write(tmp_path, SMALL, "small.net"),
                  huge])
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["build"] == out["build_limit"] == out["instantiate"] == out["instantiate_limit"] \
        == "E211"
    assert out["seconds"] < 5
    assert out["small_params"] == 4 * 3 * 9 + 4 + 4 * 10 + 10
    assert out["fake"] == "FakeTensor"  # 7.5 GB of example input never allocated
    assert out["rss_mb"] < 1000


def test_cli_build_refuses_a_memory_bomb(tmp_path):
    bomb = write(tmp_path, BOMB, "bomb.net")
    target = tmp_path / "bomb.pt"
    result = run(["-m", "netc", "build", bomb, "-o", target])
    assert result.returncode == 1, result.stderr
    assert "E211" in result.stderr and "Traceback" not in result.stderr
    assert not target.exists()


# ---- sweep values are data

HOSTILE_STRINGS = """
net T(tag = "${oc.env:SECRET_TOKEN}", unset = "${oc.env:UNSET_NETC_VAR}", foo = "${foo}",
      cwd = "${hydra:runtime.cwd}", open = "${oc.env:HOME", c = 4) {
  input x: [3, 8, 8]
  out x >> conv(c, 3) >> dropout(tag)
}
"""


def sweep(*args, cwd, env=None):
    return run(["-m", "netc", "sweep", *args], cwd=cwd, env=env, timeout=120)


def test_spec_strings_are_never_interpolated(tmp_path):
    """The secret in the environment never reaches the table or any file; the strings stay
    literal (dropout(tag) quotes the value it got: the text itself)."""
    spec = write(tmp_path, HOSTILE_STRINGS)
    sweep_dir = tmp_path / "sweep"
    result = sweep(spec, "c=4,8", f"hydra.sweep.dir={sweep_dir}", cwd=tmp_path,
                   env={"SECRET_TOKEN": "hunter2-secret"})
    assert result.returncode == 1, result.stderr  # dropout("...") is invalid, as it should be
    assert "Traceback" not in result.stderr + result.stdout
    assert "hunter2-secret" not in result.stdout + result.stderr
    for path in sweep_dir.rglob("*"):
        if path.is_file() and path.suffix in (".json", ".csv", ".yaml", ".log"):
            assert "hunter2-secret" not in path.read_text(errors="replace"), path
    rows = json.loads((sweep_dir / "results.json").read_text())["rows"]
    assert all("${oc.env:SECRET_TOKEN}" in row["error"] for row in rows)
    for name in ("variants.json", "0/result.json"):
        assert "${oc.env:SECRET_TOKEN}" in (sweep_dir / name).read_text()


def test_overrides_are_data_and_malformed_ones_are_usage_errors(tmp_path):
    spec = write(tmp_path, HOSTILE_STRINGS)
    env = {"SECRET_TOKEN": "hunter2-secret"}
    result = sweep(spec, "tag='\"${oc.env:SECRET_TOKEN}\"'", "--dry-run", cwd=tmp_path, env=env)
    assert result.returncode in (0, 1) and "Traceback" not in result.stderr
    assert "hunter2-secret" not in result.stdout + result.stderr
    for bad in ("~spec", "c=[1,"):
        result = sweep(spec, bad, "--dry-run", cwd=tmp_path, env=env)
        assert result.returncode == 2, (bad, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr and "error" in result.stderr
