"""gRPC workers (`grpc://` and `grpcs://`): the SGLang scheduler service of smg-grpc-proto.

One channel per worker (`channel`), discovery through GetModelInfo, GetServerInfo
and the tokenizer (`discover`, `tokenizer_files`), health and load through
HealthCheck and GetLoads, and the `/flush_cache` / `/get_loads` fan-outs
(`workers.GrpcWorkers`). The OpenAI routes get a worker's stub, tokenizer and
model info from `GrpcWorkers.client(worker_id)`.
"""
