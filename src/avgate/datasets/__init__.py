"""Datasets that avgate can build or read."""
