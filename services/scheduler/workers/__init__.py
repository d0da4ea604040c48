"""Scheduler's background workers."""
