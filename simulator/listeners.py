"""HTTP listeners: the load balancer's and, in a loopback cluster, one per node that can be closed and reopened."""
import socket
import threading

from werkzeug.serving import WSGIRequestHandler, make_server

PORT_ATTEMPTS = 20


class QuietHandler(WSGIRequestHandler):
    """No access log (benchmarks would drown in it); Date left to the app's clock."""

    def send_response(self, code, message=None):
        """Like the base class minus its real-time Date header: the app sends AMS's clock."""
        self.log_request(code)
        self.send_response_only(code, message)

    def log_request(self, *args, **kwargs):
        """Skip the access log line."""

    def log(self, type, message, *args):
        """Keep only errors."""
        if type == "error":
            super().log(type, message, *args)


class Listener:
    """One threaded WSGI server in a background thread. close() also cuts open keep-alive connections, so a
    killed node refuses new connections and drops the ones it had, as a dead process does."""

    def __init__(self, host: str, port: int, app, name: str):
        bound = _bind(host, port)  # werkzeug exits the process on EADDRINUSE; a bound socket raises OSError here
        try:
            self.server = make_server(host, port, app, threaded=True, request_handler=QuietHandler,
                                      fd=bound.fileno())
        finally:
            bound.close()  # the server holds its own duplicate
        self.server.daemon_threads = True
        self._connections: set = set()
        self._guard = threading.Lock()
        self._track(self.server)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                       name=f"{name}-{self.server.port}", daemon=True)
        self.thread.start()

    @property
    def host(self) -> str:
        """The bound address."""
        return self.server.host

    @property
    def port(self) -> int:
        """The bound port."""
        return self.server.port

    def _track(self, server) -> None:
        """Remember accepted connections until their handler is done with them."""
        accept, release = server.get_request, server.shutdown_request

        def get_request():
            conn, addr = accept()
            with self._guard:
                self._connections.add(conn)
            return conn, addr

        def shutdown_request(conn):
            with self._guard:
                self._connections.discard(conn)
            release(conn)

        server.get_request, server.shutdown_request = get_request, shutdown_request

    def close(self) -> None:
        """Stop accepting, close the socket and cut every open connection."""
        stopper = threading.Thread(target=self.server.shutdown, daemon=True)
        stopper.start()
        _wake(self.host, self.port)  # the serving loop sees the shutdown now, not at its next poll
        stopper.join(timeout=5)
        self.server.server_close()
        with self._guard:
            open_connections = list(self._connections)
        for conn in open_connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(timeout=5)


def _wake(host: str, port: int) -> None:
    """Open and close one connection so that a serving loop blocked in select() wakes up."""
    try:
        socket.create_connection((host if host not in ("", "0.0.0.0", "::") else "127.0.0.1", port),
                                 timeout=0.5).close()
    except OSError:
        pass


def _bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port), address reuse on as socketserver does; OSError when taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def close_all(listeners) -> None:
    """Close several listeners at once (each close waits up to one poll interval for its serving loop)."""
    threads = [threading.Thread(target=listener.close, daemon=True) for listener in listeners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)


def open_together(host: str, port: int, main_app, node_apps: dict) -> tuple[Listener, dict]:
    """The balancer on (host, port) and one listener per node address on the same port.

    Port 0: the kernel picks the balancer's port; when a node address already has it taken, everything is closed
    and tried again (bounded). A fixed port that cannot be bound everywhere raises OSError."""
    attempts = PORT_ATTEMPTS if port == 0 and node_apps else 1
    for attempt in range(attempts):
        main = Listener(host, port, main_app, "ams-simulator")
        opened: dict = {}
        try:
            for address, app in node_apps.items():
                opened[address] = Listener(address, main.port, app, f"ams-node-{address}")
            return main, opened
        except OSError:
            for listener in [*opened.values(), main]:
                listener.close()
            if attempt == attempts - 1:
                raise
    raise OSError("no port free on every node address")  # not reached
