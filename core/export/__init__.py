"""Model export: a run shipped as a self-contained bundle, its ONNX form, and an HTTP server (/v1/rerank)."""
