"""The backstops that publish what waits in the database when no relay did.

Beat runs `publish_due` every 10 s (the layer's "tasklayer-publish-outbox" entry; the
task keeps its registered name `tasks.outbox.publish_due`), and every worker runs the
same pass once when it starts, so held jobs, failed retry publishes and rows written
in transactions reach the broker even while no worker (and so no relay) runs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import current_app, shared_task, signals
from django.core.signals import setting_changed
from django.db import connections

from tasks.publish import backpressure, config, outbox, relay

logger = logging.getLogger(__name__)


@shared_task(name="tasks.outbox.publish_due", ignore_result=True)
def publish_due_task() -> int:
    """Beat's entry point (the layer's "tasklayer-publish-outbox" entry): the outbox's due
    messages, and a relay pass over jobs written in transactions, so that both reach
    the broker while no worker (and so no relay) runs."""
    return outbox.publish_due() + relay.publish_pending()


def _publish_at_worker_start(sender: Any = None, **_: Any) -> None:
    """A worker that starts publishes what waited while the broker (or every worker)
    was down, in a thread: worker_ready runs on the worker's event loop."""
    app = getattr(sender, "app", None) or current_app

    def run() -> None:
        try:
            outbox.publish_due(app=app)
        except Exception:
            logger.exception("Publishing the outbox at worker start failed; beat retries it")
        finally:
            connections.close_all()

    threading.Thread(target=run, name="outbox-at-start", daemon=True).start()


def connect(app: Any) -> None:
    """Wire worker-side hooks (called from TasksConfig.ready)."""
    backpressure.connect()

    signals.worker_ready.connect(
        _publish_at_worker_start, weak=False, dispatch_uid="tasks.publish.outbox.worker_ready"
    )
    setting_changed.connect(config.reset, weak=False, dispatch_uid="tasks.publish.outbox.settings")
