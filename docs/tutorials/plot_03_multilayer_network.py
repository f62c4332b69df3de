r"""
The multilayer network
======================

A fully connected network stacks layers of neurons: every unit of one layer feeds every unit of
the next. This page builds the lecture's MNIST network, 784-10-14-10, counts its parameters,
follows a batch of images through the forward pass with the shape of every array, and looks at
the softmax output that turns the last layer into class probabilities.

With a batch of :math:`B` images as rows, layer :math:`l` computes

.. math::

   z_l = a_{l-1} W_l + b_l, \qquad a_l = f_l(z_l), \qquad a_0 = X,

with :math:`a_{l-1}` of shape ``(B, n_{l-1})``, :math:`W_l` of shape ``(n_{l-1}, n_l)`` and
:math:`b_l` of shape ``(n_l,)`` (added to every row). A layer therefore has
:math:`n_{l-1} n_l` weights and :math:`n_l` biases.
"""

import matplotlib.pyplot as plt
import numpy as np

import fastnn
import fastnn.plots
from fastnn import activations
from fastnn.datasets import load_mnist_subset

# %%
# Counting parameters
# -------------------
#
# The input layer has one unit per pixel (28 x 28 = 784) and no parameters; the output layer has
# one unit per digit (10). In between, the lecture's network has hidden layers of 10 and 14
# units:
#
# .. math::
#
#    \underbrace{784 \cdot 10 + 10 \cdot 14 + 14 \cdot 10}_{\text{weights } = 8120}
#    + \underbrace{10 + 14 + 10}_{\text{biases } = 34} = 8154 .

model = fastnn.MLP([784, 10, 14, 10], activation="relu", output="softmax", seed=0)
model.summary()
n_weights = sum(W.size for W in model.weights)
n_biases = sum(b.size for b in model.biases)
print(f"weights {n_weights:,} + biases {n_biases:,} = {model.n_params:,} parameters")
assert (n_weights, n_biases, model.n_params) == (8120, 34, 8154)

# %%
# The forward pass, shape by shape
# --------------------------------
#
# Take a batch of four training images. ``fastnn.trace`` runs one forward and backward pass and
# keeps every intermediate array, so we can list what each layer receives and produces.

(X, y), (X_test, y_test) = load_mnist_subset()
batch, labels = X[:4], y[:4]
t = fastnn.trace(model, batch, labels)
print(f"{'array':8s} {'shape':>10s}   meaning")
print(f"{'a0 = X':8s} {str(t['a0'].shape):>10s}   4 images of 784 pixels in [0, 1]")
for l in range(1, len(model.layers)):
    W = t[f"W{l}"]
    print(f"{'W' + str(l):8s} {str(W.shape):>10s}   weights from layer {l - 1} to layer {l}")
    print(f"{'z' + str(l):8s} {str(t[f'z{l}'].shape):>10s}   a{l - 1} W{l} + b{l}")
    print(f"{'a' + str(l):8s} {str(t[f'a{l}'].shape):>10s}   {(model.activation + [model.output])[l - 1]}(z{l})")

# %%
# The output layer: softmax
# -------------------------
#
# For classification the last layer uses the softmax
#
# .. math::
#
#    a_j = \frac{e^{z_j}}{\sum_k e^{z_k}},
#
# which makes every output positive and each row sum to 1, so the ten outputs read as the
# network's probabilities for the ten digits; the prediction is the most probable one. An
# untrained network spreads its probability almost evenly. After a few epochs on the bundled
# MNIST subset (10,000 training images) it concentrates on one digit.

p_before = model.predict_proba(batch)
history = model.fit(X, y, epochs=5, batch_size=32, lr=0.1, momentum=0.9, verbose=0)
p_after = model.predict_proba(batch)
print("row sums before / after training:", p_before.sum(axis=1).round(6), p_after.sum(axis=1).round(6))
print(f"test accuracy after {history.epochs} epochs: {model.evaluate(X_test, y_test)['accuracy']:.4f}")
assert np.allclose(p_after.sum(axis=1), 1.0, atol=1e-5)

fig, axes = plt.subplots(2, 4, figsize=(11, 4.2), gridspec_kw={"height_ratios": [1, 1.1]})
for k in range(4):
    axes[0, k].imshow(batch[k].reshape(28, 28), cmap="gray_r")
    axes[0, k].set_title(f"label {labels[k]}")
    axes[0, k].set_axis_off()
    axes[1, k].bar(np.arange(10) - 0.2, p_before[k], width=0.4, label="untrained")
    axes[1, k].bar(np.arange(10) + 0.2, p_after[k], width=0.4, label="after 5 epochs")
    axes[1, k].set(xticks=range(10), ylim=(0, 1), xlabel="digit")
axes[1, 0].set_ylabel("softmax output")
axes[1, 0].legend(fontsize="x-small")
fig.tight_layout()
plt.show()

# %%
# Why the activations matter
# --------------------------
#
# Without a nonlinear activation, stacking layers buys nothing: the composition of linear maps
# is one linear map, :math:`((X W_1 + b_1) W_2 + b_2) W_3 + b_3 = X W + b` with
# :math:`W = W_1 W_2 W_3`. A 784-10-14-10 network with the identity as its hidden activation
# computes exactly what a single 784-10 layer with those combined weights computes:

linear = fastnn.MLP([784, 10, 14, 10], activation="identity", dtype="float64", seed=0)
W1, W2, W3 = linear.weights
b1, b2, b3 = linear.biases
W_combined = W1 @ W2 @ W3
b_combined = (b1 @ W2 + b2) @ W3 + b3
one_layer = fastnn.MLP([784, 10], dtype="float64", seed=0)
one_layer.weights, one_layer.biases = [W_combined], [b_combined]
difference = np.abs(linear.forward(X[:100]) - one_layer.forward(X[:100])).max()
print(f"largest difference between the two networks' outputs: {difference:.1e}")
assert difference < 1e-12

# %%
# The activation functions are the subject of the next section: each is applied element by
# element to :math:`z`, and backpropagation needs its derivative :math:`f'(z)` too.

# %%
# Activation functions and their derivatives
# ------------------------------------------
#
# Each hidden unit applies its activation :math:`f` to its own :math:`z`, and backpropagation
# multiplies the error passing through it by :math:`f'(z)`. ``fastnn.activations.get(name)``
# returns the formulas fastnn trains with (the NumPy reference backend's own kernels), with
# ``f(z)`` and ``df(z)`` for arrays of any shape; ``names()`` lists them.

for name in activations.names():
    act = activations.get(name)
    print(f"{name:11s} f(z) = {act.formula:34s} f'(z) = {act.derivative}")

# %%
# A derivative can be checked against its definition, the slope of :math:`f` between two nearby
# points. Away from the kinks at :math:`z = 0` (where ReLU and its relatives have no derivative)
# every ``df`` agrees with the central difference :math:`(f(z + h) - f(z - h)) / 2h`:

z = np.linspace(-3.95, 3.95, 80)  # avoids z = 0
for name in activations.names():
    if name == "softmax":
        continue
    act = activations.get(name)
    slope = (act.f(z + 1e-6) - act.f(z - 1e-6)) / 2e-6
    print(f"{name:11s} largest difference between df and the central difference: {np.abs(slope - act.df(z)).max():.1e}")
    assert np.allclose(slope, act.df(z), atol=1e-6)

# %%
# ``fastnn.plots.plot_activations`` draws every one with its derivative. Note the sigmoid's slope:
# at most 1/4, and nearly 0 once :math:`|z|` is a few units, while ReLU's is exactly 1 for every
# positive :math:`z` (this is where vanishing gradients come from, see
# :doc:`plot_07_deep_networks`).

fastnn.plots.plot_activations()
plt.show()
