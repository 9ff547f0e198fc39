"""Parsing a worker's raw chat output into `reasoning_content` and `tool_calls`.

- `choice`: which parser applies (the worker's own field > a per-model flag entry >
  the node's default) and the checks of `--reasoning-parser`/`--tool-call-parser`.
- `plan`: what one request asks for (tools, tool_choice, separate_reasoning,
  stream_reasoning) and the body the worker then receives.
- `choice_state`: one choice's parsers, fed text, giving OpenAI-shaped pieces.
- `rewrite`: a whole `chat.completion` body, and an SSE stream chunk by chunk.

The text parsers themselves are `node.parsers`; nothing here knows HTTP.
"""
