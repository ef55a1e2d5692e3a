"""lightdet: PyTorch Lightning object detectors tracked in ClearML."""

__version__ = "0.1.0"
