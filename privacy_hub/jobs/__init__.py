"""Background work: the outbox written in the caller's transaction, and what runs it.

``outbox`` queues jobs (webhook deliveries, mails, exports, reminders, purges) in the
same transaction as the change they describe; ``worker`` claims and runs them with
retries (``backoff``); ``kinds`` lists every job kind with its handler (``handler`` is
what a handler gets); ``delivery`` holds the handlers that leave the hub through
``mail`` and ``webhooks``; ``retention`` the scheduled jobs of the law's deadlines;
``runners`` is where workers run (``privacy-hub serve`` and ``privacy-hub worker``).
"""
