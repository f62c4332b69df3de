r"""
Linear regression and gradient descent
======================================

Before networks, the simplest model that learns from data: a straight line fitted by gradient
descent on the squared error. A linear model is a neuron with the identity as its activation,
so fastnn trains it with the same code that trains deep networks, and we can check its answer
against the exact least-squares solution.

The model and the loss, in fastnn's notation (a batch of :math:`B` rows :math:`x_b`):

.. math::

   \hat y_b = x_b W + b, \qquad
   J(W, b) = \frac{1}{B} \sum_{b=1}^{B} \tfrac12 \lVert \hat y_b - y_b \rVert^2 .

fastnn's ``"mse"`` loss is this *half* squared error, averaged over the batch: the factor
:math:`\tfrac12` cancels the 2 of the derivative, so the gradient is simply
:math:`\partial J / \partial W = \frac1B \sum_b x_b^\top (\hat y_b - y_b)`. Gradient descent then
repeats :math:`W \leftarrow W - \eta\, \partial J / \partial W` (and the same for :math:`b`) with a
learning rate :math:`\eta`.
"""

import warnings

import matplotlib.pyplot as plt
import numpy as np

import fastnn
from fastnn import activations, losses
from fastnn.datasets import linear_line

# %%
# The data and the exact answer
# -----------------------------
#
# ``fastnn.datasets.linear_line`` draws points around :math:`y = 2x + 1` with Gaussian noise.
# Least squares has a closed-form solution (the normal equations), which NumPy's ``lstsq``
# computes; gradient descent should arrive at the same line.

X, y = linear_line(n=50, slope=2.0, intercept=1.0, noise=0.3, seed=0)
A = np.hstack([X, np.ones_like(X)])  # columns: x and 1 (for the intercept)
(w_ls, b_ls), *_ = np.linalg.lstsq(A, y[:, 0], rcond=None)
print(f"least squares: w = {w_ls:.4f}, b = {b_ls:.4f}")

# %%
# Gradient descent with fastnn
# ----------------------------
#
# ``MLP([1, 1], output="identity")`` is the line :math:`\hat y = x w + b` with the ``"mse"`` loss.
# We start from :math:`w = b = 0`, and make every step see the whole data set
# (``batch_size=len(X)``): that is plain (batch) gradient descent. A callback records the
# parameters after every epoch, so we can draw the path they take.

model = fastnn.MLP([1, 1], output="identity", dtype="float64", backend="numpy", seed=0)
model.weights = [np.zeros((1, 1))]
model.biases = [np.zeros(1)]

path = [(0.0, 0.0)]


def record(epoch, logs):
    path.append((float(model.weights[0][0, 0]), float(model.biases[0][0])))


history = model.fit(X, y, epochs=60, batch_size=len(X), lr=0.5, shuffle=False, verbose=0, callbacks=[record])
w_gd, b_gd = path[-1]
print(f"gradient descent after {history.epochs} steps: w = {w_gd:.4f}, b = {b_gd:.4f}")
print(f"loss J (half squared error): {history.loss[0]:.4f} after the first step, {history.loss[-1]:.4f} at the end")
print(f"least squares' loss:        {model.loss(X, y):.4f} (the model's now) vs "
      f"{0.5 * np.mean((A @ [w_ls, b_ls] - y[:, 0]) ** 2):.4f} (lstsq)")
assert abs(w_gd - w_ls) < 1e-3 and abs(b_gd - b_ls) < 1e-3

# %%
# The loss surface and the path of descent
# ----------------------------------------
#
# With two parameters we can draw :math:`J(w, b)` as contour lines. Each value below comes from
# ``model.loss`` with the parameters set to that grid point. The squared error makes the surface
# a bowl with one minimum (the least-squares answer); every gradient step goes downhill,
# perpendicular to the contour lines.

ws, bs = np.linspace(-0.5, 3.5, 41), np.linspace(-1.0, 2.5, 36)
J = np.empty((len(bs), len(ws)))
probe = fastnn.MLP([1, 1], output="identity", dtype="float64", backend="numpy", seed=0)
for i, bb in enumerate(bs):
    for j, ww in enumerate(ws):
        probe.weights, probe.biases = [np.array([[ww]])], [np.array([bb])]
        J[i, j] = probe.loss(X, y)

p = np.array(path)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
cs = ax1.contour(ws, bs, J, levels=np.geomspace(J.min() * 1.05, J.max(), 14), cmap="viridis")
ax1.clabel(cs, fontsize=6, fmt="%.2f")
ax1.plot(p[:, 0], p[:, 1], "o-", ms=3, color="C3", label="gradient descent")
ax1.plot(w_ls, b_ls, "k*", ms=12, label="least squares")
ax1.set(xlabel="w", ylabel="b", title="J(w, b) and the path of gradient descent")
ax1.legend(fontsize="small")
ax2.scatter(X[:, 0], y[:, 0], s=12, label="data")
ax2.plot(X[:, 0], model.predict(X), "C3", label=f"fitted: y = {w_gd:.2f} x + {b_gd:.2f}")
ax2.set(xlabel="x", ylabel="y", title="the fitted line")
ax2.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %%
# The learning rate
# -----------------
#
# The learning rate :math:`\eta` sets the step. Too small and descent crawls; too large and every
# step overshoots the bottom of the bowl, and the loss grows instead of falling. For the squared
# error the threshold is exact: with :math:`\lambda_{max}` the largest eigenvalue of
# :math:`\frac1B A^\top A` (the steepest curvature of :math:`J`; :math:`A` holds the rows
# :math:`(x_b, 1)`), gradient descent converges for :math:`\eta < 2 / \lambda_{max}` and diverges
# above it. fastnn notices a loss that explodes, stops, restores the best weights it saw, and says
# so with a ``TrainingDivergedWarning``.

lam = np.linalg.eigvalsh(A.T @ A / len(A)).max()
print(f"largest curvature of J: {lam:.3f}, so the steps diverge above lr = {2 / lam:.2f}")
curves = {}
for lr in (0.05, 0.5, 1.9, 2.1):
    m = fastnn.MLP([1, 1], output="identity", dtype="float64", backend="numpy", seed=0)
    m.weights, m.biases = [np.zeros((1, 1))], [np.zeros(1)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        curves[lr] = m.fit(X, y, epochs=60, batch_size=len(X), lr=lr, shuffle=False, verbose=0).loss
    print(f"lr = {lr:<5} loss after 5 steps {curves[lr][min(4, len(curves[lr]) - 1)]:.4g}, "
          f"at the end {curves[lr][-1]:.4g} ({len(curves[lr])} epochs)")
    for w in caught:
        print(f"   {w.category.__name__}: {w.message}")

fig, ax = plt.subplots(figsize=(6, 3.6))
for lr, c in curves.items():
    ax.plot(np.arange(1, len(c) + 1), c, label=f"lr = {lr}")
ax.set(xlabel="step (epoch of full-batch gradient descent)", ylabel="J", yscale="log",
       title="the same descent with three learning rates")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# Several inputs: the motion example
# ----------------------------------
#
# Linear regression is linear in the *parameters*, not necessarily in the measured quantity. An
# object accelerating uniformly moves :math:`s = v_0 t + \tfrac12 a t^2`; with the features
# :math:`(t, \tfrac12 t^2)` the unknowns :math:`v_0` and :math:`a` are the two weights of a linear
# model. We simulate noisy position readings for :math:`v_0 = 1.5`, :math:`a = 2` and recover
# both, by gradient descent and by least squares.

rng = np.random.default_rng(1)
t = np.linspace(0.0, 2.0, 40)
s = 1.5 * t + 0.5 * 2.0 * t**2 + rng.normal(0.0, 0.1, t.size)
F = np.column_stack([t, 0.5 * t**2])  # the features

motion = fastnn.MLP([2, 1], output="identity", dtype="float64", backend="numpy", seed=0)
motion.fit(F, s[:, None], epochs=3000, batch_size=len(F), lr=0.5, shuffle=False, verbose=0)
(v0_ls, a_ls, c_ls), *_ = np.linalg.lstsq(np.column_stack([F, np.ones_like(t)]), s, rcond=None)
v0_gd, a_gd = motion.weights[0][:, 0]
print(f"gradient descent: v0 = {v0_gd:.3f}, a = {a_gd:.3f}, offset {motion.biases[0][0]:+.3f}")
print(f"least squares:    v0 = {v0_ls:.3f}, a = {a_ls:.3f}, offset {c_ls:+.3f}   (true: v0 = 1.5, a = 2)")
assert abs(v0_gd - v0_ls) < 0.01 and abs(a_gd - a_ls) < 0.01

fig, ax = plt.subplots(figsize=(6, 3.6))
ax.scatter(t, s, s=12, label="measured positions")
ax.plot(t, motion.predict(F), "C3", label=f"fit: v0 = {v0_gd:.2f}, a = {a_gd:.2f}")
ax.set(xlabel="time t", ylabel="position s", title="uniform acceleration, fitted by gradient descent")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# The 0-1 loss and its smooth surrogates
# --------------------------------------
#
# For classification the natural loss counts mistakes: the **0-1 loss** is 1 for a wrong answer
# and 0 for a right one, and its mean is the error rate (one minus the accuracy). Gradient descent
# cannot follow it: it is flat almost everywhere, so its gradient is 0 (and undefined at the jump).
# Networks therefore train on smooth *surrogates* and report the 0-1 loss. Take one sigmoid
# output :math:`a = \sigma(z)` and a sample of class 1 (target :math:`y = 1`):
#
# .. math::
#
#    \text{0-1: } [a < \tfrac12], \qquad \text{squared error: } (y - a)^2, \qquad
#    \text{cross-entropy: } -\ln a .
#
# ``fastnn.losses`` gives each as a function of the outputs and targets, one value per sample.
# ``"squared_error"`` is the :math:`(Y - f(x))^2` of the first lecture; ``"mse"``, what fastnn
# trains with, is half of it.

sigmoid = activations.get("sigmoid")
z = np.linspace(-4.0, 4.0, 401)
a = sigmoid.f(z)[:, None]  # one output unit, 401 samples
target = np.ones_like(a)  # every sample belongs to class 1
curves = {
    "0-1": losses.get("zero_one").value(a, np.ones(len(z), dtype=int)),
    "squared error": losses.get("squared_error").value(a, target),
    "mse (half of it)": losses.get("mse").value(a, target),
    "binary cross-entropy": losses.get("binary_cross_entropy").value(a, target),
}
for zz in (-3.0, -0.5, 0.5, 3.0):
    k = int(np.argmin(np.abs(z - zz)))
    print(f"z = {zz:+.1f}, a = {a[k, 0]:.3f}: " + ", ".join(f"{name} {v[k]:.3f}" for name, v in curves.items()))
try:
    losses.get("zero_one").gradient(a, target)
except TypeError as exc:
    print("zero_one has no gradient:", exc)

fig, ax = plt.subplots(figsize=(6.5, 3.8))
for name, values in curves.items():
    ax.plot(z, values, label=name)
ax.set(xlabel="z (the output unit's input), a = sigmoid(z)", ylabel="loss for target y = 1", ylim=(0, 4.2),
       title="the 0-1 loss and its surrogates")
ax.legend()
fig.tight_layout()
plt.show()

# %%
# Both surrogates fall as the output moves towards the right answer, so their gradients point the
# way the 0-1 loss cannot. The squared error flattens out when the unit is confidently *wrong*
# (:math:`z \ll 0`), where cross-entropy keeps growing; :doc:`plot_06_losses` shows what that does
# to learning.
