"""Channels' background workers."""
