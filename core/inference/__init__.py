"""Fast inference: ONNX Runtime embedding and cross-encoder scoring on CPU, and device choice for torch."""
