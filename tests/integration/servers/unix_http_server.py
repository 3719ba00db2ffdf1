"""The test HTTP/1.1 server (http_server.py's endpoints) on a Unix domain socket.

Usage: unix_http_server.py PATH   (PATH is removed first if it exists)
"""
import os
import socketserver
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from http_server import Handler  # noqa: E402


class UnixHandler(Handler):
    disable_nagle_algorithm = False  # TCP_NODELAY does not apply to AF_UNIX

    def address_string(self):
        return "unix"  # client_address is '' for an unnamed AF_UNIX peer


class Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


if __name__ == "__main__":
    path = sys.argv[1]
    if os.path.exists(path):
        os.unlink(path)
    Server(path, UnixHandler).serve_forever()
