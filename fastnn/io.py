"""Saving and loading models as .npz files: a format version, the architecture as JSON, the arrays.

Nothing is ever unpickled (``allow_pickle=False``), so loading a file from elsewhere cannot run code.
"""
from __future__ import annotations

import json
import os
import zipfile
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from fastnn.model import MLP

FORMAT = "fastnn-mlp"
FORMAT_VERSION = 1


def save(model: MLP, path: str | os.PathLike) -> str:
    """Write ``model`` to ``path`` (``.npz`` is appended when missing); returns the path written."""
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    config = model.get_config() | {"step": model._step}
    if not config.get("residual"):
        del config["residual"]  # plain networks stay readable by fastnn versions without skips
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION),
        "config": np.array(json.dumps(config)),
    }
    for l, (W, b, a) in enumerate(zip(model.weights, model.biases, model.alphas)):
        arrays[f"W{l}"], arrays[f"b{l}"], arrays[f"alpha{l}"] = W, b, a
    np.savez_compressed(path, **arrays)
    return path


def _bad(path: str, why: str) -> ValueError:
    return ValueError(f"{path!r} is not a usable fastnn model file: {why}. Save models with model.save(path).")


def load(path: str | os.PathLike, backend: str | None = None) -> MLP:
    """Read a model written by :meth:`MLP.save`; ``backend`` picks where it runs (default as MLP)."""
    from fastnn.model import MLP

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no model file at {path!r}")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise _bad(path, f"it could not be read as .npz ({type(exc).__name__}: {exc})") from None
    if "format" not in data or str(data["format"]) != FORMAT:
        raise _bad(path, "it has no fastnn format marker")
    version = int(data["format_version"]) if "format_version" in data else -1
    if version != FORMAT_VERSION:
        raise _bad(path, f"format version {version} is not supported by this fastnn (reads {FORMAT_VERSION})")
    try:
        config = json.loads(str(data["config"]))
        step = int(config.pop("step", 0))
        model = MLP(**config, backend=backend)
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad(path, f"its architecture record is invalid ({exc})") from None
    n = len(model.layers) - 1
    try:
        model.weights = [data[f"W{l}"] for l in range(n)]
        model.biases = [data[f"b{l}"] for l in range(n)]
        # Files from before leaky_slope / elu_alpha were settable hold (0,) for those layers: their
        # fixed alpha_j was the default, which the model just built from that config already holds.
        model.alphas = [data[f"alpha{l}"] if data[f"alpha{l}"].size or not model.alphas[l].size
                        else model.alphas[l] for l in range(n)]
    except KeyError as exc:
        raise _bad(path, f"array {exc} is missing") from None
    except ValueError as exc:
        raise _bad(path, str(exc)) from None
    model._step = step
    return model
