"""Single-threaded HTTP/1.1 server (selectors) for tests with very many concurrent connections.

    python3 many_conn_server.py PORT STATS_FILE

Every connection may carry keep-alive requests; each request (no body expected) gets
`200 OK` with the body "ok <path>\\n". A connection stays open until the client closes it.
The server counts the connections open at once; on SIGTERM/SIGINT it writes
"peak_open=N requests=M" to STATS_FILE and exits. It raises its own RLIMIT_NOFILE soft limit.
"""
import resource
import selectors
import signal
import socket
import sys

port, stats_file = int(sys.argv[1]), sys.argv[2]
# Up to the hard limit (raising that needs CAP_SYS_RESOURCE, which containers often lack).
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard == resource.RLIM_INFINITY or hard > 65536:
    hard = 65536
resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, hard), hard))

sel = selectors.DefaultSelector()
lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", port))
lsock.listen(4096)
lsock.setblocking(False)
sel.register(lsock, selectors.EVENT_READ, None)

bufs = {}
open_now = peak = requests = 0
running = True


def on_signal(*_):
    global running
    running = False


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)


def close(conn):
    global open_now
    sel.unregister(conn)
    bufs.pop(conn, None)
    conn.close()
    open_now -= 1


while running:
    for key, _ in sel.select(timeout=0.2):
        if key.data is None:
            while True:
                try:
                    conn, _ = lsock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(conn, selectors.EVENT_READ, b"")
                bufs[conn] = b""
                open_now += 1
                peak = max(peak, open_now)
            continue
        conn = key.fileobj
        try:
            data = conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            continue
        except ConnectionError:
            close(conn)
            continue
        if not data:
            close(conn)
            continue
        buf = bufs[conn] + data
        while b"\r\n\r\n" in buf:
            head, _, buf = buf.partition(b"\r\n\r\n")
            path = head.split(b"\r\n", 1)[0].split(b" ")[1]
            body = b"ok " + path + b"\n"
            # Responses are small: the socket buffer takes them whole.
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            requests += 1
        bufs[conn] = buf

with open(stats_file, "w") as f:
    f.write(f"peak_open={peak} requests={requests} open_at_exit={open_now}\n")
