"""Inside a worker: retries and their policy, final failure to dead letter, the worker
side of cancellation, progress, the consumer and transport that survive malformed
messages, and the worker's own steps (the recorder and relay beside it)."""
