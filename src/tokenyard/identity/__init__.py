"""Accounts and client keys: issuing, hashing, authenticating (cached), revoking."""
