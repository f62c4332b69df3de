r"""
Overfitting and regularisation
==============================

A network with many parameters and few training examples can learn the examples by heart:
training accuracy climbs to 100% while accuracy on new images stalls. The gap between the two
is overfitting. This page provokes it on purpose (1,000 MNIST images, a 784-256-10 network) and
then closes the gap with each remedy of the lecture: L2 and L1 penalties, dropout, early
stopping, data augmentation and bagging.

The penalties add a term to the loss that grows with the weights (never the biases):

.. math::

   \tilde J = J + \frac{\lambda_2}{2} \sum_l \lVert W_l \rVert^2 + \lambda_1 \sum_l \lVert W_l \rVert_1,

   \frac{\partial \tilde J}{\partial W} = \frac{\partial J}{\partial W} + \lambda_2 W
   + \lambda_1 \operatorname{sign}(W).

With L2 an SGD step becomes :math:`W \leftarrow (1 - \eta\lambda_2) W - \eta\, \partial J/\partial W`:
every step first shrinks the weights a little ("weight decay"). L1 pulls every weight towards 0
by the same amount, which drives unimportant weights to (nearly) zero.
"""

import matplotlib.pyplot as plt
import numpy as np

import fastnn
from fastnn.augment import RandomShift
from fastnn.datasets import load_mnist_subset
from fastnn.model_selection import Bagging

(X_all, y_all), (X_test, y_test) = load_mnist_subset()
X, y = X_all[:1000], y_all[:1000]  # a small training set, so that overfitting shows
X_val, y_val = X_test[:1000], y_test[:1000]  # held-out images to watch during training
X_final, y_final = X_test[1000:], y_test[1000:]  # touched only to report the final numbers
EPOCHS = 40


def train(label, epochs=EPOCHS, fit_kwargs=None, **model_kwargs):
    model = fastnn.MLP([784, 256, 10], seed=0, **model_kwargs)
    h = model.fit(X, y, epochs=epochs, batch_size=32, lr=0.05, momentum=0.9, validation_data=(X_val, y_val),
                  verbose=0, **(fit_kwargs or {}))
    # accuracies of the final weights (no dropout), on the training, validation and test images
    train_acc, val_acc, test_acc = (model.evaluate(A, b)["accuracy"] for A, b in
                                    ((X, y), (X_val, y_val), (X_final, y_final)))
    print(f"{label:28s} train {train_acc:.3f}  validation {val_acc:.3f}  gap {train_acc - val_acc:+.3f}  "
          f"held-out test {test_acc:.3f}")
    return model, h


# %%
# Overfitting
# -----------
#
# Without any regularisation the network reaches 100% training accuracy within a few epochs;
# from then on the training loss keeps falling while the validation loss turns and rises: the
# network grows more and more confident about the training images, including its mistakes on
# the others.

results = {}
results["no regularisation"] = train("no regularisation")
h = results["no regularisation"][1]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
epochs = range(1, EPOCHS + 1)
ax1.plot(epochs, h.loss, label="training")
ax1.plot(epochs, h.val_loss, label="validation")
ax1.set(xlabel="epoch", ylabel="loss", yscale="log", title="loss")
ax2.plot(epochs, h.accuracy, label="training")
ax2.plot(epochs, h.val_accuracy, label="validation")
ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
ax1.legend()
fig.tight_layout()
plt.show()

# %%
# L2 and L1 penalties, dropout, augmentation
# ------------------------------------------
#
# * ``MLP(..., l2=...)`` and ``MLP(..., l1=...)`` add the penalties above.
# * **Dropout** switches off a random subset of units at every training step, so no unit can
#   rely on particular others; the network trained is, in effect, an average of many thinned
#   networks. The lecture keeps each input unit with probability 0.8 and each hidden unit with
#   0.5: in fastnn ``input_dropout=0.2, dropout=0.5`` (the probabilities of *dropping*). fastnn
#   uses inverted dropout: kept units are scaled by :math:`1/p_{keep}` during training, so
#   nothing changes at prediction time.
# * **Data augmentation** makes more training data from the data there is: each epoch
#   ``fit(augment=RandomShift(max_shift=2))`` trains on a copy of the images moved by up to 2
#   pixels in each direction (a shifted digit is still the same digit).

results["L2 (l2=1e-2)"] = train("L2 (l2=1e-2)", l2=1e-2)
results["L1 (l1=1e-3)"] = train("L1 (l1=1e-3)", l1=1e-3)
results["dropout (0.2 in, 0.5 hidden)"] = train("dropout (0.2 in, 0.5 hidden)", input_dropout=0.2, dropout=0.5)
results["augmentation (shift 2)"] = train("augmentation (shift 2)", fit_kwargs={"augment": RandomShift(max_shift=2)})

fig, axes = plt.subplots(1, len(results), figsize=(15, 3.2), sharey=True)
for ax, (label, (_, hist)) in zip(axes, results.items()):
    ax.plot(epochs, hist.accuracy, label="training")
    ax.plot(epochs, hist.val_accuracy, label="validation")
    ax.fill_between(epochs, hist.val_accuracy, hist.accuracy, alpha=0.2, color="C3", label="gap")
    ax.set(title=label, xlabel="epoch", ylim=(0.75, 1.005))
axes[0].set_ylabel("accuracy (during training)")
axes[0].legend(fontsize="small", loc="lower right")
fig.tight_layout()
plt.show()

# %%
# The training accuracy in these curves is measured during each epoch, with dropout active and
# on the shifted images, which is why it sits lower for those two. The validation *loss* shows
# the other side of overfitting: without regularisation it turns upwards after a few epochs as
# the network becomes over-confident about the training images. Where each curve has its
# minimum, and where it ends:

fig, ax = plt.subplots(figsize=(6.5, 3.8))
for label, (_, hist) in results.items():
    best = int(np.argmin(hist.val_loss))
    print(f"{label:28s} lowest validation loss {hist.val_loss[best]:.3f} in epoch {best + 1}, "
          f"{hist.val_loss[-1]:.3f} in epoch {EPOCHS}")
    ax.plot(epochs, hist.val_loss, label=label)
ax.set(xlabel="epoch", ylabel="validation loss", yscale="log", title="validation loss (penalties included)")
ax.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %%
# What the penalties do to the weights
# ------------------------------------
#
# The distribution of the first layer's weights: L2 shrinks all of them, L1 piles many up at
# (almost) zero. Pixels at the border of MNIST images are always 0, so their weights get no
# gradient from the data at all; only the penalty moves them.

fig, ax = plt.subplots(figsize=(6.5, 3.8))
bins = np.linspace(-0.15, 0.15, 61)
for label in ("no regularisation", "L2 (l2=1e-2)", "L1 (l1=1e-3)"):
    W1 = results[label][0].weights[0].ravel()
    near_zero = np.mean(np.abs(W1) < 1e-3)
    print(f"{label:18s} first layer: |W| mean {np.abs(W1).mean():.4f}, {near_zero:.1%} of weights below 1e-3")
    ax.hist(W1, bins=bins, histtype="step", lw=1.5, label=label)
ax.set(xlabel="weight value (layer 1)", ylabel="count", yscale="log", title="first-layer weights after training")
ax.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %%
# Early stopping
# --------------
#
# Since the validation loss turns upwards after a while, stop there: ``early_stopping=5`` (or
# ``fastnn.EarlyStopping(patience=5)``) stops once the validation loss has not improved for 5
# epochs, and puts back the weights of the best epoch. ``History.best_epoch`` (counted from 1)
# says which one that was.

model, h = train("early stopping (patience 5)", fit_kwargs={"early_stopping": 5})
print(f"stopped after epoch {h.epochs} of {EPOCHS}; restored the weights of epoch {h.best_epoch} "
      f"(validation loss {min(h.val_loss):.4f})")

# %%
# Bagging
# -------
#
# Bagging trains several networks, each on a bootstrap sample of the training set (drawn with
# replacement, as many rows as the original), and averages their predicted probabilities.
# Their mistakes differ, so the average makes fewer. ``oob_score_`` scores every training image
# with the members that did not see it: a validation estimate that costs no extra data.

bag = Bagging(lambda: fastnn.MLP([784, 256, 10], seed=0), n_estimators=5, seed=0)
bag.fit(X, y, epochs=15, batch_size=32, lr=0.05, momentum=0.9)
members = [m.evaluate(X_final, y_final)["accuracy"] for m in bag.estimators_]
print("members' held-out test accuracy:", np.round(members, 3))
print(f"bagged ensemble: {bag.score(X_final, y_final):.3f}   out-of-bag estimate: {bag.oob_score_:.3f}")

# %%
# Summary
# -------
#
# The numbers above are one seeded run on 1,000 images: not every remedy helps at every
# strength, and whether one narrows the gap *and* raises the accuracy on new images depends on the
# data and the network. Choosing the remedy and its strength (the :math:`\lambda`, the dropout
# rates, the patience) is model selection, the subject of the next tutorial, and must
# not be done on the test set that reports the final result.
