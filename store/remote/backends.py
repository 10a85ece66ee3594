"""Object storage backends: one small interface, one class per kind of URL.

A backend stores opaque objects under relative paths (the store's own layout:
blobs/ab/..., manifests/ab/..., actions/ab/..., refs/...). Timeouts and retries
are kept low so a dead server fails fast instead of hanging a build.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 30


class RemoteUnavailable(Exception):
    """The remote cannot be used (unreachable, misconfigured, or its client is not installed)."""


class FileBackend:
    """A folder, for a shared mount: file:///path/to/cache."""

    def __init__(self, root: str):
        self.root = Path(root)
        self.url = f"file://{self.root}"

    def size(self, path: str) -> int | None:
        try:
            return (self.root / path).stat().st_size
        except FileNotFoundError:
            return None

    def get_file(self, path: str, dest: Path) -> None:
        shutil.copyfile(self.root / path, dest)

    def put_file(self, path: str, src: Path) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
        shutil.copyfile(src, tmp)
        os.replace(tmp, target)  # readers of a shared mount never see half an object


class S3Backend:
    """s3://bucket/prefix through s3fs; credentials and endpoint from the usual AWS variables."""

    def __init__(self, bucket_and_prefix: str):
        try:
            import s3fs
        except ImportError:
            raise RemoteUnavailable("s3:// remotes need s3fs (pip install 'llmc[s3]')") from None
        self.base = bucket_and_prefix.strip("/")
        self.url = f"s3://{self.base}"
        client = {"region_name": os.environ.get("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))}
        if os.environ.get("AWS_ENDPOINT_URL"):
            client["endpoint_url"] = os.environ["AWS_ENDPOINT_URL"]
        self.fs = s3fs.S3FileSystem(
            client_kwargs=client, skip_instance_cache=True,
            config_kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": READ_TIMEOUT_S,
                           "retries": {"max_attempts": 2, "mode": "standard"}})
        self.fs.retries = 1  # s3fs's own retry loop, on top of botocore's

    def _key(self, path: str) -> str:
        return f"{self.base}/{path}"

    def size(self, path: str) -> int | None:
        try:
            return int(self.fs.info(self._key(path))["size"])
        except FileNotFoundError:
            return None

    def get_file(self, path: str, dest: Path) -> None:
        self.fs.get_file(self._key(path), str(dest))

    def put_file(self, path: str, src: Path) -> None:
        self.fs.put_file(str(src), self._key(path))


def open_backend(url: str):
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return FileBackend(parsed.path)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise RemoteUnavailable(f"remote {url!r} names no bucket (s3://bucket/prefix)")
        return S3Backend(parsed.netloc + parsed.path)
    raise RemoteUnavailable(f"remote {url!r}: use s3://bucket/prefix or file:///path")
