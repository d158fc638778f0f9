"""Read models: the dashboard's questions, each answered by a small set of indexed rows.

One module per question (throughput, status counts, backlog, failure groups, task
statistics, the overview's cards). Each exposes plain functions returning frozen
dataclasses, named so that `make bench` can time them one by one. None of them reads
more than a bounded number of job rows: counts of finished jobs come from the tallies
the recorder keeps (tasks.observations), and counts of unfinished jobs stop at a cap
(tasks.operations.bounded_count).

Pure parts (time windows, bucket filling, percentiles from a histogram) live in their
own modules with no database access, so unit tests cover them without a database.
"""
