"""Strategies: versioned documents (``document``), the pure interpreter (``interpreter``), the built-in
strategy (``builtin``) and champion/challenger assignment (``experiments``). docs/strategies.md."""
