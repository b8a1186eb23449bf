"""In-process stand-ins for the service's transport and journal (shared by tests and bench)."""
from __future__ import annotations


class FakeTransport:
    """An asyncio transport that keeps what the service writes."""

    def __init__(self):
        self.out = bytearray()
        self.paused = False

    def write(self, data):
        self.out += data

    def is_closing(self):
        return False

    def pause_reading(self):
        self.paused = True

    def resume_reading(self):
        self.paused = False

    def close(self):
        pass

    def lines(self):
        return bytes(self.out).decode().splitlines()


class ListJournal:
    """Stands in for the SQLite journal: keeps the records."""
    sync = False
    durability = "batch"
    committed = 0
    pending = 0

    def __init__(self):
        self.records = []

    def append(self, rec):
        self.records.append(rec)

    def append_snapshot(self, upto, state):
        pass

    def kick(self):
        pass


def serve_on_taken_port(capsys, journal):
    """``sorter serve`` on a port another socket holds: exit code 2, one error line naming the
    address (returned), no traceback. Undoes what ``run_server`` tunes for latency."""
    import asyncio
    import gc
    import socket
    import sys

    from sorter.cli import main
    from sorter.resources import seed_path
    switch = sys.getswitchinterval()
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            port = s.getsockname()[1]
            code = main(["serve", "--plan", str(seed_path("plan/demo_plan.csv")),
                         "--chutes", str(seed_path("plan/demo_chutes.toml")), "--port", str(port),
                         "--journal", str(journal)])
    finally:                   # run_server tunes the process for latency: undo it for other tests
        gc.unfreeze()
        sys.setswitchinterval(switch)
        asyncio.set_event_loop(None)     # as asyncio.run leaves it (a new loop set here was
                                         # never closed: its socket pair warned when collected)
    err = capsys.readouterr().err
    errors = [ln for ln in err.strip().splitlines() if ln.startswith("sorter serve: error: ")]
    assert code == 2 and "Traceback" not in err, err
    assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1], err   # (after "plan ...")
    assert f"127.0.0.1:{port}" in errors[0]
    return errors[0]


def exchange(svc, payload: bytes, timeout: float = 30.0) -> list:
    """Send ``payload`` to a real TCP server of ``svc`` on a free local port, close the
    sending side (like ``printf ... | nc -q1``) and return every answer line until the
    service closes the connection."""
    import asyncio

    from sorter.service.server import start_server

    async def main_():
        server = await start_server(svc, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(payload)
        w.write_eof()
        out = (await asyncio.wait_for(r.read(), timeout)).decode().splitlines()
        w.close()
        server.close()
        await server.wait_closed()
        return out

    return asyncio.run(main_())


def ask_served(argv, cwd, line, *, timeout=20):
    """Start ``argv`` (a ``sorter serve ... --port 0`` process) in ``cwd``, send it one
    telegram ``line`` (bytes), then stop it with SIGTERM. Returns ``(listening, answer,
    returncode, stderr)``: its first stdout line (the listening address) and the answer."""
    import re
    import signal
    import socket
    import subprocess

    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        listening = proc.stdout.readline().rstrip("\n")
        m = re.search(r"listening on 127\.0\.0\.1:(\d+),", listening)
        assert m, (listening, proc.stderr.read() if proc.poll() is not None else "")
        with socket.create_connection(("127.0.0.1", int(m.group(1))), timeout=timeout) as s:
            s.sendall(line)
            answer = s.makefile("rb").readline().decode().rstrip("\n")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    return listening, answer, proc.returncode, err
