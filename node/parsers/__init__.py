"""Model-output parsers: reasoning (think blocks) and tool calls, whole and streaming.

Pure text code with no HTTP or node imports, so the HTTP proxy path and a
future gRPC path can share it. `registry` maps parser names to factories.
"""
