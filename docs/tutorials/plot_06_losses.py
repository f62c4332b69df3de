r"""
Losses and output layers
========================

The loss turns "how wrong is the network" into a number, and its derivative is where
backpropagation starts. This page shows why classification networks pair a sigmoid or softmax
output with the cross-entropy loss rather than the squared error: with the squared error a
saturated output unit that is badly wrong learns slowest exactly when it should learn fastest.

The per-sample losses fastnn offers (the batch loss is their mean), with :math:`a` the output
activations and :math:`y` the target:

.. math::

   \text{mse: } J = \tfrac12 \sum_j (a_j - y_j)^2, \qquad
   \text{cross\_entropy: } J = -\sum_j y_j \ln a_j \ (\text{softmax output}),

.. math::

   \text{binary\_cross\_entropy: } J = -\sum_j \big[y_j \ln a_j + (1 - y_j) \ln (1 - a_j)\big]
   \ (\text{sigmoid output}).

Note the :math:`\tfrac12` in fastnn's ``"mse"``: it is half the squared error :math:`(y - a)^2`
that the first lecture writes, so that its derivative is simply :math:`a - y`.
"""

import matplotlib.pyplot as plt
import numpy as np

import fastnn
from fastnn import activations, losses
from fastnn.datasets import load_mnist_subset, one_hot

# %%
# A saturated unit: squared error against cross-entropy
# -----------------------------------------------------
#
# Take a single sigmoid neuron, :math:`a = \sigma(wx + b)`, one input :math:`x = 1` and the target
# :math:`y = 0`. Start it badly wrong and saturated: :math:`w = b = 2`, so :math:`z = 4` and
# :math:`a = \sigma(4) \approx 0.98`. The output delta :math:`\delta = \partial J/\partial z` that
# backpropagation starts from is
#
# .. math::
#
#    \text{squared error: } \delta = (a - y)\, \sigma'(z) = (a - y)\, a (1 - a), \qquad
#    \text{cross-entropy: } \delta = a - y .
#
# With the squared error the factor :math:`\sigma'(z) = a(1-a)` is tiny when the unit saturates
# (:math:`0.018` here), so the gradient is tiny although the error is large. Cross-entropy's
# derivative cancels that factor. ``fastnn.trace`` shows both deltas:

x, target = np.array([[1.0]]), np.array([[0.0]])
neurons = {}
for loss in ("mse", "binary_cross_entropy"):
    m = fastnn.MLP([1, 1], output="sigmoid", loss=loss, dtype="float64", backend="numpy", seed=0)
    m.weights, m.biases = [np.array([[2.0]])], [np.array([2.0])]
    t = fastnn.trace(m, x, target, lr=0.15)
    print(f"{loss:21s} a = {float(t['a1'][0, 0]):.4f}   J = {t.loss:.4f}   "
          f"delta = dJ/dz = {float(t['delta1'][0, 0]):+.4f}   dJ/dw = {float(t['dW1'][0, 0]):+.4f}")
    neurons[loss] = m

# %%
# Now let both neurons learn, one sample, plain gradient descent with the same learning rate, and
# record the output after every step. The squared-error neuron sits on the flat part of the
# sigmoid for many steps before it starts to move; the cross-entropy neuron moves at once.

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for loss, m in neurons.items():
    outputs = [float(m.forward(x)[0, 0])]

    def record(epoch, logs, m=m, outputs=outputs):
        outputs.append(float(m.forward(x)[0, 0]))

    h = m.fit(x, target, epochs=300, batch_size=1, lr=0.15, shuffle=False, verbose=0, callbacks=[record])
    below = next((k for k, a in enumerate(outputs) if a < 0.5), None)
    print(f"{loss:21s} output after 50 / 300 steps: {outputs[50]:.3f} / {outputs[-1]:.3f}; "
          f"first below 0.5 after {below} steps")
    ax1.plot(outputs, label=loss)
    ax2.plot(np.arange(1, len(h.loss) + 1), h.loss, label=loss)
ax1.set(xlabel="gradient step", ylabel="output a", title="a single saturated sigmoid neuron, target 0")
ax2.set(xlabel="gradient step", ylabel="its own loss J", yscale="log", title="loss")
ax1.legend()
fig.tight_layout()
plt.show()

# %%
# Softmax with cross-entropy
# --------------------------
#
# For :math:`k` classes the output layer is a softmax, :math:`a_j = e^{z_j} / \sum_i e^{z_i}`, and
# the target a one-hot vector. Softmax with cross-entropy gives the same clean output delta as a
# sigmoid with binary cross-entropy,
#
# .. math::
#
#    \delta = \frac{\partial J}{\partial z} = a - y ,
#
# which fastnn computes directly, without forming the softmax's Jacobian. A trace of a small
# MNIST network on four images confirms it:

(X_all, y_all), (X_test, y_test) = load_mnist_subset()
net = fastnn.MLP([784, 32, 10], seed=0, dtype="float64")
t = fastnn.trace(net, X_all[:4], y_all[:4])
a2, delta2 = t["a2"], t["delta2"]
print("a2 - one_hot(y) equals delta2:", np.allclose(a2 - one_hot(y_all[:4], 10), delta2))
print("delta2 of the first image:", delta2[0].round(3), " label", y_all[0])

# %%
# The same network trained with the squared error on its softmax outputs (``loss="mse"``; the
# delta then goes through the softmax's Jacobian, whose entries are small once the output is
# confident) against cross-entropy, everything else equal, on 5,000 images:

X, y = X_all[:5000], y_all[:5000]
fig, ax = plt.subplots(figsize=(6.5, 3.8))
for loss in ("cross_entropy", "mse"):
    m = fastnn.MLP([784, 32, 10], loss=loss, seed=0)
    h = m.fit(X, y, epochs=15, batch_size=32, lr=0.05, verbose=0)
    print(f"softmax + {loss:13s}: training accuracy per epoch {np.round(h.accuracy[::2], 3)}, "
          f"test accuracy {m.evaluate(X_test, y_test)['accuracy']:.3f}")
    ax.plot(np.arange(1, 16), h.accuracy, "o-", ms=3, label=f"softmax + {loss}")
ax.set(xlabel="epoch", ylabel="training accuracy", title="same network, two losses (lr 0.05, batch 32)")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# The losses as functions
# -----------------------
#
# ``fastnn.losses`` computes each loss per sample from outputs and targets (the same reference
# formulas training uses), its gradient :math:`\partial J/\partial a` and the output delta
# :math:`\partial J/\partial z` for a given output activation. A three-class output that puts 0.7
# on the right class, and one that puts 0.1 on it:

a = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])
y3 = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # both samples are class 0
for name in losses.names():
    loss = losses.get(name)
    print(f"{name:21s} J_b = {loss.formula:45s} values {np.round(loss.value(a, y3), 4)}")

# %%
# The output delta is where the choice of loss shows. With the softmax and cross-entropy it is
# :math:`a - y`; with the squared error through a sigmoid it carries the factor :math:`a(1-a)`:

print("cross_entropy, softmax output: delta =", losses.get("cross_entropy").delta(a, y3).round(3).tolist())
print("mse, sigmoid output:           delta =", losses.get("mse").delta(a, y3, output="sigmoid").round(3).tolist())

# %%
# The softmax couples its outputs: each :math:`a_j` depends on every :math:`z_k`, so its
# derivative is a matrix per sample, the Jacobian :math:`\partial a_j / \partial z_k =
# a_j([j = k] - a_k)`. The chain rule through it, :math:`\delta = J^\top\, \partial J / \partial a`,
# with cross-entropy's gradient :math:`-y_j / a_j`, collapses to :math:`a - y`:

softmax = activations.get("softmax")
zz = np.log(a)  # logits whose softmax is a
jac = softmax.jacobian(zz)  # shape (B, 3, 3)
grad = losses.get("cross_entropy").gradient(softmax.f(zz), y3)
chain = np.einsum("bkj,bk->bj", jac, grad)  # J^T (dJ/da), row by row
print("Jacobian of the first sample:\n", jac[0].round(3))
print("J^T dJ/da =", chain.round(4).tolist(), "  a - y =", (softmax.f(zz) - y3).round(4).tolist())
assert np.allclose(chain, softmax.f(zz) - y3)
