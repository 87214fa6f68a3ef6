"""The HTTP edge: the aiohttp application, routes, middleware and SSE writing."""
