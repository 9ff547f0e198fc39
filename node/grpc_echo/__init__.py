"""`meshgate grpc-echo-worker`: an SGLang scheduler simulator over real gRPC.

It serves the `SglangScheduler` service of the pinned `smg-grpc-proto` package, the
way `echo-worker` serves the OpenAI HTTP API: deterministic generation from a real
tokenizer's vocabulary, scripted replies, fault injection and a record of what it
received, for tests and demos. `meshgate serve` never imports it.
"""
