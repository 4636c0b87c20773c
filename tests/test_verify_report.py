"""The HTML report as a reader gets it: escaped, self-contained, and drawn for any result.

Results come from the same raw observations as test_verify_rules.py; the page is
parsed back with html.parser, as a browser would see its text and links.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from gotune.verify import html as report_html
from gotune.verify.result import host_result
from tests.test_verify_rules import disk, raw_host

HOSTILE = "<script>alert(\"x\")</script> & 'it'"
ESCAPED = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#39;it&#39;"


class _Page(HTMLParser):
    """The text a browser shows, the links it would follow and the scripts it would run."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.links: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self._in_script = False
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [v for k, v in attrs if k in ("src", "href") and v]
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data: str) -> None:
        if not self._in_script:
            self.text.append(data)


def _hostile_fleet() -> dict[str, Any]:
    raw = raw_host(name="alice", GOCACHE=disk("/c", writable=False, write_errno="EACCES",
                                              write_error=HOSTILE))  # fmt: skip
    raw["users"]["alice"]["benchmarks"][0]["error"] = HOSTILE
    raw["numa_wrappers"] = {HOSTILE: {"numactl_args": [HOSTILE], "error": HOSTILE,
                                      "plain_s": [1.0], "wrapped_s": [1.1]}}  # fmt: skip
    host = host_result(raw)
    host["user"] = HOSTILE
    return {"hosts": {HOSTILE: host, "http://evil.example/": host_result(raw_host())}}


def test_strings_from_hosts_are_shown_as_text_never_run_as_markup(tmp_path: Path) -> None:
    fleet = _hostile_fleet()
    page = report_html.write_report(fleet, tmp_path).read_text()
    # Outside the JSON island the hostile string exists only escaped ...
    markup = re.sub(r'<script type="application/json".*?</script>', "", page, flags=re.S)
    assert HOSTILE not in markup and "<script>" not in markup
    # ... in the host name, the check detail, the benchmark error, the user and the wrapper
    assert markup.count(ESCAPED) >= 6
    # and a browser shows it as the host wrote it.
    shown = "".join(_Page(page).text)
    assert shown.count(HOSTILE) >= 6
    scripts = _Page(page).scripts
    assert scripts == [{"type": "application/json", "id": "gotune-verify-data"}]
    data = re.search(r'id="gotune-verify-data">(.*?)</script>', page, re.S)
    assert data is not None and json.loads(data.group(1)) == fleet


def test_the_page_fetches_nothing_from_anywhere(tmp_path: Path) -> None:
    page = report_html.write_report(_hostile_fleet(), tmp_path).read_text()
    links = _Page(page).links
    assert links and all(link.startswith("#host-") for link in links)
    assert not re.search(r"""(?i)(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_a_result_with_errors_missing_benchmarks_and_no_history_still_renders() -> None:
    broken = raw_host()  # its history is empty
    broken["users"]["alice"]["benchmarks"] = [
        {"name": "first build (new module)", "target_s": 1.5, "samples": {},
         "error": "tuned: Permission denied"},
        {"name": "repeat build", "target_s": 0.3, "samples": {"tuned": [0.1] * 5},
         "error": "default: boom"},
    ]  # fmt: skip
    result = {"hosts": {
        "runner-error": host_result({"error": "no such user 'zed' on this host"}),
        "bare": {"verdict": "fail"},  # no checks, benchmarks or history at all
        "broken": host_result(broken),
    }}  # fmt: skip
    shown = "".join(_Page(report_html.render(result)).text)
    assert "0 of 3 hosts pass" in shown
    assert "no such user 'zed' on this host" in shown
    # an error is shown as go's message, never as a missed target
    assert "error: tuned: Permission denied" in shown and "missed" not in shown
    assert "no result" in shown  # the fleet bars and the half-run A/B chart
    assert shown.count("First run on this host") == 3
    assert "No benchmark results." in "".join(_Page(report_html.render({"hosts": {}})).text)
