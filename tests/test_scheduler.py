import threading

from feedsvc.scheduler import JOB_ID, make_scheduler


def test_job_runs_once_at_a_time_and_catches_up() -> None:
    scheduler = make_scheduler(lambda: None, 30)
    job = scheduler.get_job(JOB_ID)
    assert job.coalesce is True
    assert job.max_instances == 1
    assert job.misfire_grace_time == 30
    assert job.trigger.interval.total_seconds() == 30


def test_started_scheduler_runs_the_job_every_interval() -> None:
    ran = threading.Semaphore(0)
    scheduler = make_scheduler(ran.release, 1)
    scheduler.start()
    try:
        assert ran.acquire(timeout=5)
        assert ran.acquire(timeout=5)
    finally:
        scheduler.shutdown(wait=True)
    assert not scheduler.running


def test_a_raising_job_does_not_stop_the_schedule() -> None:
    calls: list[int] = []

    def job() -> None:
        calls.append(1)
        raise RuntimeError("boom")

    done = threading.Event()
    scheduler = make_scheduler(lambda: job() if len(calls) < 1 else done.set(), 1)
    scheduler.start()
    try:
        assert done.wait(timeout=6)
    finally:
        scheduler.shutdown(wait=True)


def test_reschedule_changes_the_interval() -> None:
    from feedsvc.scheduler import reschedule

    scheduler = make_scheduler(lambda: None, 3600)
    scheduler.start()
    try:
        reschedule(scheduler, 120)
        job = scheduler.get_job(JOB_ID)
        assert job.trigger.interval.total_seconds() == 120
        assert job.misfire_grace_time == 120
    finally:
        scheduler.shutdown(wait=True)
