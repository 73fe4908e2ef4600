"""The daemon's HTTP API (aiohttp): routes, auth, errors, metrics and OpenAPI."""
