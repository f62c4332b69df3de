"""Vanishing gradients: an 8-layer sigmoid network barely trains its first layers; ReLU and
residual (skip) connections do not have the problem.

    python examples/vanishing_gradients.py            (like: fastnn demo vanishing --plot vanishing.png)

Each sigmoid layer multiplies the backpropagated error by f'(z) <= 1/4, so after seven hidden
layers the first layer's gradient is about 10^-4 of the last layer's.  ReLU's derivative is 1
where a unit is active; a skip connection a_l = f(z_l) + a_(l-1) hands dJ/da_l to the layer
below unchanged.
"""
from fastnn.demos import vanishing_gradients

result = vanishing_gradients(depth=8, width=32, epochs=2, n_samples=2000, seed=0)
print(result)
for name in result.norms:
    print(f"{name:<20} first layer / last layer gradient: {result.ratio(name):.1e}")

try:
    from fastnn.plots import plot_grad_norms, plot_layer_grad_norms

    print("saved", plot_layer_grad_norms(result.norms, "vanishing.png", title="vanishing gradients"))
    print("saved", plot_grad_norms(result.histories["sigmoid"], "sigmoid_grad_norms.png"))
except ImportError as exc:  # matplotlib is the optional 'plot' extra
    print(exc)

# The per-layer norms of any fit are in history.grad_norms (epochs x layers):
print(result.histories["relu"].grad_norms.round(3))
