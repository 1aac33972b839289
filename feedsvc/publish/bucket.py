"""One prefix of an S3-compatible bucket: list, put, delete. The only user of boto3.

boto3 is imported when a bucket is first opened, so `serve` without `publish.url` does
not pay for loading it.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from feedsvc.errors import PublishError
from feedsvc.settings import s3_url_problem

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DELETE_BATCH = 1000  # the most keys one DeleteObjects request takes
# Credentials and settings an operator must fix (exit 2), not a store that is down.
_REFUSED = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "AuthorizationHeaderMalformed",
    "InvalidToken",
    "ExpiredToken",
    "403",
}
_MISSING = {"NoSuchBucket", "404"}


@dataclass(frozen=True, slots=True)
class Target:
    """Where documents go: a bucket, and a prefix ending in `/` (empty: the whole bucket)."""

    bucket: str
    prefix: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_target(url: str) -> Target:
    """`s3://bucket/prefix` as a Target; ValueError names what is wrong."""
    problem = s3_url_problem(url)
    if problem is not None:
        raise ValueError(f"{url}: {problem}")
    parts = urlsplit(url)
    prefix = parts.path.strip("/")
    return Target(parts.netloc, f"{prefix}/" if prefix else "")


@dataclass(frozen=True, slots=True)
class Upload:
    """One object to put: its bytes and the headers it is served with."""

    body: bytes
    md5: bytes  # the digest of `body`, raw
    content_type: str
    cache_control: str
    content_encoding: str | None


class Bucket:
    """A prefix of one bucket; every failure is a PublishError with one clear line."""

    def __init__(self, target: Target, endpoint_url: str | None, connections: int = 16) -> None:
        import boto3  # noqa: PLC0415 (see the module docstring)
        from botocore.config import Config  # noqa: PLC0415

        # botocore logs at INFO where it found the credentials, on every run.
        logging.getLogger("botocore").setLevel(logging.WARNING)
        self.target = target
        self.endpoint_url = endpoint_url
        settings = Config(
            connect_timeout=5,
            read_timeout=30,
            retries={"mode": "standard", "max_attempts": 3},
            max_pool_connections=connections,
            # Stores other than AWS (SeaweedFS, MinIO, R2 and older releases of each)
            # refuse or mangle the checksum trailers boto3 adds by default; Content-MD5
            # covers every put instead.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            self.client: S3Client = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url, config=settings
            )
        except Exception as exc:  # boto3 raises several unrelated kinds for a bad setting
            raise PublishError(f"{target}: cannot use the store: {exc}", config=True) from exc

    def listing(self) -> dict[str, str]:
        """Every object under the prefix: key (without the prefix) -> ETag (no quotes)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.target.bucket, Prefix=self.target.prefix
        )
        found: dict[str, str] = {}
        for page in self._call("list the prefix", list, pages):  # each page is a request
            for item in page.get("Contents", []):
                found[item["Key"][len(self.target.prefix) :]] = item["ETag"].strip('"')
        return found

    def cache_control(self, path: str) -> str | None:
        """The Cache-Control an object is stored with (None when there is no such object)."""
        try:
            head = self.client.head_object(Bucket=self.target.bucket, Key=self.key(path))
        except Exception as exc:
            if _code(exc) in _MISSING or _code(exc) == "NoSuchKey":
                return None
            raise failure(exc, str(self.target), "read an object's headers") from exc
        return head.get("CacheControl")

    def put(self, path: str, upload: Upload) -> None:
        """Store one object; the store checks the bytes against Content-MD5."""
        extra = {"ContentEncoding": upload.content_encoding} if upload.content_encoding else {}
        self._call(
            f"upload {path}",
            self.client.put_object,
            Bucket=self.target.bucket,
            Key=self.key(path),
            Body=upload.body,
            ContentMD5=base64.b64encode(upload.md5).decode(),
            ContentType=upload.content_type,
            CacheControl=upload.cache_control,
            **extra,
        )

    def delete(self, paths: list[str]) -> None:
        """Remove objects, a thousand per request; any key the store keeps is a failure."""
        for start in range(0, len(paths), DELETE_BATCH):
            keys = [{"Key": self.key(p)} for p in paths[start : start + DELETE_BATCH]]
            answer = self._call(
                "delete objects",
                self.client.delete_objects,
                Bucket=self.target.bucket,
                Delete={"Objects": keys, "Quiet": True},
            )
            errors = answer.get("Errors", [])
            if errors:
                first = errors[0]
                raise PublishError(
                    f"{self.target}: cannot delete {first.get('Key')}: {first.get('Message')}"
                )

    def key(self, path: str) -> str:
        """The object key of a document path."""
        return self.target.prefix + path

    def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            raise failure(exc, str(self.target), what, self.endpoint_url) from exc


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def failure(exc: Exception, target: str, what: str, endpoint: str | None = None) -> PublishError:
    """One line saying what failed and whether a setting is at fault (config)."""
    from botocore import exceptions  # noqa: PLC0415

    code = _code(exc)
    if code in _MISSING:
        return PublishError(f"{target}: the bucket does not exist", config=True)
    if code in _REFUSED:
        return PublishError(f"{target}: the store refused the credentials ({code})", config=True)
    if isinstance(exc, exceptions.NoCredentialsError | exceptions.PartialCredentialsError):
        return PublishError(
            f"{target}: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE)",
            config=True,
        )
    if isinstance(exc, exceptions.ConnectionError | exceptions.HTTPClientError):
        where = endpoint or "the AWS endpoint"
        return PublishError(f"{target}: cannot reach {where} to {what}: {type(exc).__name__}")
    if isinstance(exc, exceptions.ClientError):
        message = exc.response.get("Error", {}).get("Message", "")
        return PublishError(f"{target}: cannot {what}: {code} {message}".rstrip())
    if isinstance(exc, exceptions.BotoCoreError | ValueError):
        return PublishError(f"{target}: cannot {what}: {exc}")
    raise exc
