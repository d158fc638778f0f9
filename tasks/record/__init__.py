"""Every write of job state.

Celery's signals and messages are translated into JobEvents (translate, by the
receivers), sent to this process's sink (sinks: a Redis stream, or the database
directly), and written in batches by the recorder beside each worker (recorder) through
the one recording service (service: the precedence rule, upserts, attempts). Results go
the same way (results).
"""
