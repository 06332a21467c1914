"""Watching a job from any process: tail its output files through the stream parser.

The scheduler writes the child's streams to files, so the CLI and the TUI can attach,
detach and re-attach at will; re-attaching replays the file from the start (cheap: the
parser is incremental) and lands on the same state as a watcher that never left.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from qtui.core.jobs.queue import Job
from qtui.core.llama.parser import Event, StreamParser

READ_BLOCK = 1 << 16


class JobTail:
    def __init__(self, job: Job) -> None:
        self.job_id = job.id
        self.parser = StreamParser()
        self._paths: dict[str, Path] = {"err": job.stderr_path, "out": job.stdout_path}
        self._files: dict[str, BinaryIO | None] = {"err": None, "out": None}

    def poll(self) -> list[Event]:
        """Feed whatever both files gained since the last call; returns the new events.

        stderr first: the ETA line starts on stderr and ends on stdout.
        """
        events: list[Event] = []
        if self._truncated():
            # The scheduler re-ran the job (files rewritten from zero): start over.
            self.close()
            self.parser = StreamParser()
        for stream in ("err", "out"):
            fh = self._files[stream]
            if fh is None:
                try:
                    fh = self._files[stream] = open(self._paths[stream], "rb")
                except FileNotFoundError:
                    continue
            while data := fh.read(READ_BLOCK):
                events.extend(self.parser.feed(stream, data))
        return events

    def _truncated(self) -> bool:
        """True when a file was replaced (a re-run writes fresh files) or cut shorter."""
        for stream, fh in self._files.items():
            if fh is None:
                continue
            try:
                on_disk = os.stat(self._paths[stream])
            except FileNotFoundError:
                return True
            if on_disk.st_ino != os.fstat(fh.fileno()).st_ino or on_disk.st_size < fh.tell():
                return True
        return False

    def close(self) -> None:
        for key, fh in self._files.items():
            if fh is not None:
                fh.close()
            self._files[key] = None

    def __enter__(self) -> JobTail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
