"""The one-way layout of STYLE.md: each module imports only modules above it."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

from feedsvc.errors import FeedsvcError

PACKAGE = Path(__file__).parent.parent / "feedsvc"

# Layers from the bottom up; a module may import only from earlier layers.
LAYERS = [
    ["feedsvc", "feedsvc.logs", "feedsvc.progress", "feedsvc.build"],
    ["feedsvc.build.gzparts"],
    ["feedsvc.model"],
    ["feedsvc.processes", "feedsvc.processes.cpus"],
    ["feedsvc.errors"],
    ["feedsvc.dates"],
    ["feedsvc.transport"],
    ["feedsvc.urls"],
    ["feedsvc.settings"],
    ["feedsvc.config"],
    ["feedsvc.build.feedsettings", "feedsvc.build.archives"],
    ["feedsvc.watch"],
    ["feedsvc.content"],
    [
        "feedsvc.sources",
        "feedsvc.sources.header",
        "feedsvc.sources.shared",
        "feedsvc.sources.globs",
    ],
    ["feedsvc.sources.fields", "feedsvc.sources.feeditems"],
    ["feedsvc.sources.post"],
    ["feedsvc.sources.reading"],
    ["feedsvc.sources.directory", "feedsvc.sources.feed"],
    ["feedsvc.build.membership", "feedsvc.build.documents", "feedsvc.build.entryfields"],
    ["feedsvc.build.jsonfeed", "feedsvc.build.xmlfeed", "feedsvc.build.pages"],
    ["feedsvc.build.entries", "feedsvc.build.sitepages"],
    ["feedsvc.build.feeds"],
    ["feedsvc.build.site"],
    ["feedsvc.store"],
    ["feedsvc.state", "feedsvc.state.files"],
    ["feedsvc.state.snapshots", "feedsvc.state.parsecache", "feedsvc.state.ledger"],
    ["feedsvc.state.shards"],
    ["feedsvc.state.snapshotwriter"],
    ["feedsvc.state.placing"],
    ["feedsvc.state.catchup"],
    ["feedsvc.metrics"],
    ["feedsvc.websub"],
    ["feedsvc.resources"],
    ["feedsvc.serving"],
    ["feedsvc.publish", "feedsvc.publish.bucket"],
    ["feedsvc.publish.sync"],
    ["feedsvc.publish.mirror"],
    ["feedsvc.reload", "feedsvc.reload.sources"],
    ["feedsvc.reload.reloader"],
    ["feedsvc.reload.loop"],
    ["feedsvc.scheduler"],
    ["feedsvc.processes.follower"],
    ["feedsvc.processes.announcer", "feedsvc.processes.resume"],
    ["feedsvc.processes.builder"],
    ["feedsvc.processes.supervisor"],
    ["feedsvc.web"],
    ["feedsvc.batch"],
    ["feedsvc.cli"],
]
OWNERS = {
    "feedgen": "feedsvc.build.xmlfeed",
    "flask": "feedsvc.web",
    "apscheduler": "feedsvc.scheduler",
    "requests": "feedsvc.transport",
    "granian": "feedsvc.cli",
    "frontmatter": "feedsvc.sources.header",
    "markdown_it_pyrs": "feedsvc.content",
    "nh3": "feedsvc.content",
    "lxml": "feedsvc.build.xmlfeed",
    "prometheus_client": "feedsvc.metrics",
    "feedparser": "feedsvc.sources.feeditems",
    "isal": "feedsvc.build.gzparts",
    "watchdog": "feedsvc.watch",
    "boto3": "feedsvc.publish.bucket",
    "botocore": "feedsvc.publish.bucket",
    "tqdm": "feedsvc.progress",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


MODULES = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def test_every_module_has_a_layer() -> None:
    layered = {m for layer in LAYERS for m in layer}
    assert set(MODULES) == layered


def test_imports_point_one_way() -> None:
    rank = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    for module, imports in MODULES.items():
        for imported in imports:
            if imported.startswith("feedsvc.") or imported == "feedsvc":
                target = imported if imported in rank else imported.rsplit(".", 1)[0]
                assert rank[target] < rank[module] or target == "feedsvc", (module, imported)


def test_each_third_party_library_has_one_home() -> None:
    for library, owner in OWNERS.items():
        users = {
            m
            for m, imports in MODULES.items()
            if any(i == library or i.startswith(library + ".") for i in imports)
        }
        assert users == ({owner} if owner else set()), (library, users)


def test_every_exception_derives_from_feedsvc_error() -> None:
    """One tree: what feedsvc raises on purpose is caught as FeedsvcError or one of its kinds."""
    strays = [
        f"{name}.{value.__name__}"
        for name in sorted(MODULES)
        for value in vars(importlib.import_module(name)).values()
        if isinstance(value, type)
        and issubclass(value, BaseException)
        and value.__module__ == name
        and not issubclass(value, FeedsvcError)
    ]
    assert strays == []


def test_importing_the_package_starts_nothing() -> None:
    code = (
        "import threading, sys, feedsvc.cli, feedsvc.web, feedsvc.scheduler,"
        " feedsvc.reload.reloader;"
        "assert threading.active_count() == 1, threading.enumerate();"
        "assert 'granian' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)


def test_each_process_of_serve_imports_what_it_runs() -> None:
    """The main process forks the builder before importing what the builder or the
    workers run, so that they import on cores of their own; the builder's start waits for
    neither the web app nor the libraries of remote sources and of the commands."""
    code = (
        "import sys, feedsvc.cli;"
        "late = {'feedsvc.reload.reloader', 'feedsvc.processes.builder', 'feedsvc.web',"
        " 'feedsvc.batch', 'flask', 'apscheduler', 'feedgen', 'requests', 'feedparser', 'tqdm'};"
        "assert not late & set(sys.modules), late & set(sys.modules);"
        "import feedsvc.processes.builder;"
        "unused = {'feedsvc.web', 'feedsvc.batch', 'flask', 'requests', 'feedparser', 'tqdm'};"
        "assert not unused & set(sys.modules), unused & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)
