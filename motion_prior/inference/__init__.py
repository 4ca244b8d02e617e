"""Inference: model directories, backends (torch, ONNX Runtime), the samplers, `MotionPrior` and
its `Futures`, the ONNX export and model packing."""
