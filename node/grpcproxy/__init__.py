"""Serving OpenAI and SGLang-native requests with gRPC engine workers (SGLang's scheduler).

The gateway does the text work the engine leaves to it: the chat template and
tokenization on the way in, detokenization, stop strings and the output parsers
on the way out.
- `bodies`: the client's body, typed and bounded (a 400 names the field).
- `build`: a body -> the engine's `GenerateRequest` / `EmbedRequest` (pure).
- `assemble`: the engine's responses -> OpenAI-shaped chunks and bodies (pure).
- `status`: an engine's gRPC status -> the HTTP answer, and whether to retry.
- `link`: what the forwarder needs of a gRPC worker (its stub, tokenizer, limits).
- `forward`: one attempt on one gRPC worker, relayed as the HTTP path relays.
"""
