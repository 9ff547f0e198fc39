"""Text core: tokenizers, chat templates and streaming detokenization.

- `tokenizer`: load a `tokenizer.json` (and its `tokenizer_config.json`) as a `TextTokenizer`.
- `chat_template`: render a chat template the way `transformers` does, sandboxed.
- `detokenize`: `IncrementalDetokenizer`, token ids in, whole characters out, stop strings.
- `resolve`: which tokenizer serves a request (a registered one, or a worker's path).

Pure text code with no HTTP or node imports, so the HTTP routes, the registry
and a future gRPC path can share it.
"""
