"""Who calls the REST APIs: principals, their roles within a tenant, and their API keys (docs/access.md).

``keys``: the key format, hashing and roles (pure); ``store``: the ``access`` schema every service reads
(keys stored hashed, rotated, revoked); ``verifier``: checks a presented key with a short in-process cache.
"""
