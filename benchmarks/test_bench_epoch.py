"""One training epoch of 784-256-128-10 (ReLU, softmax + CE, plain SGD) on 60,000 MNIST images.

Every available CPU backend, batch 32 / 128 / 512, float32, and PyTorch CPU as a peer when it is
installed (`pip install torch==2.13.0`).  The compile step is excluded: each model is warmed up
on a small slice first (its compile time is printed with -s).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

import fastnn
from conftest import CPU_BACKENDS

BATCHES = [32, 128, 512]
LAYERS = [784, 256, 128, 10]
GFLOP_PER_EPOCH = 2 * 60000 * (2 * 784 * 256 + 3 * 256 * 128 + 3 * 128 * 10) / 1e9  # no input delta


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_epoch(benchmark, mnist_train, backend, batch):
    X, y = mnist_train
    model = fastnn.MLP(LAYERS, activation="relu", seed=0, backend=backend)
    t0 = time.perf_counter()
    model.fit(X[:batch * 2], y[:batch * 2], epochs=1, batch_size=batch, lr=0.05, verbose=0)  # compile
    warm = time.perf_counter() - t0
    benchmark.group = f"epoch-batch{batch}"
    benchmark.extra_info.update(backend=backend, batch=batch, warmup_s=warm, gflop=GFLOP_PER_EPOCH)
    h = benchmark.pedantic(model.fit, args=(X, y),
                           kwargs=dict(epochs=1, batch_size=batch, lr=0.05, verbose=0), rounds=3, iterations=1)
    assert np.isfinite(h.loss[-1]) and h.accuracy[-1] > 0.5  # a fast epoch must still learn (chance: 0.1)


@pytest.mark.parametrize("batch", BATCHES)
def test_epoch_torch(benchmark, mnist_train, batch):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional peer: pip install torch==2.13.0")
    X, y = mnist_train
    torch.manual_seed(0)
    torch.set_num_threads(fastnn.get_num_threads())
    Xt, yt = torch.from_numpy(X), torch.from_numpy(np.asarray(y, dtype=np.int64))
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                              torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(net.parameters(), lr=0.05)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch():
        perm = torch.randperm(len(Xt))
        for s in range(0, len(Xt), batch):
            idx = perm[s:s + batch]
            opt.zero_grad()
            loss = loss_fn(net(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        return float(loss.detach())

    benchmark.group = f"epoch-batch{batch}"
    benchmark.extra_info.update(backend="torch", batch=batch, gflop=GFLOP_PER_EPOCH)
    last = benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=0)
    assert np.isfinite(last)
