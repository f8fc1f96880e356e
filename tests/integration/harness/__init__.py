"""The integration test harness: one module per concern.

procs     processes under test: usher and the demo backends (free ports,
          start and wait until ready, stop by PID, exit status and sanitizer
          reports), usher -c FILE with reload helpers, `usher` run to exit.
backends  backends written in Python: capture backends (parsed and raw), and
          backends that never answer (one class, three kinds).
load      load drivers: a client thread that sends requests in a loop and
          records every attempt, and N client functions run in parallel.
browser   a real headless Chromium (Debian's chromium, chromedriver and
          python3-selenium) for the dashboard tests and bench/dashboard_shot.py.

http_raw.py (exact HTTP client) and usher_log.py (usher's log lines) stay
next to the tests; conftest.py only wires these modules into fixtures.
"""
