"""Content-addressed files the mesh shares by digest (tokenizers now, WASM modules next).

`store.py` keeps them under `<data-dir>/blobs/sha256/<hex>` and checks the digest on
every write and read; `fetch.py` gets one this node lacks from a peer over the nodes'
own authenticated HTTP (`GET /ha/blobs/{sha256}`, node/api/blobs.py). A replicated
record names its files by digest, never holds their bytes.
"""
