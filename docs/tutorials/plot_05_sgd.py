r"""
Training by stochastic gradient descent
=======================================

Gradient descent needs the gradient of the loss over the whole training set, which is expensive
when the set holds tens of thousands of images. Stochastic gradient descent (SGD) estimates it
from a small random *mini-batch* instead and takes many cheap steps. This page defines the
vocabulary (batch, mini-batch, iteration, epoch), then looks at the knobs of SGD: the batch
size, the learning rate, momentum and learning-rate schedules.

One SGD step on a mini-batch of :math:`B` samples, with learning rate :math:`\eta`:

.. math::

   W \leftarrow W - \eta\, \frac{\partial J_{\text{batch}}}{\partial W}, \qquad
   J_{\text{batch}} = \frac1B \sum_{b=1}^{B} J_b .

With momentum :math:`\mu`, fastnn keeps a velocity :math:`v` per parameter:

.. math::

   v \leftarrow \mu v - \eta\, \frac{\partial J_{\text{batch}}}{\partial W}, \qquad W \leftarrow W + v .
"""

import matplotlib.pyplot as plt
import numpy as np

import fastnn
import fastnn.plots
from fastnn.datasets import load_mnist_subset
from fastnn.schedules import CosineDecay, ExponentialDecay, StepDecay

(X_all, y_all), (X_test, y_test) = load_mnist_subset()

# %%
# Batch, iteration, epoch
# -----------------------
#
# * The **batch size** :math:`B` is the number of samples one step averages over.
# * An **iteration** (a step) is one forward pass, one backward pass and one update on one batch.
# * An **epoch** is one pass over the whole training set: :math:`\lceil N / B \rceil` iterations.
#
# The lecture's example splits MNIST's 60,000 training images into 55,000 for training and 5,000
# for validation; with :math:`B = 100` an epoch is 550 iterations. The subset bundled with
# fastnn holds 10,000 training images:

for n, batch in ((55_000, 100), (10_000, 100), (10_000, 32), (10_000, 1), (10_000, 10_000)):
    print(f"N = {n:6,d}, batch size {batch:6,d}: {-(-n // batch):6,d} iterations per epoch")

# %%
# Batch size
# ----------
#
# ``batch_size=len(X)`` is full-batch gradient descent: one exact step per epoch. ``batch_size=1``
# is "pure" SGD: one noisy step per sample. Mini-batches sit in between, and are what everybody
# uses: the gradient estimate is good enough, and a batch is a matrix product that a CPU (or a
# GPU) computes efficiently. Below, a 784-32-10 ReLU network trains for 10 epochs on 2,000 images
# with each batch size, everything else equal.

X, y = X_all[:2000], y_all[:2000]
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for batch, lr in ((2000, 0.5), (128, 0.5), (32, 0.1), (1, 0.01)):
    model = fastnn.MLP([784, 32, 10], seed=0)
    h = model.fit(X, y, epochs=10, batch_size=batch, lr=lr, verbose=0)
    steps = -(-len(X) // batch)
    print(f"batch {batch:5d} (lr {lr:4}): {steps:5d} steps/epoch, loss after 10 epochs {h.loss[-1]:.3f}, "
          f"test accuracy {model.evaluate(X_test, y_test)['accuracy']:.3f}")
    ax.plot(range(1, 11), h.loss, "o-", ms=3, label=f"batch {batch}, lr {lr}")
ax.set(xlabel="epoch", ylabel="training loss (epoch mean)", yscale="log", title="batch size")
ax.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %%
# Per epoch, small batches make more progress, because they take more steps. Full-batch descent
# takes one step per epoch and makes the least progress in 10 epochs. (Smaller batches need smaller
# learning rates: their gradient estimates are noisier.)
#
# The learning rate
# -----------------
#
# Too small a rate learns slowly; too large a rate throws the weights so far that the loss jumps
# around, blows up, or the network stops learning altogether. The same network with a batch of 32
# and four rates:

fig, ax = plt.subplots(figsize=(6.5, 3.8))
for lr in (0.005, 0.05, 0.5, 2.0):
    model = fastnn.MLP([784, 32, 10], seed=0)
    h = model.fit(X, y, epochs=10, batch_size=32, lr=lr, verbose=0)
    print(f"lr {lr:5}: loss after 1 / 10 epochs {h.loss[0]:.3f} / {h.loss[-1]:.3f}, "
          f"test accuracy {model.evaluate(X_test, y_test)['accuracy']:.3f}")
    ax.plot(range(1, 11), h.loss, "o-", ms=3, label=f"lr {lr}")
    hidden = fastnn.trace(model, X[:500], y[:500])["a1"]  # the hidden layer's outputs on 500 images
    print(f"           hidden units that output 0 for all 500 images: {(hidden.max(axis=0) == 0).sum()} of 32")
ax.set(xlabel="epoch", ylabel="training loss", yscale="log", title="learning rate (batch 32)")
ax.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %%
# With ``lr=2`` the loss settles at about 2.30, which is :math:`\ln 10`: the cross-entropy of a
# network that gives every digit probability 1/10. The count of "dead" hidden units printed under
# each rate shows why: the first huge steps pushed ReLU units into the region where they output
# 0 for every image, and a unit that is always off gets no gradient, so it never recovers.
#
# Momentum
# --------
#
# Momentum averages the recent gradients: along directions where they agree the velocity builds
# up (up to :math:`1/(1-\mu)` times a single step, 10 times for :math:`\mu = 0.9`), and where they
# flip sign from step to step they cancel. The same small learning rate, with and without
# momentum, and with Nesterov's variant (which evaluates the step a little ahead):

fig, ax = plt.subplots(figsize=(6.5, 3.8))
for label, kwargs in (("plain SGD", {}), ("momentum 0.9", {"momentum": 0.9}),
                      ("Nesterov 0.9", {"momentum": 0.9, "nesterov": True})):
    model = fastnn.MLP([784, 32, 10], seed=0)
    h = model.fit(X, y, epochs=10, batch_size=32, lr=0.005, verbose=0, **kwargs)
    print(f"{label:13s}: loss after 10 epochs {h.loss[-1]:.3f}, "
          f"test accuracy {model.evaluate(X_test, y_test)['accuracy']:.3f}")
    ax.plot(range(1, 11), h.loss, "o-", ms=3, label=label)
ax.set(xlabel="epoch", ylabel="training loss", yscale="log", title="momentum (lr 0.005, batch 32)")
ax.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %%
# Learning-rate schedules
# -----------------------
#
# A large rate early on makes fast progress; a smaller one later lets SGD settle into a minimum
# instead of bouncing around it. ``fit(lr_schedule=...)`` takes one of the schedules of
# ``fastnn.schedules`` (or any function from the epoch, counted from 1, to a rate), and
# ``History.lr`` records the rate each epoch used:
#
# .. math::
#
#    \text{step: } \eta_t = \eta_0\, d^{\lfloor (t-1)/k \rfloor}, \quad
#    \text{exponential: } \eta_t = \eta_0\, \gamma^{t-1}, \quad
#    \text{cosine: } \eta_t = \eta_{min} + (\eta_0 - \eta_{min}) \frac{1 + \cos(\pi (t-1)/T)}{2}.

schedules = {"constant": None, "step (halve every 5)": StepDecay(drop=0.5, every=5),
             "exponential (0.85)": ExponentialDecay(gamma=0.85), "cosine": CosineDecay()}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for name, schedule in schedules.items():
    model = fastnn.MLP([784, 32, 10], seed=0)
    h = model.fit(X, y, epochs=20, batch_size=32, lr=0.2, momentum=0.5, lr_schedule=schedule, verbose=0)
    print(f"{name:21s}: lr {h.lr[0]:.3f} -> {h.lr[-1]:.4f}, final loss {h.loss[-1]:.4f}, "
          f"test accuracy {model.evaluate(X_test, y_test)['accuracy']:.3f}")
    ax1.plot(range(1, 21), h.lr, "o-", ms=3, label=name)
    ax2.plot(range(1, 21), h.loss, "o-", ms=3, label=name)
ax1.set(xlabel="epoch", ylabel="learning rate (History.lr)", title="schedules")
ax2.set(xlabel="epoch", ylabel="training loss", yscale="log", title="training loss")
ax1.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %%
# The loss of every mini-batch
# ----------------------------
#
# The curves above are epoch means. What SGD actually sees is one loss per iteration, each
# measured on a different small batch while the weights keep moving. ``History.batch_loss`` keeps
# them: one array per epoch, with one entry per mini-batch in the order they were trained
# (``History.iteration_loss`` strings all epochs together). Their mean over an epoch, weighted by
# the batch sizes (the last batch of an epoch may be smaller), is the epoch's ``History.loss``.

model = fastnn.MLP([784, 32, 10], seed=0)
h = model.fit(X, y, epochs=5, batch_size=32, lr=0.1, momentum=0.9, verbose=0)
for epoch, (batches, mean) in enumerate(zip(h.batch_loss, h.loss), start=1):
    sizes = np.full(len(batches), 32)
    sizes[-1] = len(X) - 32 * (len(batches) - 1)
    weighted = np.average(batches, weights=sizes)
    print(f"epoch {epoch}: {len(batches)} mini-batches, batch losses from {batches.min():.3f} to {batches.max():.3f}; "
          f"their weighted mean {weighted:.4f}, History.loss {mean:.4f}")
    assert abs(weighted - mean) < 1e-4 * mean

# %%
# ``fastnn.plots.plot_batch_loss`` draws the mini-batch losses with the epoch means on top: the
# noisy line is what stochastic gradient descent follows; the smooth one is what the epoch
# summaries report.

fastnn.plots.plot_batch_loss(h)
plt.show()
