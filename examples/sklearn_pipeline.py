"""fastnn inside scikit-learn: Pipeline, GridSearchCV, cross_val_score (pip install scikit-learn).

    python examples/sklearn_pipeline.py
"""
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from fastnn.datasets import load_mnist_subset
from fastnn.sklearn import MLPClassifier

(X, y), (X_test, y_test) = load_mnist_subset()
X, y = X[:3000], y[:3000]

pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(128,), epochs=10, lr=0.01,
                                                     random_state=0))
print("5-fold accuracy:", cross_val_score(pipe, X, y, cv=5, n_jobs=2).round(4))

search = GridSearchCV(pipe, {"mlpclassifier__l2": [0.0, 1e-3], "mlpclassifier__dropout": [0.0, 0.2]},
                      cv=3, n_jobs=2).fit(X, y)
print("best:", search.best_params_, f"cv accuracy {search.best_score_:.4f}",
      f"test accuracy {search.score(X_test, y_test):.4f}")
search.best_estimator_[-1].model_.summary()
