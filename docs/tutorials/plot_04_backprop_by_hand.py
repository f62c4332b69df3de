r"""
Backpropagation by hand
=======================

The lecture on training works one step of backpropagation through a tiny network with pencil
and paper. This page takes the same step with fastnn and prints every number, so you can check
each line of the derivation, and then checks backprop itself against the definition of a
derivative.

The network is 3-3-2 with a sigmoid :math:`\sigma(z) = 1/(1 + e^{-z})` in both layers, the loss
is the half squared error, and there is one training sample:

.. math::

   x = (0.02,\ 0.04,\ 0.01), \qquad y = (0.9,\ 0.5), \qquad
   b_1 = (0.4,\ 0.4,\ 0.4), \qquad b_2 = (0.7,\ 0.7),

   W_1 = \begin{pmatrix} 0.25 & 0.15 & 0.30 \\ 0.25 & 0.20 & 0.35 \\ 0.10 & 0.25 & 0.15 \end{pmatrix},
   \qquad
   W_2 = \begin{pmatrix} 0.40 & 0.25 \\ 0.35 & 0.30 \\ 0.01 & 0.35 \end{pmatrix}.

``W[i, j]`` joins unit ``i`` of the layer below to unit ``j`` of the layer above, so the matrices
are typed in exactly as the lecture prints them.
"""

import matplotlib.pyplot as plt
import numpy as np

import fastnn
from fastnn.tracing import worked_example

# %%
# The whole step, traced
# ----------------------
#
# ``fastnn.trace()`` with no arguments builds this network (``fastnn.tracing.worked_example``),
# runs one forward pass, the loss, the backward pass and one SGD step with learning rate 1, and
# records every buffer the kernels fill. The numbers come from the same engine calls that
# ``fit`` makes; the model itself is left unchanged. Printing the trace shows each quantity next
# to its equation.

t = fastnn.trace()
print(t)

# %%
# The forward pass
# ----------------
#
# Layer by layer, :math:`z_l = a_{l-1} W_l + b_l` and :math:`a_l = \sigma(z_l)`, with
# :math:`a_0 = x`. The hidden layer gets :math:`z_1 = (0.4160, 0.4135, 0.4215)` and
# :math:`a_1 = (0.6025, 0.6019, 0.6038)`; the output is :math:`\hat y = a_2`.

z1, a1, z2, y_hat = (t[name][0] for name in ("z1", "a1", "z2", "a2"))
print("z1    =", z1.round(4), "  a1 =", a1.round(4))
print("z2    =", z2.round(4), "  y_hat = a2 =", y_hat.round(4))
assert round(float(y_hat[0]), 4) == 0.7609
assert round(float(y_hat[1]), 4) == 0.7760

# %%
# The loss
# --------
#
# .. math::
#
#    J = \tfrac12 (\hat y_1 - y_1)^2 + \tfrac12 (\hat y_2 - y_2)^2
#      = \tfrac12 (0.7609 - 0.9)^2 + \tfrac12 (0.7760 - 0.5)^2 .

J = t.loss
print(f"J = 1/2 ({y_hat[0]:.4f} - 0.9)^2 + 1/2 ({y_hat[1]:.4f} - 0.5)^2 = {J:.4f}")
assert round(J, 4) == 0.0478

# %%
# One weight, by the chain rule
# -----------------------------
#
# Take the weight :math:`w = W_2[1, 0]` (0.35), from hidden unit 2 to output 1 (fastnn counts
# from 0, the lecture from 1). It reaches the loss only through :math:`z_{2,1}` and
# :math:`\hat y_1`, so
#
# .. math::
#
#    \frac{\partial J}{\partial w}
#    = \frac{\partial J}{\partial \hat y_1}\,
#      \frac{\partial \hat y_1}{\partial z_{2,1}}\,
#      \frac{\partial z_{2,1}}{\partial w}
#    = (\hat y_1 - y_1)\cdot \hat y_1 (1 - \hat y_1) \cdot a_{1,2} .
#
# Each factor, and their product, from the traced values:

f1 = y_hat[0] - 0.9  # dJ/dy_hat_1
f2 = y_hat[0] * (1 - y_hat[0])  # sigmoid'(z) = a (1 - a)
f3 = a1[1]  # dz/dw = the input the weight multiplies
print(f"dJ/dy_hat1 = {f1:.4f},  dy_hat1/dz = {f2:.4f},  dz/dw = {f3:.4f}")
print(f"dJ/dw = {f1:.4f} x {f2:.4f} x {f3:.4f} = {f1 * f2 * f3:.4f}")
dJ_dw = float(t["dW2"][1, 0])
print(f"backprop's dW2[1, 0] = {dJ_dw:.4f}")
assert round(dJ_dw, 4) == -0.0152
assert abs(f1 * f2 * f3 - dJ_dw) < 1e-12

# %%
# The update
# ----------
#
# Gradient descent with learning rate :math:`\eta = 1` moves the weight against its gradient:
# :math:`w \leftarrow w - \eta\, \partial J / \partial w = 0.35 - (-0.0152) = 0.3652`.

w_new = float(t["W2_new"][1, 0])
print(f"W2[1, 0]: 0.35 -> {w_new:.4f}")
assert round(w_new, 4) == 0.3652

# %%
# All the weights at once: deltas
# -------------------------------
#
# Backpropagation organises the chain rule so that nothing is computed twice. Define the *delta*
# of a layer, :math:`\delta_l = \partial J / \partial z_l` (a row per sample). For the output
# layer with the half squared error and a sigmoid,
#
# .. math::
#
#    \delta_2 = (a_2 - y) \odot a_2 (1 - a_2),
#
# and every layer below receives its delta from the layer above:
#
# .. math::
#
#    \delta_1 = f'(z_1) \odot (\delta_2 W_2^\top), \qquad
#    \frac{\partial J}{\partial W_l} = \frac1B\, a_{l-1}^\top \delta_l, \qquad
#    \frac{\partial J}{\partial b_l} = \frac1B \sum_b \delta_{l,b} .
#
# The same formulas in NumPy, from the traced forward values, give the trace's numbers for every
# weight (the one above is one entry of ``dW2``):

x, y = np.array([[0.02, 0.04, 0.01]]), np.array([[0.9, 0.5]])
W2 = t["W2"]
delta2 = (t["a2"] - y) * t["a2"] * (1 - t["a2"])
dW2 = t["a1"].T @ delta2
delta1 = t["a1"] * (1 - t["a1"]) * (delta2 @ W2.T)
dW1 = x.T @ delta1
print("delta2 =", delta2.round(4), "\ndW2 =\n", dW2.round(4))
print("delta1 =", delta1.round(4), "\ndW1 =\n", dW1)
for name, mine in (("delta2", delta2), ("dW2", dW2), ("delta1", delta1), ("dW1", dW1)):
    assert np.allclose(mine, t[name], rtol=1e-10, atol=1e-15), name

# %%
# The deep-networks lecture writes the same two rules with column vectors and weight matrices of
# shape ``(n_out, n_in)``: :math:`\partial J / \partial w^l = \delta^{l+1} (a^l)^\top` and
# :math:`\delta^l = f'(z^l) \circ (w^l)^\top \delta^{l+1}`. fastnn stores a batch as rows and
# :math:`W` as ``(n_in, n_out)``, the transpose of that :math:`w`, so the same products appear
# transposed: :math:`a_{l-1}^\top \delta_l` and :math:`\delta_{l+1} W_{l+1}^\top`. The column
# form gives the transpose of ``dW2``:

w2 = W2.T  # the lecture's (n_out, n_in) matrix
delta2_col, a1_col = delta2.T, t["a1"].T  # column vectors
print("delta2 (a1)^T =\n", (delta2_col @ a1_col.T).round(4), "\n= dW2^T")
assert np.allclose(delta2_col @ a1_col.T, t["dW2"].T)
assert np.allclose((t["a1"] * (1 - t["a1"])).T * (w2.T @ delta2_col), t["delta1"].T)

# %%
# The first layer's gradients are tiny (about :math:`10^{-5}`): each one is a product of the small
# inputs, a sigmoid slope of at most 1/4 and the output error passed back through :math:`W_2`.
# The picture shows the size of every gradient entry of both layers.

fig, axes = plt.subplots(1, 2, figsize=(8, 3))
for ax, name in zip(axes, ("dW1", "dW2")):
    im = ax.imshow(np.log10(np.abs(t[name])), cmap="magma", vmin=-6, vmax=-1)
    ax.set(title=f"log10 |{name}|", xlabel="unit j (layer above)", ylabel="unit i (layer below)")
    ax.set_xticks(range(t[name].shape[1]))
    ax.set_yticks(range(t[name].shape[0]))
fig.colorbar(im, ax=axes)
plt.show()

# %%
# The same step by ``fit``
# ------------------------
#
# The trace does not change the model. Training it for one epoch of one sample with
# ``lr=1`` performs exactly the traced step, on whichever backend the model uses:

model, x, y = worked_example()
model.fit(x, y, epochs=1, batch_size=1, lr=1.0, shuffle=False, verbose=0)
print("W2 after fit:\n", model.weights[1].round(4))
assert np.allclose(model.weights[1], t["W2_new"], atol=1e-12)
assert round(float(model.weights[1][1, 0]), 4) == 0.3652

# %%
# Checking backprop against finite differences
# --------------------------------------------
#
# A derivative is a limit, :math:`\partial J/\partial \theta \approx
# (J(\theta + \epsilon) - J(\theta - \epsilon)) / 2\epsilon` for a small :math:`\epsilon`.
# ``fastnn.gradient_check`` nudges every parameter this way, two loss evaluations each, and
# compares with backprop's gradient; the relative error per entry is
# :math:`|g_{bp} - g_{fd}| / (|g_{bp}| + |g_{fd}|)`. It needs a float64 model: in float32 the
# difference of two nearly equal losses is mostly rounding.

check = fastnn.gradient_check(model, x, y)
print(check.report(3))
assert check.max_rel_error < 1e-4

# %%
# Agreement to about six digits. The worst entries are the first layer's, whose gradients are
# only a few times :math:`10^{-6}`: the two losses of the difference quotient then agree in all
# but their last digits, and rounding sets the limit. A wrong derivative gives errors near 1.

# %%
# The same check on a network with every kind of layer the course uses: two hidden layers (tanh
# and ReLU), a softmax output with cross-entropy, and L2 regularisation, on a batch of 8 samples.

rng = np.random.default_rng(0)
X8, y8 = rng.normal(size=(8, 5)), rng.integers(0, 3, size=8)
net = fastnn.MLP([5, 6, 4, 3], activation=["tanh", "relu"], l2=1e-3, dtype="float64", seed=0)
check = fastnn.gradient_check(net, X8, y8)
print(check.report(3))
assert check.max_rel_error < 1e-5

# %%
# How small should :math:`\epsilon` be? Too large and the difference quotient is a poor
# approximation (its error shrinks like :math:`\epsilon^2`); too small and the two losses agree in
# almost all their digits, so rounding dominates (that error grows like :math:`1/\epsilon`). In
# float64 the best values lie in between; the checker's default is :math:`10^{-6}`. (With ReLU
# units a large step can also cross a kink, where the function has no derivative.)

eps_values = np.logspace(-1, -11, 11)
errors = [fastnn.gradient_check(net, X8, y8, eps=e).max_rel_error for e in eps_values]
for e, err in zip(eps_values, errors):
    print(f"eps = {e:.0e}   max relative error {err:.1e}")
print(f"smallest error at eps = {eps_values[int(np.argmin(errors))]:.0e}")

fig, ax = plt.subplots(figsize=(6, 3.6))
ax.loglog(eps_values, errors, "o-")
ax.set(xlabel="epsilon", ylabel="max relative error", title="finite differences against backprop")
ax.invert_xaxis()
fig.tight_layout()
plt.show()

# %%
# From the command line, ``fastnn trace`` prints the worked example, and
# ``fastnn trace --model m.npz --x ... --y ...`` traces a step of any saved model.
