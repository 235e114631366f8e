"""Heads, pooling, fusion: trainable modules; nothing here reads or writes files."""
