"""Console staff: accounts with a password and a second factor, and what each role may do.

``roles`` holds the one permission matrix; ``accounts`` keeps the accounts (argon2id
passwords, TOTP secrets sealed under the hub's app-secrets key, hashed recovery codes,
lockout). The console and the CLI reach both through ``privacy_hub.usecases.staff``.
"""
