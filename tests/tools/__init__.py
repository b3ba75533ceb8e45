"""Test and bench tools that are not part of the product (nothing under agent/ imports them)."""
