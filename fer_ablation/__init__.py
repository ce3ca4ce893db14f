"""fer-ablation: reproducible attention ablations for facial expression recognition."""

__version__ = "0.1.0"
