"""fastnn bench: runs the suite's cases, reports speed-up and error, saves JSON/Markdown/PNG, compares."""
import json

import pytest

from fastnn import bench
from fastnn.cli import main


def test_bench_quick_kernels_only(tmp_path, capsys):
    out = tmp_path / "run1"
    code = main(["bench", "--quick", "--no-epochs", "--min-time", "0.01", "--backends", "numpy",
                 "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "| matmul blas 128x784->256 float32 | numpy |" in text
    data = json.loads((out / "bench.json").read_text())
    groups = {r["group"] for r in data["records"]}
    assert any(g.startswith("propagate_delta") for g in groups) and any(g.startswith("dropout") for g in groups)
    assert all(r["speedup"] == 1.0 and r["max_rel_err"] == 0.0 for r in data["records"])
    assert (out / "bench.md").read_text().startswith("Measured")
    assert (out / "bench.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_flags_regressions(tmp_path):
    rec = bench.Record("matmul x", "numba", median_s=2.0, iqr_s=0.0, rounds=3, first_call_s=0.0)
    base = tmp_path / "old.json"
    base.write_text(json.dumps({"records": [{"group": "matmul x", "backend": "numba", "median_s": 1.0}]}))
    flagged = bench.compare([rec], base, threshold=0.25)
    assert len(flagged) == 1 and "2.00x slower" in flagged[0]
    rec.median_s = 1.1
    assert bench.compare([rec], base, threshold=0.25) == []
    with pytest.raises(ValueError, match="cannot read the baseline"):
        bench.compare([rec], tmp_path / "missing.json")


def test_bench_rejects_unknown_backend(capsys):
    assert main(["bench", "--backends", "fortran", "--no-epochs"]) == 2
    assert "backend 'fortran' is unknown" in capsys.readouterr().err


def test_bench_needs_some_cases(capsys):
    assert main(["bench", "--no-epochs", "--no-kernels", "--backends", "numpy"]) == 2
    assert "nothing to run" in capsys.readouterr().err


def test_group_is_timed_round_robin():
    # a machine that slows down must not favour the backend that happens to run first
    calls = []
    group = [bench.Case("g", name, run=lambda name=name: calls.append(name)) for name in ("a", "b", "c")]
    records = bench.measure_group(group, min_time=0.0, min_rounds=3)
    assert calls == ["a", "b", "c"] * 4  # the first calls, then three rounds of one run each
    assert [r.backend for r in records] == ["a", "b", "c"] and all(r.rounds == 3 for r in records)


def test_long_cases_start_after_a_pause(monkeypatch):
    # another library's spinning BLAS threads must have gone to sleep before an epoch is timed
    clock = {"t": 0.0}
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock["t"])
    slept = []
    monkeypatch.setattr(bench.time, "sleep", lambda s: slept.append(s))

    def run(seconds):
        clock["t"] += seconds

    group = [bench.Case("g", "long", run=lambda: run(1.0)), bench.Case("g", "short", run=lambda: run(0.001))]
    records = bench.measure_group(group, min_time=0.0, min_rounds=3)
    assert slept == [bench.SETTLE_S] * 3  # before each timed run of the long case, never the short one
    assert records[0].median_s == 1.0  # and the pause is not part of the time


def test_epochs_only_skips_kernels():
    cs = list(bench.cases(quick=True, backends_=["numpy"], kernels=False, peers=False))
    assert cs and all(c.group.startswith("epoch") for c in cs)


def test_report_names_the_cpu():
    info = bench.machine_info()
    assert info["cpu"] and isinstance(info["cpu"], str)
    rec = bench.Record("matmul x", "numpy", median_s=1.0, iqr_s=0.0, rounds=3, first_call_s=0.0)
    assert bench.markdown([rec], info).startswith(f"Measured {info['date']} on {info['cpu']}, ")


def test_epoch_rows_report_the_fraction_of_the_gemm_floor():
    rate = bench.gemm_rate(batch=64, seconds=0.05)
    assert 0.1 < rate < 1e5  # GFLOP/s: positive and finite, whatever the machine
    info = dict(bench.machine_info(), gemm_gflops=120.0)
    rec = bench.Record("epoch 784-256-128-10 batch 512 float32", "numba", median_s=1.0, iqr_s=0.0, rounds=3,
                       first_call_s=0.0, extra={"train_accuracy": 0.9, "gflop_per_s": 90.0})
    text = bench.markdown([rec], info)
    assert "Float32 GEMM here: 120 GFLOP/s" in text and f"at least {bench.GFLOP_PER_EPOCH / 120:.3f} s" in text
    assert "(train acc 0.900; floor 75%)" in text
    assert "floor" not in bench.markdown([rec], bench.machine_info())  # no rate measured: no floor claimed


def test_slower_than_reference_lists_compiled_cases_below_the_floor():
    def rec(group, backend, speedup):
        return bench.Record(group, backend, median_s=1e-3, iqr_s=0.0, rounds=3, first_call_s=0.0, speedup=speedup)

    records = [rec("activate tanh 8x8 float64", "numpy", 1.0), rec("activate tanh 8x8 float64", "numba", 0.5),
               rec("activate tanh 8x8 float64", "cython", 0.97), rec("dropout 8x8 float32", "cython", 0.9),
               rec("matmul blocked 8x8 float32", "numba", 0.2),  # a teaching kernel: reported in the table only
               rec("epoch 784-256-128-10 batch 128 float32", "torch", 0.4)]  # a peer framework, not fastnn
    slow = bench.slower_than_reference(records)
    assert slow == ["SLOWER THAN NUMPY activate tanh 8x8 float64 [numba]: 0.50x (1.000 ms)",
                    "SLOWER THAN NUMPY dropout 8x8 float32 [cython]: 0.90x (1.000 ms)"]
    text = bench.markdown(records)
    assert "below 0.95x the NumPy reference" in text and "- activate tanh 8x8 float64 [numba]: 0.50x" in text


def test_bench_ends_with_the_slow_cases_or_says_there_are_none(tmp_path, capsys):
    main(["bench", "--quick", "--no-epochs", "--min-time", "0.01", "--backends", "numpy", "--out", str(tmp_path)])
    assert "every compiled case is at least 0.95x the NumPy reference" in capsys.readouterr().out
