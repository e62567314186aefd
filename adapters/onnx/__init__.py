"""Adapters as ONNX Runtime graphs: export, cache, sessions on a checked provider.

Design A ("merged", :mod:`.export`): each adapter's LoRA is folded into a copy of the
base weights and its head is in the graph, so one file answers one adapter end to end.
Design B ("shared", :mod:`.shared`): one encoder graph whose LoRA weights are inputs.
Serving (the service's onnx backend) and evaluation (``bedside evaluate --backend onnx``)
both run graphs through :mod:`.session`.
"""
