"""Calibration and evaluation: folding a projection into an integer layer artifact
(``folding``), a whole network's artifacts (``network``), allocating bits across layers
(``allocation``), and measuring the compressed network (``report``)."""
