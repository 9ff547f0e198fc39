"""The replicated tokenizer registry.

`sources.py` reads what an operator registers (a path, a URL, a Hugging Face id in
the local cache) into the blob store; `registry.py` turns every replicated record
into a loaded tokenizer on every node, fetching the files from peers by digest.
"""
