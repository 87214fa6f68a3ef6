"""Upstream adapters: one module per wire family, each a pure translator plus an HTTP call.

An adapter knows nothing of accounts, money or routing: it receives the canonical request,
the upstream model name and a credential, and returns canonical responses, streams of
canonical chunks and :class:`~tokenyard.wire.usage.Usage`, or raises
:class:`~tokenyard.errors.UpstreamError`.
"""
