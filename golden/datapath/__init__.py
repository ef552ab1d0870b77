"""The integer datapath: the arithmetic the RTL computes, and the artifacts it is built from.

Torch-free (numpy only); with ``golden.codec`` it is all that ``hdl/`` imports.

| module | contents |
|---|---|
| ``quant`` | quantization, requantization (multiply, shift, round, saturate), widths |
| ``mac`` | the integer matrix-vector product of the MAC array |
| ``scales`` | choosing quantization steps and an activation's stored format |
| ``pipeline`` | one layer's integer stages: quantize, forward, code, inverse |
| ``artifacts`` | ``LayerArtifact`` and its ``.npz`` files, atomic writes |
"""
