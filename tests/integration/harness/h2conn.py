"""An HTTP/2 client for the tests, on Debian's python3-h2 (h2 4.x): one
connection, plain (prior knowledge) or TLS (ALPN h2), driven by hand so
that a test sees every frame-level event. Loops are bounded in time.

    c = H2Conn(port)                       # or H2Conn(port, tls_ctx=ctx)
    sid = c.request("GET", "/")            # or body=b"...", end=False
    c.wait_ended(sid)
    c.streams[sid].status, .headers, .data, .trailers, .reset

Outbound header validation is off, so that a test can send what a
well-behaved client would not (connection-specific fields, upper case).
"""

import socket
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

HOST = "127.0.0.1"
TIMEOUT = 20.0  # any wait, on a loaded machine


class _Conn(h2.connection.H2Connection):
    """python-h2 closes its side at the first GOAWAY; RFC 9113 6.8 lets the
    streams up to its last stream id finish (and a graceful stop sends two
    GOAWAYs), so a GOAWAY NO_ERROR leaves this connection open."""

    def _receive_goaway_frame(self, frame):
        frames, events = super()._receive_goaway_frame(frame)
        if frame.error_code == 0:
            self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return frames, events


class Stream:
    def __init__(self, sid):
        self.id = sid
        self.status = None
        self.headers = []  # the final response's fields, in order, as str pairs
        self.interim = []  # 1xx responses' field lists
        self.data = bytearray()
        self.data_frames = 0
        self.trailers = None
        self.ended = False
        self.reset = None  # the error code of a RST_STREAM from usher
        self.headers_end_stream = False  # the response HEADERS carried END_STREAM

    def header(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None


class H2Conn:
    def __init__(self, port, tls_ctx=None, server_name="a.test", settings=None, auto_ack=True, timeout=TIMEOUT):
        s = socket.create_connection((HOST, port), timeout=timeout)
        if tls_ctx is not None:
            s = tls_ctx.wrap_socket(s, server_hostname=server_name)
            self.alpn = s.selected_alpn_protocol()
        else:
            self.alpn = None
        self.sock = s
        self.tls = tls_ctx is not None
        cfg = h2.config.H2Configuration(
            client_side=True,
            header_encoding="utf-8",
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.conn = _Conn(config=cfg)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.auto_ack = auto_ack
        self.streams = {}
        self.goaway = []  # (error code, last stream id) of each GOAWAY
        self.remote_settings = {}
        self.closed = False
        self.events = []
        self.flush()

    # -- sending -------------------------------------------------------------------------

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method, path, headers=(), body=None, end=True, authority="a.test", scheme=None):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", scheme or ("https" if self.tls else "http"))]
        if authority is not None:
            hdrs.append((":authority", authority))
        hdrs.append((":path", path))
        hdrs += list(headers)
        self.streams[sid] = Stream(sid)
        self.conn.send_headers(sid, hdrs, end_stream=body is None and end)
        self.flush()
        if body is not None:
            self.send_body(sid, body, end)
        return sid

    def send_body(self, sid, body, end=True):
        """Sends body on sid within the flow-control windows usher grants."""
        view = memoryview(body)
        deadline = time.monotonic() + TIMEOUT
        while True:
            if sid in self.streams and (self.streams[sid].reset is not None or self.streams[sid].ended):
                return
            n = min(len(view), self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if n > 0 or (len(view) == 0 and end):
                self.conn.send_data(sid, bytes(view[:n]), end_stream=end and n == len(view))
                self.flush()
                view = view[n:]
                if not view:
                    return
                continue
            if time.monotonic() > deadline:
                raise AssertionError("usher never opened the window of stream %d" % sid)
            self.pump(lambda: self.conn.local_flow_control_window(sid) > 0 or self.closed, timeout=TIMEOUT)
            if self.closed:
                return

    def trailers(self, sid, fields):
        self.conn.send_headers(sid, list(fields), end_stream=True)
        self.flush()

    def reset(self, sid, code=8):  # CANCEL
        self.conn.reset_stream(sid, error_code=code)
        self.flush()

    # -- receiving -----------------------------------------------------------------------

    def _event(self, ev):
        self.events.append(ev)
        st = self.streams.get(getattr(ev, "stream_id", None))
        if isinstance(ev, h2.events.ResponseReceived):
            st.status = int(dict(ev.headers)[":status"])
            st.headers = list(ev.headers)
            st.headers_end_stream = ev.stream_ended is not None
        elif isinstance(ev, h2.events.InformationalResponseReceived):
            st.interim.append(list(ev.headers))
        elif isinstance(ev, h2.events.DataReceived):
            st.data += ev.data
            st.data_frames += 1
            if self.auto_ack and ev.flow_controlled_length:
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived):
            st.trailers = list(ev.headers)
        elif isinstance(ev, h2.events.StreamEnded):
            st.ended = True
        elif isinstance(ev, h2.events.StreamReset):
            if st is not None:
                st.reset = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway.append((ev.error_code, ev.last_stream_id))
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            for k, v in ev.changed_settings.items():
                self.remote_settings[k] = v.new_value

    def pump(self, until, timeout=TIMEOUT):
        """Reads and handles frames until until() is true (returns True) or
        the connection closes or timeout passes (returns False)."""
        deadline = time.monotonic() + timeout
        while not until():
            if self.closed:
                return until()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(min(left, 1.0))
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except (ConnectionError, OSError):
                self.closed = True
                continue
            if not data:
                self.closed = True
                continue
            try:
                events = self.conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                # python-h2 refuses frames after a GOAWAY; what came is enough
                self.closed = True
                continue
            for ev in events:
                self._event(ev)
            try:
                self.flush()
            except (ConnectionError, OSError):
                self.closed = True
        return True

    def wait_ended(self, *sids, timeout=TIMEOUT):
        def done():
            return all(self.streams[s].ended or self.streams[s].reset is not None for s in sids)

        ok = self.pump(done, timeout)
        assert ok, "streams %s did not end: %s" % (sids, [vars(self.streams[s]) for s in sids if not done()])

    def settings(self, timeout=TIMEOUT):
        """usher's SETTINGS (waits for them)."""
        self.pump(lambda: self.remote_settings, timeout)
        return self.remote_settings

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()
