"""The WebSocket bot API: simplex-chat's CLI API for a parley chat (docs/bot-api.md).

Start it with `parley.api.server.serve_api`. `commands` parses requests and `responses`
builds the JSON (both without I/O); `handlers` runs commands against the chat controller.
"""
