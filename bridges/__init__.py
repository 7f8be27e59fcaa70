"""Bridges to the outside world: the rosbridge v2 websocket server and body models (see the closed-loop issue)."""
