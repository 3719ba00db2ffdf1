"""HTTP/1.1 test server with the endpoints the integration tests need.

/fast            200, small body
/slow?ms=N       waits N ms (default 200), then 200
/error           500
/notfound        404 (any unknown path)
/chunked?n=K&pause_ms=P  chunked response, K chunks with P ms between them
/large?bytes=N   200 with an N-byte body (default 1 MiB)
POST /echo       echoes the request body
/reset           closes the connection with RST (SO_LINGER 0) without answering
"""
import socket
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # http.server writes headers and body with separate send() calls; with Nagle
    # on, the body waits for the client's delayed ACK (40 ms) after the server
    # wrote it, so the wire and the server disagree. Real servers (nginx, Go)
    # set TCP_NODELAY too.
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def _send(self, code, body, ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        u = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if u.path == "/fast":
            self._send(200, b"fast\n")
        elif u.path == "/slow":
            time.sleep(int(q.get("ms", "200")) / 1000.0)
            self._send(200, b"slow\n")
        elif u.path == "/error":
            self._send(500, b"boom\n")
        elif u.path == "/large":
            self._send(200, b"x" * int(q.get("bytes", str(1 << 20))))
        elif u.path == "/chunked":
            n, pause = int(q.get("n", "3")), int(q.get("pause_ms", "50"))
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            for i in range(n):
                data = f"chunk {i}\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
                time.sleep(pause / 1000.0)
            self.wfile.write(b"0\r\n\r\n")
        elif u.path == "/reset":
            s = self.connection
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
            self.close_connection = True
        else:
            self._send(404, b"not found\n")

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n) if n else b""
        self._send(200, body, "application/octet-stream")


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    srv.serve_forever()
