"""feedsvc.processes.cpus: big batches on every core give what running them here gives."""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from feedsvc.build.site import SiteRenderer
from feedsvc.model import Article, Problem
from feedsvc.processes.cpus import Cores
from feedsvc.reload.reloader import Reloader
from feedsvc.settings import Config
from feedsvc.sources.directory import DirectorySource
from feedsvc.store import Store

from conftest import SAMPLE_SHAPED, eventually, write_article
from tests.support.articles import article
from tests.support.chunks import die_in_a_child, double_with_pid
from tests.support.commands import ROOT
from tests.support.hostile import HOSTILE
from tests.support.processes import running


def test_a_big_batch_runs_in_other_processes_in_order() -> None:
    cores = Cores(min_batch=10, processes=2)
    results = list(cores.map(double_with_pid, None, range(1000)))
    assert [value for value, _ in results] == [n * 2 for n in range(1000)]
    assert os.getpid() not in {pid for _, pid in results}
    cores.release()
    assert multiprocessing.active_children() == []


def test_a_small_batch_runs_here() -> None:
    cores = Cores(min_batch=10, processes=2)
    results = list(cores.map(double_with_pid, None, range(9)))
    assert {pid for _, pid in results} == {os.getpid()}
    assert multiprocessing.active_children() == []


def test_one_core_runs_everything_here() -> None:
    results = list(Cores(min_batch=1, processes=1).map(double_with_pid, None, range(500)))
    assert {pid for _, pid in results} == {os.getpid()}


def test_work_of_a_process_that_died_is_done_here(caplog: pytest.LogCaptureFixture) -> None:
    cores = Cores(min_batch=1, processes=2)
    with caplog.at_level(logging.ERROR):
        assert list(cores.map(die_in_a_child, None, range(700))) == [n * 2 for n in range(700)]
    assert caplog.text.count("died") == 1  # once for the batch, not once per chunk
    cores.release()


class NoProcesses(Cores):
    def _start(self) -> ProcessPoolExecutor:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")


def test_a_batch_runs_here_when_no_process_can_start(caplog: pytest.LogCaptureFixture) -> None:
    cores = NoProcesses(min_batch=1, processes=2)
    with caplog.at_level(logging.ERROR):
        results = list(cores.map(double_with_pid, None, range(500)))
    assert results == [(n * 2, os.getpid()) for n in range(500)]
    assert "cannot start processes" in caplog.text


def test_the_processes_end_with_a_killed_parent(tmp_path: Path) -> None:
    script = f"""
import sys, time
sys.path.insert(0, {str(ROOT)!r})
from feedsvc.processes.cpus import Cores
from feedsvc.model import Article, Problem
from tests.support.chunks import double_with_pid
if __name__ == "__main__":
    cores = Cores(min_batch=1, processes=2)
    list(cores.map(double_with_pid, None, range(1000)))
    print(*cores._pool._processes, flush=True)
    time.sleep(60)
"""
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as parent:
        assert parent.stdout is not None
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2
        parent.send_signal(signal.SIGKILL)  # no chance to stop them

    assert eventually(lambda: not any(running(pid) for pid in pids), 5, every=0.05)


def test_a_folder_read_on_every_core_is_the_same_as_here(
    config: Config, articles_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (articles_dir / "sample.txt").write_text(SAMPLE_SHAPED, encoding="utf-8")
    for n in range(40):
        write_article(
            articles_dir / f"y{n % 3}",
            f"post-{n}.md",
            f"第 {n} 篇。Post **{n}**.",
            title=f"Post {n}",
            date=f"2022-01-{n % 28 + 1:02d}",
            tags=[f"t{n % 4}"],
        )
    for name, (data, _, _) in HOSTILE.items():
        (articles_dir / name).write_bytes(data)
    root = Path(config.path).parent

    def read(cores: Cores) -> tuple[list[Article], tuple[Problem, ...]]:
        result = DirectorySource(config.sources[0], config.site, root, cores).read()
        return sorted(result.articles, key=lambda a: a.path), result.problems

    here = read(Cores(processes=1))
    with caplog.at_level(logging.WARNING):
        parallel = read(Cores(min_batch=1, processes=2, chunk=4))
    assert parallel == here
    assert len(here[0]) == 41
    assert len(here[1]) >= len(HOSTILE)
    # Equal tag lists are one object, wherever the posts were parsed (memory at 50,000).
    assert len({id(a.tags) for a in parallel[0] if a.tags == ("t0",)}) == 1
    # The problems are logged by this process, not lost in the others.
    assert "laughs.md:1" in caplog.text


def test_entries_rendered_on_every_core_are_the_same_bytes(
    make_config: Callable[..., Config],
) -> None:
    config = make_config(feeds={"limit": 5})
    articles = [
        article(n, ((f"Desk{n % 3}", f"Beat{n % 5}"),), tags=(f"t{n % 7}",)) for n in range(60)
    ]
    parallel = SiteRenderer(config, Cores(min_batch=1, processes=2, chunk=7)).build(articles)
    here = SiteRenderer(config).build(articles)
    assert {p: d.etag for p, d in parallel.documents.items()} == {
        p: d.etag for p, d in here.documents.items()
    }


def test_a_reload_stops_the_processes_it_started(config: Config, articles_dir: Path) -> None:
    for n in range(30):
        write_article(articles_dir, f"p{n}.md", title=f"P{n}", date="2022-02-02")
    reloader = Reloader(config, Store(), cores=Cores(min_batch=1, processes=2))
    summary = reloader.reload()
    assert summary.articles == 30
    assert multiprocessing.active_children() == []


def test_usable_cores_follow_affinity_and_a_cgroup_quota(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from feedsvc.processes.cpus import available_cores;"
        "print(available_cores(Path(sys.argv[1])))"
    )
    quota = tmp_path / "cpu.max"

    def cores(*prefix: str) -> int:
        run = subprocess.run(
            [*prefix, sys.executable, "-c", script, str(quota)],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(run.stdout)

    quota.write_text("max 100000\n")
    assert cores("taskset", "-c", "0") == 1  # `taskset -c 1 feedsvc serve`: one worker
    assert cores() == len(os.sched_getaffinity(0))
    quota.write_text("50000 100000\n")  # half a core: rounded up to one
    assert cores() == 1
    quota.write_text(f"{200000 * 64} 100000\n")  # a quota above the affinity: the affinity
    assert cores() == len(os.sched_getaffinity(0))
