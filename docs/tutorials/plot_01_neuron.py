"""
The neuron
==========

The artificial neuron borrows its outline from the biological one: dendrites bring signals in
(the inputs), the cell body combines them (a weighted sum plus a bias, which sets the threshold),
and the axon passes the result on (the output of an activation function). So a neuron adds up
its inputs, each multiplied by a weight, adds a bias, and passes the sum through an activation
function. This page builds one by hand (an OR gate), trains one with Rosenblatt's
perceptron rule on the logic gates AND, OR and XOR, watches the rule fail on XOR, and then solves
XOR with one hidden layer.

In fastnn's notation a layer takes a row vector of inputs :math:`x` (shape ``(1, n_in)``; a batch
stacks rows), a weight matrix :math:`W` of shape ``(n_in, n_out)`` and a bias row :math:`b`:

.. math::

   z = x W + b, \\qquad a = f(z),

so a single neuron (``n_out = 1``) computes :math:`a = f\\left(\\sum_i x_i w_i + b\\right)`.
``W[i, j]`` is the weight from input unit ``i`` to output unit ``j``.

Networks wire many neurons together. fastnn builds *feed-forward* networks, in which signals
travel from the inputs through the layers to the outputs and never back; *feedback* (recurrent)
networks such as Hopfield's, whose outputs loop back into their inputs, are outside its scope.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import fastnn
from fastnn.datasets import xor
from fastnn.plots import plot_decision_boundary

OUT = Path(tempfile.mkdtemp())  # fastnn.plots writes PNG files; this page shows them


def show_png(path):
    """Put a PNG written by fastnn.plots on the page, at its own size."""
    image = plt.imread(path)
    fig, ax = plt.subplots(figsize=(image.shape[1] / 100, image.shape[0] / 100))
    ax.imshow(image)
    ax.set_axis_off()
    fig.subplots_adjust(0, 0, 1, 1)
    plt.show()


# %%
# An OR neuron with hand-set weights
# ----------------------------------
#
# The lecture's OR neuron uses a sigmoid :math:`\sigma(z) = 1 / (1 + e^{-z})` with the weights set
# by hand: bias :math:`b = -10` and both input weights :math:`20`. With both inputs off,
# :math:`z = -10` and :math:`\sigma(-10) \approx 0`; with either input on, :math:`z \ge 10` and the
# output is close to 1.
#
# In fastnn a network without a hidden layer, ``MLP([2, 1])``, is exactly one neuron. We build it
# with a sigmoid output and overwrite its weights and bias (``model.weights`` and
# ``model.biases`` are plain lists of arrays).

neuron = fastnn.MLP([2, 1], output="sigmoid", loss="mse", dtype="float64", seed=0)
neuron.weights = [np.array([[20.0], [20.0]])]  # W has shape (n_in, n_out) = (2, 1)
neuron.biases = [np.array([-10.0])]

X_gate = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
out = neuron.forward(X_gate)[:, 0]
print(" x1  x2    z = 20 x1 + 20 x2 - 10    a = sigmoid(z)")
for (x1, x2), a in zip(X_gate, out):
    z = 20 * x1 + 20 * x2 - 10
    print(f"{x1:3.0f} {x2:3.0f}    {z:22.0f}    {a:14.5f}")
assert np.all(np.round(out) == [0, 1, 1, 1])  # the truth table of OR

# %%
# The perceptron rule
# -------------------
#
# Rosenblatt's perceptron replaces the sigmoid by a hard threshold,
# :math:`\hat y = \operatorname{sign}(w \cdot x + b)` with :math:`\hat y \in \{-1, +1\}`, and learns
# :math:`w` and :math:`b` from examples. Each time it gets a sample wrong, it moves the boundary
# towards that sample:
#
# .. math::
#
#    w \leftarrow w + \eta\, y\, x, \qquad b \leftarrow b + \eta\, y .
#
# If a straight line separates the two classes, the rule reaches an epoch with no mistakes after
# finitely many updates. ``fastnn.Perceptron`` implements exactly this rule; ``errors_`` counts
# the mistakes of every epoch.

gates = {"AND": np.array([0, 0, 0, 1]), "OR": np.array([0, 1, 1, 1]), "XOR": np.array([0, 1, 1, 0])}
perceptrons = {}
for name, t in gates.items():
    p = fastnn.Perceptron(lr=1.0).fit(X_gate, t, epochs=30)
    perceptrons[name] = p
    print(f"{name:4s} accuracy {p.score(X_gate, t):.2f}  epochs {p.n_epochs_:2d}  converged {p.converged_!s:5s}  "
          f"w = {p.weights_}, b = {p.bias_:+.0f}  mistakes per epoch: {p.errors_[:8]}")

assert perceptrons["AND"].converged_ and perceptrons["OR"].converged_
assert not perceptrons["XOR"].converged_

# %%
# AND and OR converge after a few epochs. XOR never does: its mistakes per epoch never reach
# zero, because no straight line puts (0, 1) and (1, 0) on one side and (0, 0) and (1, 1) on the
# other. This is the objection Minsky and Papert raised in 1969. The pictures show the line
# :math:`w \cdot x + b = 0` each perceptron ended with.

fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
grid = np.linspace(-0.5, 1.5, 2)
for ax, (name, t) in zip(axes, gates.items()):
    p = perceptrons[name]
    for label, marker in ((0, "o"), (1, "s")):
        pts = X_gate[t == label]
        ax.scatter(pts[:, 0], pts[:, 1], s=80, marker=marker, label=f"class {label}")
    w1, w2 = p.weights_
    if w2 != 0:
        ax.plot(grid, -(w1 * grid + p.bias_) / w2, "k--", label="w.x + b = 0")
    elif w1 != 0:
        ax.axvline(-p.bias_ / w1, color="k", ls="--", label="w.x + b = 0")
    ax.set(xlim=(-0.5, 1.5), ylim=(-0.5, 1.5), xlabel="x1", ylabel="x2",
           title=f"{name}: accuracy {p.score(X_gate, t):.2f}")
axes[0].legend(fontsize="small", loc="upper left")
fig.tight_layout()
plt.show()

# %%
# One hidden layer solves XOR
# ---------------------------
#
# Stack neurons: a hidden layer of a few tanh units computes new features of the input, and the
# output layer draws its line in *that* space. The network below, ``2-8-2`` with a softmax output
# (two classes), learns XOR on 200 noisy samples around the four corners
# (``fastnn.datasets.xor(n=200, noise=0.1)``). The decision boundary that
# ``fastnn.plots.plot_decision_boundary`` draws is no longer a straight line.

X_xor, y_xor = xor(n=200, noise=0.1, seed=0)
mlp = fastnn.MLP([2, 8, 2], activation="tanh", seed=0)
history = mlp.fit(X_xor, y_xor, epochs=200, batch_size=16, lr=0.1, momentum=0.9, verbose=0)
acc = mlp.evaluate(X_xor, y_xor)["accuracy"]
print(f"2-8-2 tanh network: loss {history.loss[0]:.3f} -> {history.loss[-1]:.3f} over {history.epochs} epochs, "
      f"training accuracy {acc:.3f}")
print("on the four corners of the truth table:", mlp.predict(X_gate))
assert acc > 0.95
assert np.array_equal(mlp.predict(X_gate), gates["XOR"])

show_png(plot_decision_boundary(mlp, X_xor, y_xor, OUT / "xor.png", title="XOR, 2-8-2 tanh network"))

# %%
# For comparison, the same picture for a perceptron-like network without a hidden layer
# (``MLP([2, 2])``, softmax output) trained the same way: its boundary is a straight line, and
# it can classify at most three of the four corners correctly.

linear = fastnn.MLP([2, 2], seed=0)
linear.fit(X_xor, y_xor, epochs=200, batch_size=16, lr=0.1, momentum=0.9, verbose=0)
print(f"no hidden layer: training accuracy {linear.evaluate(X_xor, y_xor)['accuracy']:.3f}")
show_png(plot_decision_boundary(linear, X_xor, y_xor, OUT / "xor_linear.png", title="XOR, no hidden layer"))

# %%
# What to take away
# -----------------
#
# * A neuron is a weighted sum plus a bias, passed through an activation: :math:`a = f(xW + b)`.
# * A single neuron draws one straight boundary; the perceptron rule finds it whenever one exists
#   (AND, OR) and never settles when none does (XOR).
# * A hidden layer bends the boundary. How such a network learns its weights is backpropagation,
#   the subject of :doc:`plot_04_backprop_by_hand`.
#
# From the command line, ``fastnn demo perceptron`` prints the same comparison.
