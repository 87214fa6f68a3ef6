"""Wire types and codecs shared by every layer: JSON, SSE, usage, token estimates.

The canonical chat form inside tokenyard is the OpenAI Chat Completions shape (plus
``reasoning_content`` and usage with cached and reasoning token counts), kept as plain JSON
objects: reading is lenient (unknown fields are kept), writing is exact.
"""
