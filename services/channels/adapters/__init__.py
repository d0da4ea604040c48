"""Outside systems channels talks to: the SMS provider's HTTP API and SMTP. Only I/O lives here."""
