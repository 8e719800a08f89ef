"""PyTorch reference models (workstation side; imports torch). The device runtime never imports this."""
