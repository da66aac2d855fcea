"""Background work: the outbox written in the caller's transaction, and what runs it.

``outbox`` queues jobs (webhook deliveries, mails, exports, reminders, purges) in the
same transaction as the change they describe; ``worker`` claims and runs them with
retries; ``mail`` and ``webhooks`` are how a job leaves the hub; ``retention`` holds the
scheduled jobs of the law's deadlines.
"""
