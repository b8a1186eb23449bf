"""WCS integration: a scan-decision service over a line telegram protocol.

* :mod:`sorter.service.protocol`: the telegram parser and formatter (pure functions).
* :mod:`sorter.service.server`: the asyncio TCP server around one chute engine,
  with answer deadlines and replay de-duplication.
* :mod:`sorter.service.journal`: the SQLite journal (WAL, batched writer thread,
  ``batch``/``sync`` durability), snapshots, crash recovery and export.
* :mod:`sorter.service.loadgen`: a load generator reporting throughput and latency.

``docs/service.md`` documents the protocol, durability modes and recovery.
"""
from sorter.service.journal import Journal, JournalError, export, restore
from sorter.service.protocol import TelegramError, parse_line
from sorter.service.server import Connection, Service, open_service, run_server, start_server

__all__ = ["Service", "Connection", "Journal", "JournalError", "TelegramError", "parse_line",
           "open_service", "run_server", "start_server", "restore", "export"]
