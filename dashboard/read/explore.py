"""The jobs behind a number: explorer filters (dashboard.search's language) and URLs.

Every count the read models return carries the filter that lists its jobs, so the page
can link it. Times are written as the explorer's parser reads them: ISO, in the current
time zone, without an offset, and only as precise as they need to be.

The explorer's `after:` and `before:` bound a job's creation time, while the tallies
count jobs by the time they finished: a link from a tallied count lists the jobs created
in that period, which for jobs that finish within the minute or hour is the same set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import quote_plus, urlencode

from django.urls import reverse
from django.utils import timezone


def moment(at: datetime, tz: tzinfo | None = None) -> str:
    """`at` as an explorer time: local (the current time zone, or `tz`), no offset,
    minutes when it is on the minute."""
    local = at.astimezone(tz or timezone.get_current_timezone()).replace(tzinfo=None)
    spec = "minutes" if local.second == 0 and local.microsecond == 0 else "seconds"
    return local.replace(microsecond=0).isoformat(timespec=spec)


def query(
    *terms: str,
    after: datetime | None = None,
    before: datetime | None = None,
    tz: tzinfo | None = None,
) -> str:
    """A filter string: the terms, then the time bounds."""
    parts = [term for term in terms if term]
    if after is not None:
        parts.append(f"after:{moment(after, tz)}")
    if before is not None:
        parts.append(f"before:{moment(before, tz)}")
    return " ".join(parts)


def statuses(*names: str) -> str:
    """`status:a,b` in the explorer's lower case."""
    return "status:" + ",".join(name.lower() for name in names)


def jobs_url(q: str, explorer: str | None = None) -> str:
    """The explorer listing the jobs of filter `q` (`explorer`: the explorer's path, when
    the caller links many numbers and has looked it up once)."""
    # ":" and "," are legal in a query string: left as they are, a chart of 1,440 links is
    # a sixth smaller.
    return f"{explorer or reverse('dashboard:jobs')}?q={quote_plus(q, safe=':,')}"


def bucket_link_template(first: datetime, step: timedelta, task: str | None = None) -> str:
    """The `dashboard:jobs-bucket` URL of a chart's buckets, `{i}` standing for the index."""
    params = {"first": int(first.timestamp()), "step": int(step.total_seconds())}
    if task:
        params["task"] = task  # type: ignore[assignment]
    return f"{reverse('dashboard:jobs-bucket')}?{urlencode(params)}&i={{i}}"


def bucket_start(first: int, step: int, index: int) -> datetime:
    """The start of bucket `index` of a chart whose first bucket starts at `first`."""
    return datetime.fromtimestamp(first + index * step, tz=UTC)
