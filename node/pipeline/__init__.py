"""The inference pipeline: one request object, then small stages, each with one job.

entry (builds the `InferenceRequest`) → find the workers → authorize the model
→ mesh-wide rate limits → quotas → admission → forward (pick a worker and
proxy, `node.proxy.forward`) → settle (release the quota lease, book usage).
Request metrics are recorded once, around all of it (`Pipeline.serve`).
"""
