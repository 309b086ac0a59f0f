"""Lists by URL through the generated Python bindings: a real HTTP server on loopback (Python's
http.server with ETag support) serves a list that changes and then breaks; the progress
callback is a foreign trait implemented here."""

import hashlib
import http.server
import threading

import pytest

from embargo_ffi import DownloadProgress, EmbargoError, ListFormat, ListUpdateResult, Verdict


class ListServer(http.server.BaseHTTPRequestHandler):
    """Serves `body` at any path with a strong ETag; `If-None-Match` with it gets 304;
    `status` other than 200 breaks it."""

    body = b""
    status = 200
    seen = []

    def do_GET(self):
        etag = '"' + hashlib.sha256(self.body).hexdigest()[:16] + '"'
        type(self).seen.append(self.headers.get("If-None-Match"))
        if self.status != 200:
            self.send_response(self.status)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ListServer)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    ListServer.body, ListServer.status, ListServer.seen = b"one.test\n", 200, []
    yield f"http://127.0.0.1:{httpd.server_address[1]}/list.txt"
    httpd.shutdown()


class Progress(DownloadProgress):
    def __init__(self):
        self.calls = []

    def progress(self, list, done, total):
        self.calls.append((list, done, total))


def test_a_url_list_is_kept_current_conditionally_and_a_broken_one_refused(embargo, server):
    progress = Progress()
    info = embargo.add_url_list("mine", server, ListFormat.DOMAINS_SUBTREE, None, progress)
    assert info.accepted == 1 and info.url == server and info.interval_secs == 86400
    assert progress.calls[-1] == ("mine", 9, 9)
    assert embargo.check("one.test").verdict == Verdict.BLOCK
    assert embargo.lists_due() == []

    # unchanged: 304, nothing downloaded
    done = embargo.update_lists([], False, None)
    assert isinstance(done[0].result, ListUpdateResult.UNCHANGED)
    assert ListServer.seen[-1] is not None  # If-None-Match was sent

    ListServer.body = b"one.test\ntwo.test\n"
    done = embargo.update_lists(["mine"], False, progress)
    assert isinstance(done[0].result, ListUpdateResult.UPDATED)
    assert embargo.check("two.test").verdict == Verdict.BLOCK

    ListServer.status = 500
    done = embargo.update_lists([], True, None)
    assert isinstance(done[0].result, ListUpdateResult.REFUSED)
    assert "HTTP 500" in done[0].result.reason
    assert embargo.check("two.test").verdict == Verdict.BLOCK  # the last good copy stays
    assert "HTTP 500" in embargo.lists()[0].update_refused

    with pytest.raises(EmbargoError.InvalidInput):
        embargo.add_catalogue_list("no-such-list", None)
    assert "hagezi-pro" in [c.name for c in embargo.list_catalogue()]
