"""Projections of a feature map's channels: PCA (``pca``, numpy), projections learned through
the quantization (``learning``, CAP and Price), and calibration images distilled from a
network's BatchNorm statistics (``distill``)."""
