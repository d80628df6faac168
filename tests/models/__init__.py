"""engine/models: the model kinds, ONNX export and parity."""
