"""What the layer keeps beside the job rows, so that dashboards and metrics never scan them.

- Tallies of finished jobs per minute, hour and day (count, run and wait times, a
  histogram of each), by task and queue, and per status across all tasks, written by
  the recorder as jobs finish (tasks.record.tallies). They answer "how many, how fast,
  over 30 days" from a few thousand rows whatever the size of the job table, and they
  outlive the job rows that retention deletes.
- Failure groups: failed jobs with the same fingerprint (task, exception class and the
  innermost frame of application code), with an hourly tally.
- Worker heartbeats: one row per worker, refreshed while it runs.
- Batches: one row per group or chord, with its members counted by status, so "how far
  has each batch got" never counts job rows.

Rows here are written with additive upserts (tasks.record.tallies); like the job row,
nothing else writes them.
"""

from __future__ import annotations

from django.db import models


class Period(models.TextChoices):
    MINUTE = "m", "Minute"
    HOUR = "h", "Hour"
    DAY = "d", "Day"


class Measure(models.TextChoices):
    RUN = "run", "Run time"
    """finished_at - started_at."""
    WAIT = "wait", "Wait time"
    """started_at - sent_at: how long the job waited for a worker."""


#: Upper bounds (milliseconds) of the timing histogram's buckets; the last is open.
#: Percentiles are read from these buckets, interpolated inside the one they fall in.
BUCKET_BOUNDS_MS: tuple[int, ...] = (
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    1_800_000,
    3_600_000,
)


class JobTally(models.Model):
    """Jobs that reached a final status in one minute or hour, by task, queue and status."""

    period = models.CharField(max_length=1, choices=Period.choices)
    start = models.DateTimeField(help_text="Start of the minute or hour (UTC).")
    name = models.CharField(max_length=255)
    queue = models.CharField(max_length=255)
    status = models.CharField(max_length=16)
    count = models.PositiveBigIntegerField(default=0)
    run_ms_total = models.BigIntegerField(default=0)
    run_ms_max = models.BigIntegerField(default=0)
    run_count = models.PositiveBigIntegerField(default=0, help_text="Jobs with a run time.")
    wait_ms_total = models.BigIntegerField(default=0)
    wait_ms_max = models.BigIntegerField(default=0)
    wait_count = models.PositiveBigIntegerField(default=0, help_text="Jobs with a wait time.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["period", "start", "name", "queue", "status"], name="tally_key"
            )
        ]
        # One task's rows over a window (its page), without reading every task's.
        indexes = [models.Index(fields=["name", "period", "start"], name="tally_name")]

    def __str__(self) -> str:
        return f"{self.period} {self.start:%Y-%m-%d %H:%M} {self.name} {self.status}: {self.count}"


class StatusTally(models.Model):
    """Jobs of every task that reached a status in one minute, hour or day: what the
    throughput charts draw (1,440 minutes of all tasks are 1,440 rows per status here,
    and tasks x queues times that in JobTally)."""

    period = models.CharField(max_length=1, choices=Period.choices)
    start = models.DateTimeField()
    status = models.CharField(max_length=16)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["period", "start", "status"], name="status_tally_key")
        ]

    def __str__(self) -> str:
        return f"{self.period} {self.start:%Y-%m-%d %H:%M} {self.status}: {self.count}"


class TimingTally(models.Model):
    """A histogram bucket: jobs of a task whose run (or wait) time fell in bucket `bucket`
    (an index into BUCKET_BOUNDS_MS; len(BUCKET_BOUNDS_MS) is the open last bucket)."""

    period = models.CharField(max_length=1, choices=Period.choices)
    start = models.DateTimeField()
    name = models.CharField(max_length=255)
    measure = models.CharField(max_length=4, choices=Measure.choices)
    bucket = models.PositiveSmallIntegerField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["period", "start", "name", "measure", "bucket"], name="timing_key"
            )
        ]
        indexes = [models.Index(fields=["name", "period", "start"], name="timing_name")]

    def __str__(self) -> str:
        return f"{self.name} {self.measure}[{self.bucket}] {self.start:%Y-%m-%d %H:%M}"


class FailureGroup(models.Model):
    """Failed jobs that failed the same way, with the latest one as a sample."""

    fingerprint = models.CharField(max_length=40, unique=True)
    name = models.CharField(max_length=255)
    exception = models.CharField(max_length=255, help_text="The exception's class name.")
    frame = models.CharField(
        max_length=512, blank=True, default="", help_text="Innermost application frame."
    )
    count = models.PositiveBigIntegerField(default=0)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    sample_task_id = models.CharField(max_length=255)
    sample_error = models.TextField(blank=True, default="")
    sample_traceback = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"{self.name}: {self.exception} ({self.count})"


class FailureTally(models.Model):
    """Failures of one group in one hour and queue: "the groups of the last 24 hours"
    sums a day of these instead of reading failed job rows."""

    start = models.DateTimeField()
    fingerprint = models.CharField(max_length=40)
    queue = models.CharField(max_length=255)
    count = models.PositiveBigIntegerField(default=0)
    last_seen = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["start", "fingerprint", "queue"], name="failure_tally_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.fingerprint} {self.start:%Y-%m-%d %H:00} {self.queue}: {self.count}"


class WorkerBeat(models.Model):
    """A worker's latest heartbeat (tasks.runtime.heartbeat): who is online, and what it
    consumes. A worker whose beat is older than a few intervals is gone or stuck."""

    hostname = models.CharField(max_length=255, unique=True)
    pid = models.PositiveIntegerField()
    pool = models.CharField(max_length=64, blank=True, default="")
    concurrency = models.PositiveIntegerField(default=0)
    queues = models.JSONField(default=list)
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    stopped_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when the worker shut down cleanly."
    )
    processed = models.PositiveBigIntegerField(default=0, help_text="Jobs it finished.")
    failed = models.PositiveBigIntegerField(default=0, help_text="Of those, jobs that failed.")

    class Meta:
        indexes = [models.Index(fields=["last_seen_at"], name="worker_last_seen")]

    def __str__(self) -> str:
        return f"{self.hostname} (pid {self.pid})"


class BatchKind(models.TextChoices):
    GROUP = "group", "Group"
    CHORD = "chord", "Chord"


class Batch(models.Model):
    """A `group` or `chord`: its members (the jobs with its group id) counted by outcome."""

    group_id = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=8, choices=BatchKind.choices, default=BatchKind.GROUP)
    name = models.CharField(max_length=255, blank=True, default="", help_text="Members' task.")
    callback_id = models.CharField(
        max_length=255, blank=True, default="", help_text="A chord's body: the job run after."
    )
    total = models.PositiveBigIntegerField(default=0)
    succeeded = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)
    cancelled = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField()
    last_finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "batches"
        indexes = [models.Index(fields=["-created_at"], name="batch_created")]

    def __str__(self) -> str:
        return f"{self.kind} {self.group_id}: {self.done}/{self.total}"

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.cancelled


class BrokerLoss(models.Model):
    """A time the broker was found to have lost its data (a restart without persistence,
    a failover to an empty replica, a flush) or some of it (a restart that kept the data
    but not its last writes), and what the layer published again."""

    detected_at = models.DateTimeField()
    detected_by = models.CharField(max_length=255, blank=True, default="")
    broker = models.CharField(max_length=255, help_text="The broker's address, no password.")
    evidence = models.TextField(help_text="Why the layer concluded the data was lost.")
    restarted_at = models.DateTimeField(
        null=True, blank=True, help_text="When the broker (re)started, if it says."
    )
    still_held = models.PositiveIntegerField(
        default=0, help_text="Unfinished jobs the broker still held: not published again."
    )
    republished = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when every lost job was marked to publish again."
    )
    data_kept = models.BooleanField(
        default=False,
        help_text="The broker restarted with its data but without its last writes (the "
        "marker was kept); otherwise the data was gone.",
    )

    class Meta:
        indexes = [models.Index(fields=["-detected_at"], name="broker_loss_detected")]

    def __str__(self) -> str:
        return f"{self.broker} lost its data (found {self.detected_at:%Y-%m-%d %H:%M:%S})"
