"""Exported detectors: ONNX and TorchScript files, their runtimes, and their verification."""
