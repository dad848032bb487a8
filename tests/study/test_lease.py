"""One driver per study: the lease file, its heartbeat, and taking over from a dead driver."""

import errno
import json
import os
import socket
import subprocess
import sys
import time

import pytest

from study.folder import LEASE
from study.lease import LeaseLost, StudyBusy, StudyLease
from study.store import OutOfSpace, ParquetStore


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
    assert not (tmp_path / "s" / LEASE).exists()


def test_a_lease_from_another_host_expires_when_its_heartbeat_stops(tmp_path):
    store = ParquetStore(str(tmp_path))
    (tmp_path / LEASE).write_text(json.dumps({"host": "elsewhere", "pid": 1, "token": "x",
                                                   "since": "2026-01-01T00:00:00", "heartbeat": time.time()}))
    with pytest.raises(StudyBusy, match="host elsewhere, pid 1"):
        StudyLease(store, heartbeat=0.2, expiry=1.0).acquire()
    time.sleep(0.5)  # beats missed: the next driver waits for the lease to beat again or expire
    said = []
    started = time.monotonic()
    with StudyLease(store, heartbeat=0.2, expiry=1.0, log=said.append) as lease:
        assert json.loads((tmp_path / LEASE).read_text())["token"] == lease.token
        before = json.loads((tmp_path / LEASE).read_text())["heartbeat"]
        time.sleep(0.5)
        assert json.loads((tmp_path / LEASE).read_text())["heartbeat"] > before  # it beats
    assert time.monotonic() - started < 5 and "waiting up to 1s" in said[0] and "heartbeat stopped" in said[1]
    assert not (tmp_path / LEASE).exists()


def _rival(path, **fields):
    lease = {"host": "rival-host", "pid": 4242, "token": "rival", "since": "2026-01-01T00:00:00",
             "heartbeat": time.time(), **fields}
    path.write_text(json.dumps(lease))


def test_an_unreadable_lease_counts_as_held_until_it_is_old(tmp_path):
    store = ParquetStore(str(tmp_path))
    (tmp_path / LEASE).write_text("garbage, not a lease")
    with pytest.raises(StudyBusy, match=r"unreadable lease, written \d+s ago; it counts as held until it is 60s old"):
        StudyLease(store).acquire()
    old = time.time() - 61
    os.utime(tmp_path / LEASE, (old, old))
    said = []
    with StudyLease(store, heartbeat=0.2, log=said.append) as lease:
        assert json.loads((tmp_path / LEASE).read_text())["token"] == lease.token
    assert "taking over" in said[0] and "it is unreadable and 61s old" in said[0]


def test_the_holder_rewrites_a_lease_that_disappeared_or_was_garbled(tmp_path):
    lost = []
    with StudyLease(ParquetStore(str(tmp_path)), heartbeat=0.1, on_lost=lost.append) as lease:
        for spoil in ((tmp_path / LEASE).unlink, lambda: (tmp_path / LEASE).write_text("{")):
            spoil()
            time.sleep(0.4)
            assert json.loads((tmp_path / LEASE).read_text())["token"] == lease.token
    assert lost == [] and not (tmp_path / LEASE).exists()


def test_a_holder_whose_lease_another_driver_took_is_told_who_and_leaves_it(tmp_path):
    lost = []
    with StudyLease(ParquetStore(str(tmp_path)), heartbeat=0.1, on_lost=lost.append):
        _rival(tmp_path / LEASE)
        time.sleep(0.4)
    assert len(lost) == 1 and isinstance(lost[0], LeaseLost)
    assert "another driver took over" in str(lost[0]) and "host rival-host, pid 4242" in str(lost[0])
    assert json.loads((tmp_path / LEASE).read_text())["token"] == "rival"  # not deleted on release


def test_a_heartbeat_in_the_future_is_named_as_clock_skew(tmp_path):
    _rival(tmp_path / LEASE, heartbeat=time.time() + 3600)
    with pytest.raises(StudyBusy, match=r"heartbeat 3600s in the future: the clocks of that host and this one "
                                        r"disagree.*If no driver runs this study, delete .*driver.lease"):
        StudyLease(ParquetStore(str(tmp_path))).acquire()


def test_a_heartbeat_that_finds_the_disk_full_stops_the_study(tmp_path, monkeypatch):
    lost = []
    lease = StudyLease(ParquetStore(str(tmp_path)), heartbeat=0.1, on_lost=lost.append)
    with lease:
        def full():
            raise OSError(errno.ENOSPC, "No space left on device")
        monkeypatch.setattr(lease, "_write", full)
        time.sleep(0.4)
    assert len(lost) == 1 and isinstance(lost[0], OutOfSpace) and "no space left on /" in str(lost[0])


def test_holder_names_a_live_driver_and_none_once_it_is_gone_even_if_its_file_stays(tmp_path):
    store = ParquetStore(str(tmp_path))
    reader = StudyLease(store, expiry=1.0)
    assert reader.holder() is None  # no lease
    _rival(tmp_path / LEASE, host="elsewhere")
    assert reader.holder()["host"] == "elsewhere"  # another host's, beating
    _rival(tmp_path / LEASE, heartbeat=time.time() - 5)
    assert reader.holder() is None  # its heartbeat stopped: a killed driver's file
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _rival(tmp_path / LEASE, host=socket.gethostname(), pid=int(dead.stdout))
    assert reader.holder() is None  # its process on this host is gone
    assert (tmp_path / LEASE).exists()  # reading never removes or takes over a lease


def test_a_lease_that_names_no_driver_is_never_described_as_host_none(tmp_path):
    store = ParquetStore(str(tmp_path / "s"))
    os.makedirs(store.path)
    with open(os.path.join(store.path, LEASE), "w") as f:  # written by hand, or by something else
        json.dump({"token": "x", "heartbeat": time.time()}, f)
    with pytest.raises(StudyBusy) as refused:
        StudyLease(store, heartbeat=0.2).acquire()
    assert "another driver runs this study (a driver whose lease names no host or pid)" in str(refused.value)
    assert "None" not in str(refused.value)
    os.remove(os.path.join(store.path, LEASE))
    lease = StudyLease(store, heartbeat=0.2)
    lease.claim()
    os.remove(lease.path)  # gone before it is read back
    with pytest.raises(StudyBusy, match=r"at the same moment \(a driver whose lease vanished as it was read\)"):
        lease.confirm()
