"""Operator tools: migrations, topics, dead letters, and the events catalogue renderer."""
