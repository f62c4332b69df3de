"""Every number of one backprop step, with its equation: the worked example of the course's backpropagation lecture.

    python examples/trace_worked_example.py          (the same as: fastnn trace)
"""
import numpy as np

import fastnn

# No arguments: the 3-3-2 sigmoid network of the course's backpropagation lecture, one sample, MSE, lr = 1.
t = fastnn.trace()
print(t)
print()
print("y_hat =", t.output, " J =", round(t.loss, 4), " dJ/dW2[1,0] =", round(float(t["dW2"][1, 0]), 4),
      " W2[1,0] after the step =", round(float(t["W2_new"][1, 0]), 4))

# Any model, any batch: here a small residual network with PReLU and L2, two samples.
model = fastnn.MLP([3, 4, 4, 2], activation="prelu", residual=True, l2=1e-3, dtype="float64", seed=0)
x = np.array([[0.5, -0.2, 0.1], [0.0, 0.3, -0.4]])
print()
print(fastnn.trace(model, x, [0, 1], lr=0.1))
