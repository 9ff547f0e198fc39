"""Model-output parsers: reasoning (think blocks) and tool calls, whole and streaming.

- `reasoning`: deepseek_r1, qwen3, glm45, kimi think blocks -> reasoning and content.
- `tool_calls`: the streaming/whole machinery; `deltas`: OpenAI `tool_calls` delta shapes;
  `judging`: which parsed calls are kept, dropped or given back as text.
- `tool_formats`: json, qwen25, llama3, mistral, deepseek_v3, pythonic, kimi_k2.
- `call_blocks`, `json_calls`: calls whose arguments stream in fragments (an end tag per
  call; the end of the arguments object).
- `tool_rules`: `tools`, `tool_choice` and JSON-schema validation of arguments.
- `calls`, `holdback`, `textbuf`: the small types and buffers the others share.
- `registry`: parser names -> factories, and the lookup that lists known names.

Pure text code with no HTTP or node imports, so the HTTP proxy path and a
future gRPC path can share it.
"""
