"""Full MNIST from ../shared/data/mnist: the accuracy bar every backend must reach (marked slow)."""
import numpy as np
import pytest

import fastnn


@pytest.mark.slow
def test_mnist_784_256_128_10_reaches_97_8_percent(mnist, backend):
    """ReLU, softmax + cross-entropy, batch 128, SGD momentum 0.9, 10 epochs: median of 3 seeds.

    Pixels are normalised with the training set's mean and standard deviation (0.1307, 0.3081),
    the classic MNIST preprocessing: it makes the result far less sensitive to the seed.
    """
    (X, y), (Xt, yt) = mnist
    mean, std = X.mean(), X.std()
    X, Xt = (X - mean) / std, (Xt - mean) / std
    accuracies = []
    for seed in (0, 1, 2):
        m = fastnn.MLP([784, 256, 128, 10], activation="relu", seed=seed, backend=backend)
        h = m.fit(X, y, epochs=10, batch_size=128, lr=0.02, momentum=0.9, verbose=0)
        assert not h.diverged
        accuracies.append(m.evaluate(Xt, yt)["accuracy"])
    print(f"[{backend}] test accuracies {accuracies}, median {np.median(accuracies):.4f}")
    assert np.median(accuracies) >= 0.978
