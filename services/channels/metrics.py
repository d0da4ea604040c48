"""Channels' own metrics, on the default registry (served at /metrics with those of shared/metrics.py)."""

from __future__ import annotations

from prometheus_client import Counter

# Per receipt: applied, duplicate (late or repeated: nothing to change), deferred (our record of the send
# is not committed yet: the provider is asked to retry), unknown_ref (no SMS of ours with that contact
# id and provider reference), wrong_account (ours, but sent through another provider account).
RECEIPTS = Counter("channels_receipts_total", "SMS delivery receipts and polled statuses, by what they did",
                   ["source", "result"])
# Webhook requests refused with 401: missing, malformed, stale (outside the replay window), signature.
WEBHOOKS_REFUSED = Counter("channels_webhooks_refused_total", "SMS receipt webhook requests refused (401)",
                           ["reason"])
# Reconciler polls, by answer: final (delivered/undelivered), pending (queued, sent, unknown), error
# (no answer); gave_up counts the attempts marked 'unknown' after CHANNELS_RECONCILE_GIVE_UP_S.
RECONCILED = Counter("channels_reconcile_total", "SMS statuses polled by the reconciler, by result", ["result"])
# Unsubscribe links (api/unsubscribe.py), by what a request did: shown (the confirmation page of a GET),
# opted_out (a POST that suppressed the address), repeated (a POST for a link already used), invalid
# (malformed or tampered: 400), expired (410).
UNSUBSCRIBES = Counter("channels_unsubscribe_requests_total", "Requests to e-mail unsubscribe links, by result",
                       ["method", "result"])
