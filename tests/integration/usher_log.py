"""Helpers to read usher's log (its stderr, captured by the `procs` fixture)
in the health-check and retry tests: the exact shape of the backend state
lines, bounded waits for them, and the time a line was written."""

import calendar
import json
import re
import time

# The message of a state change, whatever prefix (time, level) the line has:
#   backend http://127.0.0.1:8001 is DOWN (Connection refused, 3 of 3 checks failed); healthy: http://127.0.0.1:8002
#   backend http://127.0.0.1:8001 is UP (GET /health answered 200, 2 of 2 checks passed); healthy: http://127.0.0.1:8001, http://127.0.0.1:8002
STATE_LINE = r"(?:^|(?<=\s))backend {url} is {state} \((?P<reason>{reason})\); healthy: (?P<healthy>{healthy})$"
ANY_LIST = r"none|http://\S+(?:, http://\S+)*"
TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z")


def healthy_list(urls):
    """The healthy list as usher writes it: URLs in --backend order joined by
    ', ', or 'none'."""
    return ", ".join(urls) if urls else "none"


def state_re(url, state, reason=r"[^\n]*", healthy=ANY_LIST):
    """A multi-line regex for the state line of backend `url` (state "UP" or
    "DOWN"; `url` may be a list: any of them). `reason` and `healthy` are
    regexes; pass re.escape()d text for an exact match."""
    urls = [url] if isinstance(url, str) else list(url)
    return re.compile(
        STATE_LINE.format(
            url="(?:%s)" % "|".join(re.escape(u) for u in urls), state=state, reason=reason, healthy=healthy
        ),
        re.M,
    )


def wait_for(proc, regex, timeout, count=1, interval=0.05):
    """Polls proc's log until `regex` has matched `count` times (bounded in
    time and in polls). Returns the list of matches, or None on timeout or
    if the process died."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 10):
        ms = list(regex.finditer(proc.read_log()))
        if len(ms) >= count:
            return ms
        if time.monotonic() > deadline or not proc.alive():
            return None
        time.sleep(interval)
    return None


def line_of(text, match):
    """The whole log line holding a match."""
    start = text.rfind("\n", 0, match.start()) + 1
    end = text.find("\n", match.end())
    return text[start : end if end >= 0 else len(text)]


def line_time(line):
    """The wall-clock time (seconds since the epoch, like time.time()) that
    starts a log line such as '2025-01-01T10:00:00.123Z usher[warn] ...', or
    None if the line does not start with such a time."""
    m = TIMESTAMP.match(line)
    if not m:
        return None
    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    return secs + (float(m.group(2)) if m.group(2) else 0.0)


def assert_json_error(resp, status):
    """resp (an http_raw.HTTPResponse) is usher's own JSON error: the status,
    Content-Type application/json, a body {"error": "<text>"}."""
    assert resp.status == status, "expected %d, got %r" % (status, resp)
    ct = (resp.header("Content-Type") or "").split(";")[0].strip().lower()
    assert ct == "application/json", "Content-Type %r in %r" % (resp.header("Content-Type"), resp.headers)
    try:
        body = json.loads(resp.body.decode("utf-8"))
    except ValueError as e:
        raise AssertionError("body of the %d is not JSON (%s): %r" % (status, e, resp.body))
    assert isinstance(body, dict) and list(body) == ["error"], "body %r is not {\"error\": ...}" % body
    assert isinstance(body["error"], str) and body["error"], body
    return body
