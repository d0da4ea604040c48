"""A seeded simulator of a collections portfolio (docs/simulator.md).

Development and training tool only: nothing in ``shared/`` or ``services/`` imports it (import-linter).
``portfolio`` draws the accounts, ``behaviour`` is how a customer reacts to a day (contacts in, payments,
promises and complaints out), ``history`` runs a portfolio over days under a contact policy into an event
log in the platform's contract shapes, ``dataset`` turns an event log into a scorecard training set.
"""
