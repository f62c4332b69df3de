"""The perceptron learns AND and OR but cannot learn XOR; one hidden layer can.

    python examples/perceptron_xor.py                 (like: fastnn demo perceptron)
"""
import numpy as np

import fastnn

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
gates = {"AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "XOR": [0, 1, 1, 0]}

for gate, y in gates.items():
    p = fastnn.Perceptron(lr=1.0).fit(X, y, epochs=100)
    print(f"perceptron {gate}: accuracy {p.score(X, y):.2f}, converged {p.converged_} after "
          f"{p.n_epochs_} epochs, w = {p.weights_}, b = {p.bias_}")

# -1/+1 labels work too, and predictions come back in the same labels.
print(fastnn.Perceptron().fit(X, [-1, -1, -1, 1]).predict(X))

mlp = fastnn.MLP([2, 8, 2], activation="tanh", seed=0)
mlp.fit(X, gates["XOR"], epochs=500, batch_size=4, lr=0.5, momentum=0.9, verbose=0)
print("MLP 2-8-2 on XOR:", mlp.predict(X), "accuracy", mlp.evaluate(X, gates["XOR"])["accuracy"])
