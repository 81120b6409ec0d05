"""The talksync command-line interface."""
