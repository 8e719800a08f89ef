"""edge: device runtime and CLI. Nothing imported from here may import torch."""
__version__ = "0.1.0"
