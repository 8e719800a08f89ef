"""Task metrics (torch-free): OTB/got10k tracking metrics."""
