"""Networks and data (PyTorch): MobileNetV2, the small digits CNN, bundled photos, and
capturing a network's activations at its activation points."""
