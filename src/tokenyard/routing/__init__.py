"""Scheduling: the catalogue of public models and the plan of attempts for a request."""
