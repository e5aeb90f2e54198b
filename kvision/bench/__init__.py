"""``kvision bench``: kvision's Keras models against the same networks in plain PyTorch."""
