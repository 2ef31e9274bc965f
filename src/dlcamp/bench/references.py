"""Reference baselines from scikit-learn, run on exactly the split dlcamp trains on."""

from __future__ import annotations

import time
from typing import Callable

from dlcamp.registry import Registry

REFERENCES: Registry = Registry("reference")


@REFERENCES.register("svc-digits")
def svc_digits(*, seed: int = 0) -> dict[str, float]:
    """scikit-learn SVC (RBF kernel, C=10, gamma='scale') on the digits split; deterministic."""
    from sklearn.svm import SVC

    from dlcamp.data.digits import digits_arrays

    X, y, split = digits_arrays()
    t0 = time.perf_counter()
    clf = SVC(C=10.0, gamma="scale").fit(X[split["train"]], y[split["train"]])
    seconds = time.perf_counter() - t0
    return {"test/acc": float(clf.score(X[split["test"]], y[split["test"]])), "train_seconds": seconds}


@REFERENCES.register("mlp-sklearn-digits")
def mlp_sklearn_digits(*, seed: int = 0) -> dict[str, float]:
    """scikit-learn MLPClassifier (256-256 ReLU, Adam, early stopping off) on the digits split."""
    from sklearn.neural_network import MLPClassifier

    from dlcamp.data.digits import digits_arrays

    X, y, split = digits_arrays()
    t0 = time.perf_counter()
    clf = MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=300, random_state=seed)
    clf.fit(X[split["train"]], y[split["train"]])
    seconds = time.perf_counter() - t0
    return {"test/acc": float(clf.score(X[split["test"]], y[split["test"]])), "train_seconds": seconds}


def get_reference(name: str) -> Callable[..., dict[str, float]]:
    return REFERENCES.builder(name)
