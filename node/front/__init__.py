"""The front of a node's HTTP port: plain inference requests served without aiohttp's
protocol, everything else handed to it (node/front/protocol.py)."""
