"""A connect that times out is a record too, with its SYN retransmissions counted: a listener
whose accept queue is full (listen(0), one connection already queued, never accepted) drops
new SYNs; a traced client with TCP_SYNCNT=1 gives up after one retransmission. Oracle: the
client's own connect() error (ETIMEDOUT)."""
import socket
import subprocess
import sys
import textwrap

from harness import Tracer, check, free_port, get, require_root, run_main, stop

CLIENT = textwrap.dedent("""
    import errno, socket, sys
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, 1)
    try:
        s.connect(("127.0.0.1", int(sys.argv[1])))
        print("connected")
    except OSError as e:
        print(errno.errorcode.get(e.errno, e.errno))
""")


def test(a):
    require_root()
    port = free_port()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(0)
    filler = socket.create_connection(("127.0.0.1", port))  # fills the accept queue
    tracer = Tracer(a.binary, ["-u", "root"], extra=["--", sys.executable, "-c", CLIENT, str(port)],
                    stdout=subprocess.PIPE)
    try:
        rc = tracer.wait(60)
        out = tracer.proc.stdout.read().strip()
    finally:
        stop(tracer.proc)
        filler.close()
        listener.close()
    check(rc == 0, f"exit {rc}: {tracer.stderr()}")
    check(out == "ETIMEDOUT", f"the client's connect ended with {out!r}, not ETIMEDOUT; the "
                              "test setup did not produce a timeout")
    recs = tracer.records(kind="connection")
    check(len(recs) == 1, f"expected one connection record, got {recs}")
    r = recs[0]
    check(get(r, "error.type") == "timeout", f"error.type {get(r, 'error.type')}")
    check(get(r, "server.port") == port, f"server.port {get(r, 'server.port')}")
    check((get(r, "odigos.tcp.retransmits") or 0) >= 1,
          f"SYN retransmissions not counted: {r}")


run_main(test)
