#!/usr/bin/env bash
# The prepared check for a machine with an NVIDIA GPU, about 6-9 minutes, from the repository's root:
#     bash benchmarks/gpu-check.sh            (OUT=DIR keeps the log in DIR/gpu-check.txt)
# It fetches nothing: it expects the usual GPU Python stack there (numpy, scipy, numba, numba-cuda, Cython,
# pytest, PyTorch). It installs fastnn in place, runs the CUDA tests on the real GPU (default and tiny launch
# sizes), and times one epoch of 784-256-128-10 at batch 32/128/512 on 60,000 rows (the bundled MNIST subset
# tiled): fastnn cuda, PyTorch on the GPU, and fastnn cython / PyTorch on all the machine's CPU cores.
# Results of its runs: benchmarks/results/results-*-gpu.md.
set -u
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.txt") 2>&1
export PYTHONUNBUFFERED=1
step() { echo; echo "== $* ($(date +%T))"; }

step machine
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
nproc
python3 -c "import sys, numpy, numba; from numba import cuda; print(sys.version.split()[0], 'numpy', numpy.__version__, 'numba', numba.__version__, 'cuda', cuda.is_available())"

step install
python3 -m pip install -q --no-deps --no-build-isolation -e . || { echo "install failed"; exit 1; }
python3 -c "import fastnn; print('backends', fastnn.backends.available())"

step "CUDA tests, default launch sizes"
timeout 200 python3 -m pytest -q -x -p no:cacheprovider tests/cuda_backend 2>&1 | tail -15
step "CUDA tests, tiny launch sizes (inputs cross block edges)"
FASTNN_CUDA_TPB=4 FASTNN_CUDA_TILE=2 FASTNN_CUDA_MAX_BLOCKS=2 timeout 150 \
  python3 -m pytest -q -x -p no:cacheprovider tests/cuda_backend/test_cuda_training.py 2>&1 | tail -8

step "epochs: fastnn cuda vs PyTorch CUDA, and both on the CPU cores"
timeout 220 python3 - <<'PY'
import os, time, numpy as np, torch, fastnn
from fastnn.datasets import load_mnist_subset
(X, y), _ = load_mnist_subset()
reps = -(-60000 // len(X)); X = np.tile(X, (reps, 1))[:60000].astype(np.float32); y = np.tile(y, reps)[:60000]
cores = os.cpu_count(); fastnn.set_num_threads(cores); torch.set_num_threads(cores)
def torch_epoch(dev, B):
    Xt = torch.from_numpy(X).to(dev); yt = torch.from_numpy(y.astype(np.int64)).to(dev)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).to(dev)
    opt = torch.optim.SGD(net.parameters(), lr=0.05); lf = torch.nn.CrossEntropyLoss()
    def run():
        perm = torch.randperm(len(Xt), device=dev)
        for i in range(0, len(Xt), B):
            idx = perm[i:i + B]; opt.zero_grad(); lf(net(Xt[idx]), yt[idx]).backward(); opt.step()
        if dev == "cuda": torch.cuda.synchronize()
    return run
def fastnn_epoch(be, B):
    m = fastnn.MLP([784, 256, 128, 10], backend=be, seed=0)
    return lambda: m.fit(X, y, epochs=1, batch_size=B, lr=0.05, verbose=False)
def med(f, k=3):
    f(); ts = []
    for _ in range(k):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return float(np.median(ts))
avail = fastnn.backends.available()
for B in (32, 128, 512):
    row = {}
    for name, make in (("fastnn cuda", lambda: fastnn_epoch("cuda", B)), ("torch cuda", lambda: torch_epoch("cuda", B)),
                       ("fastnn cython", lambda: fastnn_epoch("cython", B)), ("torch cpu", lambda: torch_epoch("cpu", B))):
        if name.startswith("fastnn") and name.split()[1] not in avail:
            continue
        try:
            row[name] = med(make())
        except Exception as e:
            print(f"batch {B} {name}: {type(e).__name__}: {str(e)[:200]}")
    print(f"batch {B} ({cores} cores): " + ", ".join(f"{k} {v:.3f}s" for k, v in row.items()), flush=True)
PY

step "fastnn bench kernels, numpy vs cuda (float32)"
( cd "$OUT" && timeout 120 python3 -m fastnn.cli bench --quick --no-epochs --no-peers --backends numpy,cuda --out "$OUT/bench" 2>&1 | tail -30 ) || true
step done
