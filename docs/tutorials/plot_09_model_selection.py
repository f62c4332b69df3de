r"""
Choosing models honestly: hold-out and cross-validation
=======================================================

Every choice you make while looking at a score (the number of hidden units, the learning rate,
the penalty, when to stop) fits the model a little to the data that produced the score. To know
how well the final model does on new data, that score must come from data that played no part in
any choice. This page compares the three ways the lecture gives to estimate performance (a
hold-out split, k-fold cross-validation and leave-one-out) and uses cross-validation to choose a
network, keeping the test set for the single final report.

The k-fold estimate averages the scores of :math:`k` models, each tested on the fold it did not
train on:

.. math::

   \text{CV}_k = \frac1k \sum_{i=1}^{k} \text{score}\big(\text{model trained without fold } i,\ \text{fold } i\big).
"""

import matplotlib.pyplot as plt
import numpy as np

import fastnn
from fastnn.datasets import load_mnist_subset, two_spirals
from fastnn.model_selection import KFold, cross_validate, train_test_split

(X_all, y_all), (X_test, y_test) = load_mnist_subset()
X, y = X_all[:2000], y_all[:2000]  # the data we may look at; X_test is kept for the end
FIT = {"epochs": 5, "batch_size": 32, "lr": 0.05, "momentum": 0.9}


def make_model():
    return fastnn.MLP([784, 64, 10], seed=0)


# %%
# A single hold-out split
# -----------------------
#
# The simplest estimate: set part of the data aside (``train_test_split``, here 20%, with the
# class proportions kept by ``stratify=y``), train on the rest, score on the part set aside. It
# uses only 80% of the data for training and its answer depends on which 20% were drawn. The
# same network and training, five different random splits:

holdout = []
for seed in range(5):
    X_tr, X_ho, y_tr, y_ho = train_test_split(X, y, test_size=0.2, stratify=y, seed=seed)
    model = make_model()
    model.fit(X_tr, y_tr, verbose=0, **FIT)
    holdout.append(model.evaluate(X_ho, y_ho)["accuracy"])
    print(f"split seed {seed}: {len(X_tr)} training / {len(X_ho)} hold-out images, hold-out accuracy {holdout[-1]:.3f}")
print(f"the five estimates range over {min(holdout):.3f} .. {max(holdout):.3f}")

# %%
# k-fold cross-validation
# -----------------------
#
# k-fold cross-validation cuts the data into :math:`k` folds, trains :math:`k` models, each on
# :math:`k-1` folds, and tests each on the remaining fold. Every sample is tested exactly once,
# and the spread of the :math:`k` scores shows how much the estimate can be trusted. The picture
# shows which samples each of 5 folds trains (blue) and tests (orange) on.

folds = KFold(5, shuffle=True, seed=0)
grid = np.zeros((5, len(X)))
for i, (_, test_idx) in enumerate(folds.split(X)):
    grid[i, test_idx] = 1
fig, ax = plt.subplots(figsize=(8, 1.8))
ax.imshow(grid[:, :100], aspect="auto", cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
ax.set(xlabel="sample (the first 100 of 2,000)", ylabel="fold", yticks=range(5), yticklabels=range(1, 6))
fig.tight_layout()
plt.show()

cv = cross_validate(make_model, X, y, cv=folds, fit_kwargs=FIT)
print(cv)

# %%
# The five test folds together cover all 2,000 images, and each model trained on 1,600 of them.
# ``cross_validate`` also runs the folds in parallel with ``n_jobs`` (through joblib, on one
# machine or a cluster); here they run one after another.
#
# Leave-one-out
# -------------
#
# With :math:`k = n` each fold is a single sample: leave-one-out cross-validation trains
# :math:`n` models on :math:`n - 1` samples each. It wastes no data, which matters when there is
# little of it, but costs :math:`n` trainings. On 100 points of the two-spirals problem, with a
# small 2-64-64-2 ReLU network (``k=len(X)`` in ``cross_validate`` is leave-one-out):

Xs, ys = two_spirals(n=100, noise=0.05, seed=0)
spiral_fit = {"epochs": 200, "batch_size": 10, "lr": 0.05, "momentum": 0.9}


def make_spiral_model():
    return fastnn.MLP([2, 64, 64, 2], activation="relu", seed=0)


loo = cross_validate(make_spiral_model, Xs, ys, k=len(Xs), fit_kwargs=spiral_fit)
ten = cross_validate(make_spiral_model, Xs, ys, k=10, fit_kwargs=spiral_fit)
print(f"leave-one-out: {loo.k} models, accuracy {loo.test_accuracy.mean():.3f} "
      f"({int(loo.test_accuracy.sum())} of {loo.k} points right), {loo.fit_time.sum():.1f} s of training")
print(f"10-fold:       {ten.k} models, accuracy {ten.test_accuracy.mean():.3f} +- {ten.test_accuracy.std():.3f}, "
      f"{ten.fit_time.sum():.1f} s of training")

# %%
# Choosing a network by cross-validation
# --------------------------------------
#
# Now use 5-fold cross-validation to pick the hidden layer's width, look at the test set once
# with the chosen model retrained on all 2,000 images, and compare. The test score is an honest
# estimate because it chose nothing.

widths = (8, 32, 128)
scores = {}
for width in widths:
    result = cross_validate(lambda w=width: fastnn.MLP([784, w, 10], seed=0), X, y, cv=folds, fit_kwargs=FIT)
    scores[width] = result.test_accuracy
    print(f"784-{width}-10: 5-fold accuracy {result.test_accuracy.mean():.3f} +- {result.test_accuracy.std():.3f}")
best = max(scores, key=lambda w: scores[w].mean())

final = fastnn.MLP([784, best, 10], seed=0)
final.fit(X, y, verbose=0, **FIT)
test_acc = final.evaluate(X_test, y_test)["accuracy"]
print(f"chosen width {best}: cross-validation {scores[best].mean():.3f}, test set (2,000 unseen images) {test_acc:.3f}")

fig, ax = plt.subplots(figsize=(6, 3.6))
ax.boxplot([scores[w] for w in widths], tick_labels=[f"784-{w}-10" for w in widths])
ax.axhline(test_acc, color="C3", ls="--", label=f"test accuracy of the chosen 784-{best}-10")
ax.set(ylabel="accuracy on the held-out fold", title="5-fold cross-validation, 2,000 MNIST images")
ax.legend(fontsize="small")
fig.tight_layout()
plt.show()
