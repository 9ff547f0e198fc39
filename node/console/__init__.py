"""The console: a web page on every node (`GET /ui/`), served from the node's own files.

`assets` indexes the files under `static/` once; `routes` answers `/ui` from that index
with the security headers every answer carries. The page itself is plain ES modules
(Preact + htm, vendored under `static/vendor/`), and every piece of data it shows
comes from the API with the session's token.
"""
