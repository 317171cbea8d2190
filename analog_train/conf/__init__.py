"""Hydra configs shipped inside the package (so a non-editable install works from any directory)."""
