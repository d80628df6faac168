"""Layer 4: model kinds (sklearn, MLP), evaluation and scoring through ONNX."""
