r"""
MNIST end to end
================

Handwritten digits are the course's running example: 28 x 28 grey-scale images, one digit each,
flattened to 784 inputs in :math:`[0, 1]`, with ten classes. This page trains the lecture's small
784-10-14-10 network and a bigger 784-256-128-10 one, measures their test accuracy, and looks at
what they get wrong: the confusion matrix and the misclassified digits.

**Which data.** fastnn ships a subset of MNIST inside the package (10,000 training and 2,000 test
images, balanced over the digits), so this page runs anywhere without a download. If the
environment variable ``FASTNN_MNIST`` names a folder with the four files of the full data set
(``train-images-idx3-ubyte[.gz]`` and the other three), the page trains on all 60,000 training
images and tests on all 10,000 test images instead; the output below says which one it used, and
every number on the page is measured on that data.

The lecture's demonstration reaches about 93% with the small network on the full data set, and
a bigger network trained on the full set should pass 98%. On the 10,000-image subset expect
less: fewer examples, fewer steps per epoch. The end of the page compares what this run measured
with those two figures.
"""

import os

import matplotlib.pyplot as plt
import numpy as np

import fastnn
from fastnn.datasets import load_mnist, load_mnist_subset

# %%
# Loading the data
# ----------------

if os.environ.get("FASTNN_MNIST"):
    (X, y), (X_test, y_test) = load_mnist()  # reads $FASTNN_MNIST
    source = f"the full MNIST data set from $FASTNN_MNIST ({os.environ['FASTNN_MNIST']})"
else:
    (X, y), (X_test, y_test) = load_mnist_subset()
    source = "the MNIST subset bundled with fastnn (FASTNN_MNIST is not set)"
print(f"data: {source}")
print(f"{len(X):,} training images, {len(X_test):,} test images, {X.shape[1]} pixels each, "
      f"values in [{X.min():.0f}, {X.max():.0f}]")
print("training images per digit:", np.bincount(y))

fig, axes = plt.subplots(2, 10, figsize=(10, 2.3))
for digit in range(10):
    for row in range(2):
        axes[row, digit].imshow(X[np.flatnonzero(y == digit)[row]].reshape(28, 28), cmap="gray_r")
        axes[row, digit].set_axis_off()
fig.suptitle("two training images of each digit")
plt.show()

# %%
# The lecture's network: 784-10-14-10
# -----------------------------------
#
# Two small ReLU hidden layers, a softmax output, cross-entropy loss, 8,154 parameters. We hold
# out 10% of the training images as a validation set to watch during training, and train for 10
# epochs with mini-batches of 64, momentum 0.9 and a learning rate that starts at 0.1 and follows
# a cosine schedule down towards 0 by the last epoch.

small = fastnn.MLP([784, 10, 14, 10], activation="relu", seed=0)
h_small = small.fit(X, y, epochs=10, batch_size=64, lr=0.1, momentum=0.9, lr_schedule="cosine",
                    validation_split=0.1, verbose=0)
acc_small = small.evaluate(X_test, y_test)["accuracy"]
print(f"784-10-14-10 ({small.n_params:,} parameters), {h_small.epochs} epochs: "
      f"validation accuracy {h_small.val_accuracy[-1]:.4f}, test accuracy {acc_small:.4f} on {source}")

# %%
# A bigger network: 784-256-128-10
# --------------------------------
#
# 235,146 parameters, the same recipe with a starting learning rate of 0.05.

big = fastnn.MLP([784, 256, 128, 10], activation="relu", seed=0)
h_big = big.fit(X, y, epochs=10, batch_size=64, lr=0.05, momentum=0.9, lr_schedule="cosine",
                validation_split=0.1, verbose=0)
acc_big = big.evaluate(X_test, y_test)["accuracy"]
print(f"784-256-128-10 ({big.n_params:,} parameters), {h_big.epochs} epochs: "
      f"validation accuracy {h_big.val_accuracy[-1]:.4f}, test accuracy {acc_big:.4f} on {source}")
print(f"training time per epoch: small {np.median(h_small.epoch_time):.3f} s, big {np.median(h_big.epoch_time):.3f} s "
      f"(backend {big.backend})")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
epochs = range(1, 11)
for name, h in (("784-10-14-10", h_small), ("784-256-128-10", h_big)):
    ax1.plot(epochs, h.loss, "o-", ms=3, label=f"{name} training")
    ax1.plot(epochs, h.val_loss, "s--", ms=3, label=f"{name} validation")
    ax2.plot(epochs, h.accuracy, "o-", ms=3, label=f"{name} training")
    ax2.plot(epochs, h.val_accuracy, "s--", ms=3, label=f"{name} validation")
ax1.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="loss")
ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
ax2.legend(fontsize="x-small")
fig.tight_layout()
plt.show()

# %%
# The confusion matrix
# --------------------
#
# Row :math:`i`, column :math:`j` counts the test images of digit :math:`i` that the network
# called :math:`j`; a perfect classifier has numbers only on the diagonal. The big network's:

pred = big.predict(X_test)
confusion = np.zeros((10, 10), dtype=int)
np.add.at(confusion, (y_test, pred), 1)
print("true \\ predicted " + " ".join(f"{j:5d}" for j in range(10)))
for i in range(10):
    recall = confusion[i, i] / confusion[i].sum()
    print(f"{i:16d} " + " ".join(f"{c:5d}" for c in confusion[i]) + f"   recall {recall:.3f}")
assert confusion.trace() == int(round(acc_big * len(y_test)))

fig, ax = plt.subplots(figsize=(5.5, 4.6))
off_diagonal = confusion - np.diag(np.diag(confusion))
im = ax.imshow(off_diagonal, cmap="Reds")
for i in range(10):
    for j in range(10):
        if confusion[i, j]:
            ax.text(j, i, confusion[i, j], ha="center", va="center", fontsize=7,
                    color="k" if i != j else "C0")
ax.set(xticks=range(10), yticks=range(10), xlabel="predicted digit", ylabel="true digit",
       title="confusion matrix (colour: the mistakes)")
fig.colorbar(im, ax=ax)
fig.tight_layout()
plt.show()

# %%
# The misclassified digits
# ------------------------
#
# The mistakes the big network is most confident about: each image with its true label, the
# network's answer and the probability it gave that answer. Some are genuinely ambiguous, some
# badly written, a few arguably mislabelled.

proba = big.predict_proba(X_test)
wrong = np.flatnonzero(pred != y_test)
wrong = wrong[np.argsort(-proba[wrong, pred[wrong]])][:18]
print(f"{len(np.flatnonzero(pred != y_test))} of {len(y_test)} test images misclassified")
fig, axes = plt.subplots(2, 9, figsize=(11, 3.2))
for ax, i in zip(axes.ravel(), wrong):
    ax.imshow(X_test[i].reshape(28, 28), cmap="gray_r")
    ax.set_title(f"{y_test[i]} -> {pred[i]} ({proba[i, pred[i]]:.2f})", fontsize=8)
    ax.set_axis_off()
fig.suptitle("true -> predicted (probability of the prediction)")
plt.show()

# %%
# Against the lecture's figures
# -----------------------------

full = len(X) == 60_000
for name, acc, target in (("784-10-14-10", acc_small, 0.93), ("784-256-128-10", acc_big, 0.98)):
    if full:
        verdict = "reached" if acc >= target else "not reached"
        print(f"{name}: test accuracy {acc:.4f} on full MNIST; the {target:.0%} figure is {verdict} in this run")
    else:
        print(f"{name}: test accuracy {acc:.4f} on the bundled subset; the {target:.0%} figure refers to full MNIST "
              f"and is not measured here (set FASTNN_MNIST to run this page on the full data set)")

# %%
# On the command line
# -------------------
#
# ``fastnn train`` trains a network on the bundled subset (or on full MNIST with
# ``--data DIR``); for example ``fastnn train --hidden 10,14 --epochs 10`` is the lecture's
# network, and ``fastnn train --data ~/mnist --hidden 256,128 --epochs 20 --plot curves.png`` the
# bigger one on the full data set.
