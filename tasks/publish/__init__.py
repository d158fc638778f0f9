"""How `.delay()` reaches the broker.

Outside a transaction a job is published at once (tasks.task.TrackedTask). Inside one,
its row is written with the caller's COMMIT (with_commit, pending_rows, db_backends) and
a worker's relay publishes it after (relay). What the broker cannot take now waits in
the outbox table: far-future ETAs, failed retry publishes, unique jobs (outbox,
uniqueness). Before any of that, a full queue refuses new jobs (backpressure), and
every job carries the correlation id of the request that caused it (correlation).
"""
