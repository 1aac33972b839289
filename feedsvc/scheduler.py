"""APScheduler around one callable: the periodic reload. The only user of apscheduler."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

logger = logging.getLogger(__name__)

JOB_ID = "reload"


def make_scheduler(job: Callable[[], object], interval_seconds: int) -> BackgroundScheduler:
    """A scheduler (not started) that runs `job` every `interval_seconds`, one run at a time."""
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.add_job(
        job,
        IntervalTrigger(seconds=interval_seconds, timezone=UTC),
        id=JOB_ID,
        name="reload sources",
        coalesce=True,
        max_instances=1,
        # APScheduler's default grace of 1 s silently drops a run that starts
        # late (a busy machine, a long previous reload); a late reload is still wanted.
        misfire_grace_time=interval_seconds,
        replace_existing=True,
    )
    scheduler.add_listener(_report, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    return scheduler


def _report(event: JobExecutionEvent) -> None:
    if event.exception is not None:
        logger.error("scheduled reload raised %r", event.exception)
    else:
        logger.warning("scheduled reload missed its run time %s", event.scheduled_run_time)


def reschedule(scheduler: BackgroundScheduler, interval_seconds: int) -> None:
    """Run the reload every `interval_seconds` from now on (a config edit changed it)."""
    scheduler.reschedule_job(
        JOB_ID, trigger=IntervalTrigger(seconds=interval_seconds, timezone=UTC)
    )
    scheduler.modify_job(JOB_ID, misfire_grace_time=interval_seconds)
    logger.info("reloading every %d s from now on", interval_seconds)
