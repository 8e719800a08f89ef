"""Generated labelled data (torch-free): tracking sequences and action clips."""
