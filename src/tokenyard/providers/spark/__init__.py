"""The iFlytek Spark wire family (``api: spark``), providers.md §9.

Two transports behind one adapter, chosen by the shape of each key (provider.py):
``app_id:api_key:api_secret`` uses the classic HMAC-signed WebSocket API (signing.py,
ws.py); any other key is an APIPassword for the OpenAI-compatible HTTP API (http.py).
Request translation is request.py, response shapes response.py, error codes codes.py and
the model line-up (WebSocket paths, ``domain`` values, limits) models.py.
"""

from tokenyard.providers.spark.provider import SparkProvider, build

__all__ = ["SparkProvider", "build"]
