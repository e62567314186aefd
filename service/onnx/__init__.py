"""ONNX export of adapter artifacts and an onnxruntime runner for them.

Design A ("merged"): each adapter's LoRA is merged into a copy of the base weights and
its head is part of the graph, so one ONNX file answers one adapter end to end.
"""
