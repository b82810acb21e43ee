"""Thin routers: HTTP in, VideoService call, HTTP out."""
