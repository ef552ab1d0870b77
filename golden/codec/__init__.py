"""The golden canonical Huffman codec: the bit-exact reference of the RTL coders.

Torch-free; numpy for tables and files, numba (the ``golden`` extra) for the bit-serial loops.

| module | contents |
|---|---|
| ``errors`` | the error classes and shared argument checks |
| ``lengths`` | optimal length-limited code lengths (package-merge) |
| ``tables`` | canonical tables, their serialized layout and lookups, ``build_table`` |
| ``bitio`` | packing codes into words and walking a stream (compiled in ``kernels``) |
| ``plain`` | bitstream version 1: tiles and column groups |
| ``runlength`` | bitstream version 2: zero runs as code symbols |
| ``lanes`` | bitstream version 3: a tile split over 1, 2, 4 or 8 lanes |
| ``container`` | table-set and coded-array files, ``ContainerError`` |
| ``cli`` | ``python -m golden.codec`` |
"""
