"""The process beside every worker: the recorder and the relay.

`python -m tasks.runtime.recorder_and_relay --parent PID --queues a,b`, started and
supervised by the worker (tasks.runtime.worker_steps.RecorderProcess). It writes the
recorded events of the Redis streams to the database (tasks.record.recorder) and
publishes the jobs written inside transactions for the worker's queues
(tasks.publish.relay), watches the broker for a loss of its data
(tasks.runtime.broker_watch), and exits when its worker is gone.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import django

logger = logging.getLogger(__name__)


def lower_priority(increment: int) -> None:
    """Yield the CPU to the worker beside this process when the machine is busy.

    The worker's main process reads, dispatches and acknowledges every message, one at
    a time: when it waits for a core, every job waits. What this process does can
    wait, because the events stay on the stream until written: at nice 10 it gets about
    a tenth of a core's share against a busy process at nice 0, and all of any core
    nobody else wants. The cost is a little more lag before a row shows a state, still
    well under a second; the gain is a main process that no longer waits behind us.
    """
    if increment <= 0:
        return
    try:
        os.nice(increment)
    except OSError as exc:
        logger.warning("Could not lower the recorder's CPU priority (%s)", exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parent", type=int, default=0, help="exit when this process is gone")
    parser.add_argument(
        "--queues", default=None, help="comma-separated queues to relay jobs for (default: all)"
    )
    parser.add_argument("--hostname", default="", help="the worker's name, for its heartbeat")
    parser.add_argument("--pool", default="")
    parser.add_argument("--concurrency", type=int, default=0)
    parser.add_argument(
        "--started-at", default="", help="when the worker started (ISO 8601), for its uptime"
    )
    parser.add_argument(
        "--reports",
        action="store_true",
        help="read the worker's counts from stdin, one line every few seconds",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    django.setup()
    # The layer's modules import models, which need Django set up first.
    from django.utils.dateparse import parse_datetime

    from tasks.conf import layer_settings
    from tasks.publish.relay import Relay
    from tasks.record import sinks
    from tasks.record.recorder import Recorder
    from tasks.runtime import broker_watch
    from tasks.runtime.broker_watch import BrokerWatch
    from tasks.runtime.heartbeat import Heartbeat, WorkerIdentity

    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"))
    lower_priority(layer_settings().recorder_nice)
    url = sinks.stream_url()
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def should_stop() -> bool:
        return stopping or (args.parent > 0 and os.getppid() != args.parent)

    # The relay publishes jobs written inside transactions (tasks.publish.relay): here, not in
    # the worker, whose main process is busy consuming.
    queues = args.queues.split(",") if args.queues else []
    heartbeat = None
    if args.hostname:
        heartbeat = Heartbeat(
            WorkerIdentity(args.hostname, args.parent, args.pool, args.concurrency, queues),
            # A restarted recorder keeps the worker's start, not its own.
            started_at=parse_datetime(args.started_at) if args.started_at else None,
        )
        if args.reports:
            heartbeat.read_reports(sys.stdin.fileno())
        # Stopped by its worker (SIGTERM): the worker shut down. Orphaned: it was lost.
        heartbeat.start(should_stop, shut_down=lambda: stopping)
    relay = Relay(queues=queues or None)
    # Beside the relay: notices that the broker lost its data and marks what it lost
    # for the relay to publish again (tasks.runtime.broker_watch; Redis only).
    watch = BrokerWatch(args.hostname).start(should_stop) if broker_watch.enabled() else None
    if not url:
        logger.info("No Redis event stream (the broker is not Redis): relaying only.")
        relay.run(should_stop)
        if watch is not None:
            watch.stop()
        if heartbeat is not None:
            heartbeat.join(timeout=2.0)
        return 0
    relay.start(should_stop)
    try:
        Recorder(url).run(should_stop)
    finally:
        relay.stop()
        if watch is not None:
            watch.stop()
        if heartbeat is not None:
            heartbeat.join(timeout=2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
