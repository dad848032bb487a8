"""One driver per study: the lease file, its heartbeat, and taking over from a dead driver."""

import json
import subprocess
import sys
import time

import pytest

from study.lease import LEASE_FILE, StudyBusy, StudyLease
from study.store import ParquetStore


def test_a_second_driver_is_refused_while_the_first_lives_and_takes_over_when_it_dies(tmp_path):
    store = ParquetStore(str(tmp_path / "s"))
    holder = subprocess.Popen([sys.executable, "-c", f"""
import time
from study.lease import StudyLease
from study.store import ParquetStore
lease = StudyLease(ParquetStore({str(store.root)!r}), heartbeat=0.2)
lease.acquire()
print("held", flush=True)
time.sleep(60)
"""], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StudyBusy, match=rf"another driver runs this study \(host .*, pid {holder.pid}, since "):
            StudyLease(store, heartbeat=0.2).acquire()
    finally:
        holder.kill()
        holder.wait()
    said = []
    lease = StudyLease(store, heartbeat=0.2, log=said.append)
    lease.acquire()  # the holder's pid is gone on this host: taken over at once
    assert said and f"pid {holder.pid}: its process {holder.pid} on this host is gone" in said[0]
    lease.release()
    assert not (tmp_path / "s" / LEASE_FILE).exists()


def test_a_lease_from_another_host_expires_when_its_heartbeat_stops(tmp_path):
    store = ParquetStore(str(tmp_path))
    (tmp_path / LEASE_FILE).write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "x",
                                                   "since": "2026-01-01T00:00:00", "heartbeat": time.time()}))
    with pytest.raises(StudyBusy, match="host elsewhere, pid 1"):
        StudyLease(store, heartbeat=0.2, expiry=1.0).acquire()
    time.sleep(0.5)  # beats missed: the next driver waits for the lease to beat again or expire
    said = []
    started = time.monotonic()
    with StudyLease(store, heartbeat=0.2, expiry=1.0, log=said.append) as lease:
        assert json.loads((tmp_path / LEASE_FILE).read_text())["token"] == lease.token
        before = json.loads((tmp_path / LEASE_FILE).read_text())["heartbeat"]
        time.sleep(0.5)
        assert json.loads((tmp_path / LEASE_FILE).read_text())["heartbeat"] > before  # it beats
    assert time.monotonic() - started < 5 and "waiting up to 1s" in said[0] and "heartbeat stopped" in said[1]
    assert not (tmp_path / LEASE_FILE).exists()
