"""ONNX helpers shared by training, evaluation and (later) serving.

Every registered model takes one [N, 1] input per raw feature column and has
uniform outputs: `label` [N] and `probabilities` [N, C] for classification,
`prediction` [N, 1] for regression.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import onnx
    import onnxruntime


def rename_output(model: onnx.ModelProto, old: str, new: str) -> None:
    for node in model.graph.node:
        for i, name in enumerate(node.output):
            if name == old:
                node.output[i] = new
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
    for output in model.graph.output:
        if output.name == old:
            output.name = new


def add_label_output(model: onnx.ModelProto, classes: list[Any]) -> None:
    """Append ArgMax + Gather so the graph also outputs the class label."""
    from onnx import TensorProto, helper

    if all(isinstance(c, int | np.integer) for c in classes):
        const = helper.make_tensor(
            "mldeck_classes", TensorProto.INT64, [len(classes)], [int(c) for c in classes]
        )
        elem = TensorProto.INT64
    else:
        labels: list[Any] = [str(c).encode() for c in classes]
        const = helper.make_tensor("mldeck_classes", TensorProto.STRING, [len(classes)], labels)
        elem = TensorProto.STRING
    graph = model.graph
    graph.initializer.append(const)
    graph.node.extend(
        [
            helper.make_node(
                "ArgMax", ["probabilities"], ["mldeck_class_index"], axis=1, keepdims=0
            ),
            helper.make_node("Gather", ["mldeck_classes", "mldeck_class_index"], ["label"], axis=0),
        ]
    )
    graph.output.insert(0, helper.make_tensor_value_info("label", elem, [None]))


def model_bytes(model: onnx.ModelProto) -> bytes:
    """The model's bytes, the same for the same graph in every process.

    skl2onnx lists a model's opset imports in set order, which follows Python's
    per-process string hashing: sorted here, so a rebuild hashes the same.
    """
    imports = sorted(model.opset_import, key=lambda o: (o.domain, o.version))
    del model.opset_import[:]
    model.opset_import.extend(imports)
    return bytes(model.SerializeToString())


def make_session(
    model_bytes: bytes, providers: list[str] | None = None
) -> onnxruntime.InferenceSession:
    """An onnxruntime session on `providers` (CPU only unless told otherwise)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # onnxruntime's pool threads busy-wait after each run by default. Served, that
    # burned the cores the request thread, the HTTP server and the prediction log
    # need: 100-row requests cost ~3.4-4.2 ms of CPU each with spinning, ~2.1-2.7
    # without, and 1-row requests were unchanged (bench/serve.py, bench/RESULTS.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        model_bytes, options, providers=providers or ["CPUExecutionProvider"]
    )


def run_model(
    session: onnxruntime.InferenceSession, feed: dict[str, np.ndarray], task: str
) -> np.ndarray:
    """Probabilities [N, C] (classification) or predictions [N] (regression)."""
    name = "probabilities" if task == "classification" else "prediction"
    (out,) = session.run([name], feed)
    array = np.asarray(out)
    return array if task == "classification" else array.reshape(-1)


def describe_io(
    session: onnxruntime.InferenceSession,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    def rows(items: Any) -> list[dict[str, Any]]:
        return [{"name": i.name, "type": i.type, "shape": [str(d) for d in i.shape]} for i in items]

    return rows(session.get_inputs()), rows(session.get_outputs())
