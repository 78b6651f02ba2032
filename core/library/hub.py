"""The Hugging Face Hub: search by name, download with progress and cancel. Offline fails fast.

huggingface_hub retries a failed request for ~25 s with backoff; a terminal app must not sit that
long. So every call first checks HF_HUB_OFFLINE, then probes the endpoint with a short TCP connect,
and runs the request itself in a daemon thread with an overall deadline.
"""

from __future__ import annotations

import fnmatch
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

from ..errors import JobCancelled, TemperError
from .scan import hf_cache_dir

T = TypeVar("T")
Progress = Callable[[int, int, str], None]  # (bytes done, bytes total, current file)
WANTED = ["*.json", "*.safetensors", "*.jinja", "*.model", "*.tiktoken", "tokenizer*", "*.txt", "*.py"]
_TRUE = {"1", "true", "yes", "on"}


class HubError(TemperError):
    """The Hub cannot be reached or refused the request."""


@dataclass(frozen=True)
class HubModel:
    id: str
    downloads: int
    likes: int
    pipeline_tag: str | None
    library: str | None
    tags: tuple[str, ...] = ()

    @property
    def is_mlx(self) -> bool:
        return self.library == "mlx" or "mlx" in self.tags


def endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def ensure_online(timeout: float = 3.0) -> None:
    """Raise HubError at once when offline: HF_HUB_OFFLINE set, or the endpoint unreachable."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE:
        raise HubError("the Hugging Face Hub is switched off here (HF_HUB_OFFLINE is set): unset it to "
                       "search or download")
    url = urlparse(endpoint())
    host, port = url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80)

    def probe() -> None:
        with socket.create_connection((host, port), timeout=timeout):
            pass

    try:
        _deadline(probe, timeout + 1.0, what=f"connecting to {host}")
    except HubError:
        raise
    except OSError as exc:
        raise HubError(f"cannot reach the Hugging Face Hub at {host} ({exc.strerror or exc}): "
                       "check the network, or use local models") from exc


def _deadline(fn: Callable[[], T], seconds: float, *, what: str) -> T:
    """Run `fn` in a daemon thread; give up after `seconds` (the thread is left to finish alone)."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed back to the caller
            box["error"] = exc

    thread = threading.Thread(target=target, name="temper-hub", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise HubError(f"the Hugging Face Hub did not answer within {seconds:.0f} s ({what})")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _api():
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint())


def _hub_error(exc: BaseException, what: str) -> HubError:
    text = " ".join(str(exc).split())[:160]
    return HubError(f"{what} failed: {text or type(exc).__name__}")


def search(query: str, *, limit: int = 30, mlx_only: bool = True, timeout: float = 15.0) -> list[HubModel]:
    """Models whose id matches `query`, most downloaded first. mlx_only keeps MLX-format repos."""
    if not query.strip():
        raise HubError("type part of a model name to search the Hub")
    ensure_online()

    def run() -> list[HubModel]:
        kwargs: dict[str, Any] = {"search": query.strip(), "limit": limit, "sort": "downloads"}
        if mlx_only:
            kwargs["filter"] = "mlx"
        return [
            HubModel(id=m.id, downloads=int(getattr(m, "downloads", 0) or 0), likes=int(getattr(m, "likes", 0) or 0),
                     pipeline_tag=getattr(m, "pipeline_tag", None), library=getattr(m, "library_name", None),
                     tags=tuple(getattr(m, "tags", None) or ()))
            for m in _api().list_models(**kwargs)
        ]

    try:
        return _deadline(run, timeout, what=f"search {query!r}")
    except HubError:
        raise
    except Exception as exc:
        raise _hub_error(exc, f"Hub search for {query!r}") from exc


def _files(repo_id: str, timeout: float) -> tuple[str, list[tuple[str, int]]]:
    def run():
        info = _api().model_info(repo_id, files_metadata=True, timeout=timeout)
        # Top-level files only: sub-folders hold other formats (original/, onnx/, gguf/) mlx-lm never reads.
        files = [(s.rfilename, int(s.size or 0)) for s in info.siblings or []
                 if "/" not in s.rfilename and any(fnmatch.fnmatch(s.rfilename, p) for p in WANTED)]
        return info.sha, files

    try:
        return _deadline(run, timeout + 5, what=f"listing {repo_id}")
    except HubError:
        raise
    except Exception as exc:
        name = type(exc).__name__
        if "NotFound" in name or "401" in str(exc) or "404" in str(exc):
            raise HubError(f"{repo_id} is not on the Hub (or is private/gated: run `hf auth login`)") from exc
        raise _hub_error(exc, f"listing {repo_id}") from exc


def _progress_class(state: dict[str, int], filename: str, report: Progress, cancelled: Callable[[], bool]):
    from tqdm.auto import tqdm

    class _Tqdm(tqdm):  # huggingface_hub calls update(n) per chunk: report bytes, stop on cancel
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            if cancelled():
                raise JobCancelled("download cancelled (the partial file is kept; downloading again resumes)")
            state["done"] += int(n or 0)
            report(state["done"], state["total"], filename)
            return super().update(n)

    return _Tqdm


def download(
    repo_id: str,
    *,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    timeout: float = 15.0,
) -> Path:
    """Download a model's weights, config and tokenizer into the HF cache; return the snapshot folder.

    Cancellable between and within files (raises JobCancelled); files already there are skipped."""
    from huggingface_hub import hf_hub_download

    ensure_online()
    report = progress or (lambda _d, _t, _f: None)
    stop = cancelled or (lambda: False)
    sha, files = _files(repo_id, timeout)
    if not any(name.endswith(".safetensors") for name, _ in files):
        raise HubError(f"{repo_id} has no .safetensors weights: temper loads MLX/safetensors models")
    state = {"done": 0, "total": sum(size for _, size in files)}
    snapshot: Path | None = None
    for name, size in files:
        if stop():
            raise JobCancelled("download cancelled")
        before = state["done"]
        try:
            local = hf_hub_download(repo_id, name, revision=sha, endpoint=endpoint(), cache_dir=hf_cache_dir(),
                                    tqdm_class=_progress_class(state, name, report, stop))
        except JobCancelled:
            raise
        except Exception as exc:
            if isinstance(exc.__cause__, JobCancelled) or isinstance(exc.__context__, JobCancelled):
                raise JobCancelled("download cancelled") from exc
            raise _hub_error(exc, f"downloading {repo_id}/{name}") from exc
        state["done"] = before + size  # a file already cached reports no chunks
        report(state["done"], state["total"], name)
        snapshot = Path(local).parents[len(Path(name).parts) - 1]
    assert snapshot is not None
    from .service import mark_changed

    mark_changed()                                # a new snapshot in the HF cache: cached scans are stale
    return snapshot
