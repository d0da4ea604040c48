"""Plans' background workers."""
