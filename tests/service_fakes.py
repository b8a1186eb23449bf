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
