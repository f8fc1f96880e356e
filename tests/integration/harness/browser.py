"""A real headless Chromium for the dashboard tests and the screenshot script:
Debian's chromium, driven through Debian's chromedriver with Debian's
python3-selenium. Nothing is downloaded (the driver is given by path, so
Selenium Manager is never asked).

missing()          why the browser cannot run here (None if it can)
Browser(...)       one Chromium session (a context manager): open(url),
                   js(script), console(), set_width(px), screenshot(path),
                   wait(what, predicate); close() stops the driver and the
                   browser it started, by PID if they outlive quit().
"""

import base64
import os
import shutil
import signal
import tempfile
import time

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")
DRIVER_CANDIDATES = ("chromedriver",)
INSTALL_HINT = "scripts/deps.sh test installs chromium, chromium-driver and python3-selenium"


def chromium_path():
    for name in CHROMIUM_CANDIDATES:
        p = shutil.which(name)
        if p:
            return p
    return None


def driver_path():
    for name in DRIVER_CANDIDATES:
        p = shutil.which(name) or ("/usr/bin/" + name if os.path.exists("/usr/bin/" + name) else None)
        if p:
            return p
    return None


def missing():
    """None when Chromium is installed; else what is missing. Only the
    browser's absence is a reason to skip: with chromium there, a missing
    driver or selenium is an error the caller reports (deps.sh installs the
    three together)."""
    if chromium_path() is None:
        return "Chromium is not installed (no %s on PATH): %s" % (" or ".join(CHROMIUM_CANDIDATES), INSTALL_HINT)
    return None


def incomplete():
    """What else the browser tests need and is absent (None if nothing)."""
    if driver_path() is None:
        return "chromium is installed but chromedriver is not (package chromium-driver): " + INSTALL_HINT
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "chromium is installed but python3-selenium is not: " + INSTALL_HINT
    return None


class Browser:
    """One headless Chromium at width x height CSS pixels."""

    def __init__(self, width=1280, height=1000, timeout=30.0):
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service

        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="usher-chromium-")
        opts = Options()
        opts.binary_location = chromium_path()
        for a in (
            "--headless=new",
            "--no-sandbox",  # tests run as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",  # no request to any other host
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--user-data-dir=" + self.profile,
            "--window-size=%d,%d" % (width, height),
        ):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.service = Service(executable_path=driver_path(), **{_service_log_arg(): os.devnull})
        self.driver = webdriver.Chrome(service=self.service, options=opts)
        self.driver.set_page_load_timeout(timeout)
        self.driver.set_script_timeout(timeout)
        self.set_size(width, height)

    # -- a context manager that always stops what it started ---------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        pid = getattr(getattr(self.service, "process", None), "pid", None)
        try:
            self.driver.quit()
        except Exception:
            pass
        if pid is not None:
            # chromedriver normally exits with quit(); if not, stop it (its
            # process group holds the browser it started)
            proc = self.service.process
            if proc.poll() is None:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)

    # -- driving ------------------------------------------------------------------------
    def open(self, url):
        self.driver.get(url)

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def console(self):
        """The browser console entries since the last call: [{level, message, source}]."""
        return self.driver.get_log("browser")

    def set_size(self, width, height):
        """The page's viewport in CSS pixels, exactly (a headless window has a
        minimum width, so the viewport is emulated)."""
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": int(width), "height": int(height), "deviceScaleFactor": 1, "mobile": False},
        )

    def screenshot(self, path, full_height=True, width=None):
        """A PNG of the page; the whole page's height when full_height."""
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if full_height:
            w = width or self.js("return window.innerWidth")
            h = self.js("return Math.ceil(document.documentElement.scrollHeight)")
            self.set_size(w, min(h, 6000))
            time.sleep(0.3)  # one frame for the charts to resize
        data = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
        with open(path, "wb") as f:
            f.write(base64.b64decode(data["data"]))
        return path

    def wait(self, what, predicate, timeout=None, poll=0.1):
        """Polls predicate() until it returns something true (bounded); that
        value, or AssertionError naming `what` and the last value."""
        deadline = time.monotonic() + (timeout or self.timeout)
        last = None
        for _ in range(int((timeout or self.timeout) / poll) + 10):
            last = predicate()
            if last:
                return last
            if time.monotonic() > deadline:
                break
            time.sleep(poll)
        raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def _service_log_arg():
    """Where chromedriver's own log goes: log_path in Debian's selenium 4.8,
    log_output in later versions."""
    import inspect

    from selenium.webdriver.chrome.service import Service

    return "log_output" if "log_output" in inspect.signature(Service.__init__).parameters else "log_path"
