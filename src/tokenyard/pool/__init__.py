"""Upstream credential pools: which key of a provider to use for the next call."""
