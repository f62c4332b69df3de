r"""
Deep networks: vanishing and exploding gradients
================================================

Deeper networks can represent more, but they are harder to train: the error signal that
backpropagation sends from the output towards the input is multiplied by one factor per layer,
and a long product of factors tends to shrink to nothing or to blow up. This page measures the
gradient layer by layer, and tries the three remedies of the lecture: better initialisation,
the ReLU family of activations, and residual connections.

Backpropagation passes the delta down one layer at a time,
:math:`\delta_{l} = f'(z_{l}) \odot (\delta_{l+1} W_{l+1}^\top)`. With one unit per layer this
is a plain product,

.. math::

   \delta_l = f'(z_l)\, w_{l+1}\, f'(z_{l+1})\, w_{l+2} \cdots f'(z_{L-1})\, w_L\, \delta_L ,

and the gradient of layer :math:`l`'s weights is :math:`a_{l-1}^\top \delta_l / B`. The sigmoid's
slope is at most :math:`\sigma'(0) = 1/4`, so every sigmoid layer can shrink the signal by four
or more; weights larger than one can grow it instead.
"""

import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import fastnn
from fastnn.datasets import load_mnist_subset
from fastnn.demos import vanishing_gradients
from fastnn.plots import plot_layer_grad_norms

OUT = Path(tempfile.mkdtemp())
(X_all, y_all), _ = load_mnist_subset()
X, y = X_all[:2000], y_all[:2000]


def layer_norms(model, X, y):
    """||dJ/dW_l|| for every layer l, by backprop on the batch (X, y)."""
    dW, _ = model.gradients(X, y)
    return np.array([np.linalg.norm(g) for g in dW])


# %%
# Vanishing gradients, measured
# -----------------------------
#
# ``fastnn.demos.vanishing_gradients`` trains three 8-layer networks (784, seven hidden layers of
# 32 units, 10 outputs) on the same 2,000 MNIST images and reports, for every layer, the mean
# gradient norm :math:`\lVert \partial J / \partial W_l \rVert` over the first epoch (every
# ``fit`` records these in ``History.grad_norms``). The networks: sigmoid, ReLU, and sigmoid with
# residual connections.

result = vanishing_gradients(X, y, depth=8, width=32, epochs=2, seed=0)
print(result)
print()
print(result.conclusion())

with_png = plot_layer_grad_norms(result.norms, OUT / "vanishing.png", title="gradient norm by layer")
image = plt.imread(with_png)
fig, ax = plt.subplots(figsize=(image.shape[1] / 100, image.shape[0] / 100))  # the PNG at its own size
ax.imshow(image)
ax.set_axis_off()
fig.subplots_adjust(0, 0, 1, 1)
plt.show()

# %%
# Read the table from the right (the output layer) to the left (the input layer). In the sigmoid
# network the gradient falls by orders of magnitude on its way down, so the first layers barely
# learn; the numbers are the measurement, the sentence under the table says what they show.
#
# Exploding gradients
# -------------------
#
# The opposite failure: if the weights are too large, every layer *multiplies* the error by
# more than one. Take a deep ReLU network with He initialisation (which keeps the signal's size
# steady, see below) and double all its weights. ReLU is linear for active units, so each layer
# now contributes a factor 2: the output grows by :math:`2^8`, and every layer's gradient by
# :math:`2^7` from the other seven layers' factors alone; the printed ratios are larger still,
# because the output error :math:`a_L - y` of a saturated softmax is larger too.

deep = [784] + [32] * 7 + [10]
he = fastnn.MLP(deep, activation="relu", init="he", dtype="float64", seed=0)
doubled = fastnn.MLP(deep, activation="relu", init="he", dtype="float64", seed=0)
doubled.weights = [2.0 * W for W in he.weights]
norms_he, norms_doubled = layer_norms(he, X[:256], y[:256]), layer_norms(doubled, X[:256], y[:256])
print("layer          " + " ".join(f"{l:>9d}" for l in range(1, len(deep))))
print("He init        " + " ".join(f"{v:9.2e}" for v in norms_he))
print("He init x 2    " + " ".join(f"{v:9.2e}" for v in norms_doubled))
print("ratio          " + " ".join(f"{v:9.0f}" for v in norms_doubled / norms_he), f"  (2^7 = {2 ** 7})")

# %%
# Steps that large throw the weights far away. With a learning rate that suits the He network,
# the doubled one diverges at once, and fastnn stops it and says so:

for name, m in (("He init", he), ("He init x 2", doubled)):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = m.fit(X, y, epochs=3, batch_size=64, lr=0.05, verbose=0)
    print(f"{name}: training loss per epoch {np.round(h.loss, 3)}")
    for w in caught:
        print(f"   {w.category.__name__}: {w.message}")

# %%
# Initialisation
# --------------
#
# A good initial scale keeps the size of the activations (forward) and of the deltas (backward)
# about the same from layer to layer. With :math:`m` inputs per unit, fastnn offers
#
# * ``"uniform"``: :math:`U(-1/\sqrt m, 1/\sqrt m)`, variance :math:`1/(3m)` (the classic default),
# * ``"normal"``: :math:`N(0, 1/m)`,
# * ``"xavier"`` (Glorot): :math:`U(\pm\sqrt{6/(m + n)})`, variance :math:`2/(m+n)`, for tanh and sigmoid,
# * ``"he"``: :math:`N(0, 2/m)`, for ReLU, which zeroes half of its inputs and so halves the variance.
#
# We push 256 images through an untrained 8-layer ReLU network with each rule and plot the
# standard deviation of every layer's activations (``fastnn.trace`` keeps them), and the
# gradient norms of every layer.

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for init in ("uniform", "normal", "xavier", "he"):
    m = fastnn.MLP(deep, activation="relu", init=init, dtype="float64", seed=0)
    t = fastnn.trace(m, X[:256], y[:256])
    stds = [t[f"a{l}"].std() for l in range(1, len(deep) - 1)]
    norms = layer_norms(m, X[:256], y[:256])
    print(f"{init:8s} activation std, layers 1..7: {np.round(stds, 3)}  "
          f" first/last gradient {norms[0] / norms[-1]:.2g}")
    ax1.plot(range(1, len(stds) + 1), stds, "o-", label=init)
    ax2.plot(range(1, len(norms) + 1), norms, "o-", label=init)
ax1.set(xlabel="hidden layer", ylabel="std of a_l", yscale="log", title="forward: activation size")
ax2.set(xlabel="layer", ylabel="||dJ/dW_l||", yscale="log", title="backward: gradient size at init")
ax1.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %%
# With the uniform rule the activations of a ReLU network shrink layer after layer (each layer
# keeps about a third of the variance, and ReLU halves it again); He's rule keeps them level.
#
# The ReLU family
# ---------------
#
# ReLU's slope is exactly 1 wherever a unit is active, so an active path passes the error down
# undiminished. Its variants keep a small slope for negative inputs, so that a unit never dies
# completely: leaky ReLU (slope 0.01), PReLU (a slope learned per unit, starting at 0.25) and
# ELU (:math:`\alpha(e^z - 1)` for :math:`z \le 0`). The same measurement as above, for all of
# them and for tanh, each with the initialisation that suits it:

networks = {
    "sigmoid": {"activation": "sigmoid", "init": "xavier"},
    "tanh": {"activation": "tanh", "init": "xavier"},
    "relu": {"activation": "relu", "init": "he"},
    "leaky_relu": {"activation": "leaky_relu", "init": "he"},
    "prelu": {"activation": "prelu", "init": "he"},
    "elu": {"activation": "elu", "init": "he"},
}
family = vanishing_gradients(X, y, depth=8, width=32, epochs=2, seed=0, networks=networks)
print(family)
fig, ax = plt.subplots(figsize=(6.5, 4))
for name, norms in family.norms.items():
    ax.plot(range(1, len(norms) + 1), norms, "o-", label=name)
ax.set(xlabel="layer (1 = next to the input)", ylabel="mean ||dJ/dW_l||, first epoch", yscale="log",
       title="8-layer networks on 2,000 MNIST images")
ax.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %%
# Residual connections
# --------------------
#
# A residual (skip) connection adds a layer's input to its output, :math:`a_l = f(z_l) + a_{l-1}`
# (the lecture's :math:`F(x) + x`). Backwards, the skip hands :math:`\partial J / \partial a_l`
# to the layer below unchanged, next to the path through :math:`f'`, so the error has a route
# with no shrinking factors at all. ``MLP(..., residual=True)`` adds a skip to every hidden layer
# whose width equals the previous one's. The sigmoid network above, with and without skips,
# trained for 5 epochs:

for residual in (False, True):
    m = fastnn.MLP(deep, activation="sigmoid", init="xavier", residual=residual, seed=0)
    h = m.fit(X, y, epochs=5, batch_size=64, lr=0.1, verbose=0)
    g = h.grad_norms[0]
    print(f"residual={residual!s:5s}: first/last gradient in epoch 1 {g[0] / g[-1]:.1e}, "
          f"training accuracy per epoch {np.round(h.accuracy, 3)}")
