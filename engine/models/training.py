"""Stage 4, train: scikit-learn candidates and the PyTorch MLP, exported to ONNX.

Every candidate becomes one ONNX graph that takes the raw columns (the
preprocessing is inside it) and a native model for the parity check. Seeds are
fixed; sklearn, skl2onnx and torch are imported only here, when training runs.
"""

from __future__ import annotations

import difflib
import pickle
import time
from typing import Any

import numpy as np

from engine.core.config import Candidate
from engine.core.errors import ConfigError, TrainingError
from engine.core.events import EventSink, Progress
from engine.core.onnx_tools import make_session, model_bytes, rename_output, run_model
from engine.data.dataset import Dataset
from engine.data.features import (
    FeatureSpec,
    build_preprocessor,
    model_frame,
    onnx_feed,
    onnx_input_types,
)
from engine.models.base import TrainedModel, check_parity

SKLEARN_OPSET = {"": 17, "ai.onnx.ml": 3}


def _estimator(kind: str, task: str, seed: int) -> Any:
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        GradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge

    classify = task == "classification"
    if kind == "linear":
        return LogisticRegression(max_iter=2000, random_state=seed) if classify else Ridge()
    if kind == "random_forest":
        cls = RandomForestClassifier if classify else RandomForestRegressor
        return cls(random_state=seed, n_jobs=-1)
    if kind == "gradient_boosting":
        cls2 = GradientBoostingClassifier if classify else GradientBoostingRegressor
        return cls2(random_state=seed)
    raise ConfigError(f"unknown model kind {kind!r}")


def _check_params(candidate: Candidate, known: set[str]) -> None:
    for key in candidate.params:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"models.{candidate.name}.{key}: not a parameter of {candidate.kind}{hint}"
            )


def train_candidate(
    candidate: Candidate,
    dataset: Dataset,
    spec: FeatureSpec,
    seed: int,
    events: EventSink,
) -> TrainedModel:
    if candidate.kind == "mlp":
        from engine.models.mlp import train_mlp

        return train_mlp(candidate, dataset, spec, seed, events)
    return _train_sklearn(candidate, dataset, spec, seed, events)


def _train_sklearn(
    candidate: Candidate, dataset: Dataset, spec: FeatureSpec, seed: int, events: EventSink
) -> TrainedModel:
    from skl2onnx import convert_sklearn
    from sklearn.pipeline import Pipeline

    started = time.perf_counter()
    task = dataset.task
    estimator = _estimator(candidate.kind, task, seed)
    _check_params(candidate, set(estimator.get_params()))
    try:
        estimator.set_params(**candidate.params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"models.{candidate.name}: {exc}") from exc
    pipeline = Pipeline([("prep", build_preprocessor(spec)), ("model", estimator)])
    events(Progress("train", candidate.name, 0, 1, f"fitting {type(estimator).__name__}"))
    x_train = model_frame(dataset.train, spec)
    y_train = dataset.train[dataset.target].to_numpy()
    try:
        pipeline.fit(x_train, y_train)
    except ValueError as exc:  # sklearn's InvalidParameterError is a ValueError
        raise TrainingError(f"models.{candidate.name}: {exc}") from exc
    events(Progress("train", candidate.name, 1, 1, "exporting to ONNX"))
    options = {type(estimator): {"zipmap": False}} if task == "classification" else None
    onnx_model = convert_sklearn(
        pipeline,
        name=candidate.name,  # skl2onnx's default is a random uuid: the bytes would differ per run
        initial_types=onnx_input_types(spec),
        options=options,
        target_opset=SKLEARN_OPSET,
    )
    if task == "regression":
        rename_output(onnx_model, onnx_model.graph.output[0].name, "prediction")
    onnx_bytes = model_bytes(onnx_model)

    x_holdout = model_frame(dataset.holdout, spec)
    native = (
        pipeline.predict_proba(x_holdout)
        if task == "classification"
        else pipeline.predict(x_holdout)
    )
    onnx_out = run_model(make_session(onnx_bytes), onnx_feed(dataset.holdout, spec), task)
    parity = check_parity(np.asarray(native), onnx_out, task, candidate.name)
    params = {k: v for k, v in estimator.get_params().items() if _plain(v)}
    return TrainedModel(
        candidate=candidate,
        params=params,
        device="cpu",
        onnx_bytes=onnx_bytes,
        native_bytes=pickle.dumps(pipeline),
        holdout_output=onnx_out,
        parity_max_abs_diff=parity,
        duration_s=time.perf_counter() - started,
    )


def _plain(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)
