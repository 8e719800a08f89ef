"""Classifier side of the device runtime (torch-free): preprocessing (H4) and the streaming runtime (H6)."""
