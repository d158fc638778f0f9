"""Times the broker lost its data, newest first (BrokerLoss rows written by the watcher
beside each worker, tasks.runtime.broker_watch), for the dashboard and the metrics."""

from __future__ import annotations

from datetime import datetime

from tasks.models import BrokerLoss

#: At most this many losses are returned: a broker that loses its data more often than
#: that in the window read is a broken deployment, and the newest say so.
LIMIT = 100


def recent_broker_losses(since: datetime) -> list[BrokerLoss]:
    """The broker losses detected at or after `since`, newest first (at most LIMIT).

    A row whose `finished_at` is still empty is being handled (its lost jobs are being
    marked to publish again); `republished` and `still_held` are final once it is set.
    """
    return list(BrokerLoss.objects.filter(detected_at__gte=since).order_by("-detected_at")[:LIMIT])
