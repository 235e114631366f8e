"""Heads and their training loop; nothing here reads or writes files."""
