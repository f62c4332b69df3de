"""Choosing models honestly on the bundled MNIST subset: a held-out test set, 5-fold
cross-validation (folds in parallel with joblib), bagging, early stopping and shift augmentation.

    python examples/model_selection.py
"""
import fastnn
from fastnn.augment import RandomShift
from fastnn.datasets import load_mnist_subset
from fastnn.model_selection import Bagging, cross_validate, train_test_split

(X, y), (X_test, y_test) = load_mnist_subset()
X_train, X_val, y_train, y_val = train_test_split(X, y, test_size=0.2, stratify=y, seed=0)


def make_model() -> fastnn.MLP:
    return fastnn.MLP([784, 128, 10], seed=0)


fit = {"epochs": 10, "batch_size": 64, "lr": 0.05, "momentum": 0.9}
cv = cross_validate(make_model, X, y, k=5, fit_kwargs=fit, n_jobs=2)  # n_jobs needs joblib
print(cv)

# Early stopping on a validation split of each training fold:
cv_es = cross_validate(make_model, X, y, k=5, n_jobs=2,
                       fit_kwargs=fit | {"epochs": 50, "validation_split": 0.1, "early_stopping": 3})
print("epochs trained per fold with early stopping:", cv_es.epochs)

bag = Bagging(make_model, n_estimators=5, seed=0, n_jobs=2).fit(X, y, **fit)
print(f"bagging of 5: test accuracy {bag.score(X_test, y_test):.4f}, out-of-bag {bag.oob_score_:.4f}")

for augment in (None, RandomShift(max_shift=2)):
    model = make_model()
    model.fit(X, y, epochs=30, batch_size=64, lr=0.05, momentum=0.9, verbose=0, augment=augment)
    print(f"augment={augment}: test accuracy {model.evaluate(X_test, y_test)['accuracy']:.4f}")
