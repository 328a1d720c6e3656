"""Hydra configs (package data)."""
