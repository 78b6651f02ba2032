"""A local stand-in for the Hugging Face Hub API (search, model info, file resolve) serving a model folder.

Speaks just enough of the protocol for huggingface_hub's list_models, model_info and hf_hub_download.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

SHA = "0f" * 20


class FakeHub:
    def __init__(self, repo_id: str, folder: Path, *, pad_to: int = 0, chunk_delay: float = 0.0) -> None:
        self.repo_id = repo_id
        self.files = {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if f.is_file()}
        if pad_to:  # one big extra file, to watch progress and cancel inside a file
            self.files["padding.safetensors"] = b"\0" * pad_to
        self.chunk_delay = chunk_delay
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _json(self, data) -> None:
                body = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _file(self, head: bool) -> None:
                name = urlparse(self.path).path.split(f"/resolve/{SHA}/", 1)[-1]
                data = hub.files.get(name)
                if data is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("X-Repo-Commit", SHA)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if head:
                    return
                try:
                    for i in range(0, len(data), 1 << 20):
                        self.wfile.write(data[i:i + (1 << 20)])
                        time.sleep(hub.chunk_delay)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_HEAD(self) -> None:
                hub.requests.append(f"HEAD {self.path}")
                self._file(True)

            def do_GET(self) -> None:
                hub.requests.append(f"GET {self.path}")
                url = urlparse(self.path)
                if url.path == "/api/models":
                    query = parse_qs(url.query).get("search", [""])[0]
                    found = [] if query not in hub.repo_id else [{
                        "id": hub.repo_id, "modelId": hub.repo_id, "downloads": 1234, "likes": 5,
                        "pipeline_tag": "text-generation", "library_name": "mlx", "tags": ["mlx"]}]
                    self._json(found)
                elif url.path == f"/api/models/{hub.repo_id}":
                    self._json({"id": hub.repo_id, "modelId": hub.repo_id, "sha": SHA, "siblings": [
                        {"rfilename": k, "size": len(v)} for k, v in hub.files.items()]})
                elif url.path.startswith("/api/"):
                    self.send_response(404)
                    self.end_headers()
                else:
                    self._file(False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
