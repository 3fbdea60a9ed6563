"""``tumorcot publish`` without --dry-run, through the real ``huggingface_hub`` client against a
local HTTP server speaking the part of the Hub API an upload uses (``HF_ENDPOINT``): repo
creation, card validation, preupload, commit. The files that arrive are exactly the dataset's,
byte for byte; nothing of the private state folder is sent."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tumorcot.cli import app
from tumorcot.flows.build import run_build
from tumorcot.imaging.phantom import write_phantom_cases

runner = CliRunner()


class FakeHub(BaseHTTPRequestHandler):
    received: dict = {}

    def log_message(self, *args):   # quiet
        pass

    def _reply(self, body: dict, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):   # noqa: N802 (http.server's naming)
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        store = self.server.received
        if self.path == "/api/repos/create":
            body = json.loads(raw)
            store["create"] = body
            return self._reply({"url": f"http://{self.server.server_address[0]}:{self.server.server_port}/datasets/"
                                       f"{body['organization']}/{body['name']}"})
        if self.path == "/api/validate-yaml":
            store["validated_card"] = json.loads(raw)["content"]
            return self._reply({})
        if "/preupload/" in self.path:
            files = json.loads(raw)["files"]
            return self._reply({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                          for f in files]})
        if "/commit/" in self.path:
            lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip()]
            store["files"] = {l["value"]["path"]: base64.b64decode(l["value"]["content"])
                              for l in lines if l["key"] == "file"}
            base = f"http://{self.server.server_address[0]}:{self.server.server_port}"
            return self._reply({"commitUrl": f"{base}/datasets/org/ds/commit/abc", "commitOid": "abc"})
        self._reply({"error": f"unexpected {self.path}"}, 404)


@pytest.fixture
def hub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    server.received = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_publish_uploads_exactly_the_dataset_files(tmp_path, hub, prefect_server, monkeypatch):
    import huggingface_hub.constants as hf_constants

    manifest = write_phantom_cases(tmp_path / "cases", 1, seed=8, scale=4)
    run_build(manifest, tmp_path / "ds")
    endpoint = f"http://127.0.0.1:{hub.server_port}"
    monkeypatch.setattr(hf_constants, "ENDPOINT", endpoint)   # what HF_ENDPOINT sets at import time
    monkeypatch.setenv("HF_TOKEN", "hf_" + "x" * 30)
    result = runner.invoke(app, ["publish", str(tmp_path / "ds"), "--repo-id", "org/ds", "--private"])
    assert result.exit_code == 0, result.output
    ds = tmp_path / "ds"
    expected = {str(p.relative_to(ds)): p.read_bytes() for p in ds.rglob("*") if p.is_file()}
    assert hub.received["files"] == expected
    assert hub.received["create"]["type"] == "dataset" and "private" in json.dumps(hub.received["create"])
    assert hub.received["validated_card"] == (ds / "README.md").read_text()
    assert "uploaded" in result.output and not any("private" in Path(p).parts[0] for p in hub.received["files"])
