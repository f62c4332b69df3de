r"""
The CIFAR-10 homework
=====================

The deep-networks lecture ends with an exercise: train a fully connected network of 5 to 8
layers on CIFAR-10, hold out 5,000 training images as a validation set, plot the training and
validation loss (the mean over each epoch) and the accuracies, and report the test accuracy of
the model that did best on the validation set. This page is that workflow in fastnn.

CIFAR-10 holds 60,000 colour images of 32 x 32 pixels in ten classes (airplane, automobile, bird,
cat, deer, dog, frog, horse, ship, truck): 50,000 for training and 10,000 for testing. Each image
is 3 x 32 x 32 = 3,072 inputs. ``fastnn.datasets.load_cifar10(path)`` reads the *binary* version
(``cifar-10-binary.tar.gz`` from https://www.cs.toronto.edu/~kriz/cifar.html, extracted: the
folder ``cifar-10-batches-bin`` with ``data_batch_1.bin`` .. ``data_batch_5.bin`` and
``test_batch.bin``).

**Which data this page used.** The data set is 160 MB and is not shipped with fastnn. When the
environment variable ``FASTNN_CIFAR10`` names the extracted folder, this page trains on it. When
it does not (as on the machine that builds this documentation), the page says so and runs the
*same workflow* on the MNIST subset bundled with fastnn instead, so that every step still runs.
Those results are MNIST results; they say nothing about CIFAR-10.

From the command line, the homework on the real data is::

    fastnn train --dataset cifar10 --data cifar-10-batches-bin --hidden 1024,512,256,128 \
                 --validation-size 5000 --epochs 20 --plot cifar.png
"""

import os

import matplotlib.pyplot as plt
import numpy as np

import fastnn
from fastnn.datasets import cifar_to_images, load_cifar10, load_mnist_subset

CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

# %%
# The data
# --------

cifar_dir = os.environ.get("FASTNN_CIFAR10")
if cifar_dir:
    (X, y), (X_test, y_test) = load_cifar10(cifar_dir)
    data_name = "CIFAR-10"
    print(f"data: CIFAR-10 (binary version) from FASTNN_CIFAR10={cifar_dir}")
    hidden, epochs = [512, 256, 128, 64], 10
else:
    (X, y), (X_test, y_test) = load_mnist_subset()
    data_name = "the MNIST subset (not CIFAR-10)"
    print("data: FASTNN_CIFAR10 is not set, so there is no CIFAR-10 here. This run uses the MNIST subset "
          "bundled with fastnn instead: every number and curve below is an MNIST result, not a CIFAR-10 one.")
    hidden, epochs = [256, 128, 64, 32], 15
print(f"{len(X):,} training images, {len(X_test):,} test images, {X.shape[1]:,} inputs each")

if cifar_dir:
    images = cifar_to_images(X[:10])
    fig, axes = plt.subplots(1, 10, figsize=(11, 1.6))
    for ax, img, label in zip(axes, images, y[:10]):
        ax.imshow(img)
        ax.set_title(CIFAR_CLASSES[label], fontsize=8)
        ax.set_axis_off()
    plt.show()

# %%
# 5,000 images for validation
# ---------------------------
#
# The validation set is drawn at random from the training images, once, with a fixed seed, and
# the network never trains on it. It is used to pick the best epoch; the test set is used once,
# at the end.

rng = np.random.default_rng(0)
order = rng.permutation(len(X))
X_val, y_val = X[order[:5000]], y[order[:5000]]
X_train, y_train = X[order[5000:]], y[order[5000:]]
print(f"{data_name}: {len(X_train):,} training, {len(X_val):,} validation, {len(X_test):,} test images")

# %%
# A five-layer fully connected network
# ------------------------------------
#
# Four hidden ReLU layers and a softmax output: five weight layers, within the homework's 5 to 8.
# He initialisation suits ReLU (see :doc:`plot_07_deep_networks`).
#
# To keep *the model that did best on validation*, ``fastnn.EarlyStopping`` watches the
# validation accuracy; with a patience as long as the whole run it never stops early, but at the
# end it restores the weights of the best epoch.

layers = [X.shape[1], *hidden, 10]
model = fastnn.MLP(layers, activation="relu", init="he", seed=0)
model.summary()
keep_best = fastnn.EarlyStopping(patience=epochs, monitor="val_accuracy")
history = model.fit(X_train, y_train, epochs=epochs, batch_size=64, lr=0.02, momentum=0.9,
                    validation_data=(X_val, y_val), early_stopping=keep_best, verbose=0)
print(f"{history.epochs} epochs; best validation accuracy {max(history.val_accuracy):.4f} in epoch "
      f"{history.best_epoch}, whose weights the model now holds")

# %%
# The curves
# ----------
#
# ``History.loss`` is the mean training loss over each epoch's mini-batches (as the homework
# asks), ``History.val_loss`` the loss on the validation images after the epoch.

ep = np.arange(1, history.epochs + 1)
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
ax1.plot(ep, history.loss, "o-", ms=3, label="training (mean over the epoch)")
ax1.plot(ep, history.val_loss, "s-", ms=3, label="validation")
ax1.set(xlabel="epoch", ylabel="cross-entropy", title=f"loss, {data_name}")
ax1.legend(fontsize="small")
ax2.plot(ep, history.accuracy, "o-", ms=3, label="training")
ax2.plot(ep, history.val_accuracy, "s-", ms=3, label="validation")
ax2.axvline(history.best_epoch, color="k", ls=":", label=f"best epoch ({history.best_epoch})")
ax2.set(xlabel="epoch", ylabel="accuracy", title=f"accuracy, {data_name}")
ax2.legend(fontsize="small")
fig.tight_layout()
plt.show()

# %%
# The test accuracy of the chosen model
# -------------------------------------

test = model.evaluate(X_test, y_test)
print(f"{'-'.join(map(str, layers))}, weights of epoch {history.best_epoch}: test accuracy {test['accuracy']:.4f} "
      f"on {data_name}")
if not cifar_dir:
    print("To run this page on CIFAR-10: download and extract cifar-10-binary.tar.gz, then set "
          "FASTNN_CIFAR10=/path/to/cifar-10-batches-bin before building the docs or running this script.")

# %%
# Notes for the real data set
# ---------------------------
#
# * Fully connected networks see an image as 3,072 unrelated numbers; on CIFAR-10 they reach far
#   lower accuracy than on MNIST. Convolutional networks (mentioned in the first lecture) exploit
#   the image structure and do much better.
# * Standardising each input (``fastnn.datasets.standardize``, with the training set's mean and
#   standard deviation) and data augmentation (``fastnn.augment.RandomShift(image_shape=(3, 32,
#   32))``) are worth trying; dropout and L2 too (see :doc:`plot_08_regularisation`).
# * An epoch over 45,000 images of 3,072 inputs is much more work than MNIST's; the CUDA backend
#   (``backend="cuda"``) helps on a machine with an NVIDIA GPU.
