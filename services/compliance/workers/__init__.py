"""Compliance's background workers."""
