"""The data cache folder and checksum-verified, atomic downloads (urllib only).

A download goes to a temporary file in the destination folder; only after its MD5 matches is it
renamed into place with :func:`os.replace`, so a failed, corrupt or interrupted download never
leaves a file behind that a later run could mistake for good data.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from pathlib import Path

from genlab.errors import DatasetNotFoundError

#: Seconds to wait for a server before giving up (no network → fail fast).
DOWNLOAD_TIMEOUT_S = 10.0
_CHUNK = 1 << 16


def data_root() -> Path:
    """The cache folder for data sets: ``$GENLAB_DATA`` if set, else ``~/.cache/genlab``."""
    env = os.environ.get("GENLAB_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "genlab"


def md5sum(path: str | os.PathLike) -> str:
    """Hex MD5 digest of a file (used to verify downloads, not for security)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_url(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S, progress: bool = True) -> None:
    """Stream ``url`` into the open-able path ``dest`` (raises ``OSError``/``URLError`` on failure)."""
    from tqdm import tqdm

    with urllib.request.urlopen(url, timeout=timeout) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1],
                  disable=not progress, leave=False) as bar:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                bar.update(len(chunk))


def download_file(url: str, dest: str | os.PathLike, md5: str, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` atomically and verify its MD5.

    Raises :class:`DatasetNotFoundError` on a checksum mismatch; network errors propagate as
    ``OSError`` (``urllib.error.URLError`` is one) so that the caller can try another mirror.
    Either way nothing is left at ``dest`` or in its folder.
    """
    dest = Path(dest)
    new_dirs = [d for d in (dest.parent, *dest.parent.parents) if not d.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    ok = False
    try:
        fetch_url(url, tmp, progress=progress)
        got = md5sum(tmp)
        if got != md5:
            raise DatasetNotFoundError(
                f"download of {url} is corrupt (md5 {got}, expected {md5}); try again later or "
                f"place the file by hand at {dest}"
            )
        os.replace(tmp, dest)
        ok = True
    finally:  # also runs on KeyboardInterrupt
        tmp.unlink(missing_ok=True)
        if not ok:  # remove the folders this call created (deepest first; only if still empty)
            for d in new_dirs:
                try:
                    d.rmdir()
                except OSError:
                    break
    return dest
