"""What every web surface shares: the hub and one session per request (``context``),
security headers and commit-at-the-end, and the public pages reached from mails."""
