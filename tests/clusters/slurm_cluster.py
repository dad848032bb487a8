"""A real, private SLURM on this host, for tests: munged, slurmctld and two slurmd nodes.

Everything lives under one scratch directory (config, munge key and socket, state, spool, logs), every
daemon listens on a free port picked at start, and every daemon is stopped by its PID: it never
touches the machine's own SLURM or munge, if any. The two nodes ``n1`` and ``n2`` are two ``slurmd``
on this host (distinct ``Port=``, started with ``-N``), so ``sbatch -N2`` gets a real two-node
allocation and ``srun -w n2`` really goes through the second node's daemon.

Needs Debian's ``slurmctld slurmd slurm-client munge`` packages (:data:`BINARIES`); run as root
(``SlurmUser=root``). By hand::

    python -m tests.clusters.slurm_cluster /tmp/myslurm   # prints the SLURM_CONF to export; Ctrl-C/TERM stop it
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "scancel")
NODES = ("n1", "n2")


def missing_binaries() -> list[str]:
    """The SLURM/munge programs this host lacks (empty when a test cluster can start)."""
    paths = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    return [b for b in BINARIES if shutil.which(b, path=paths) is None]


def which(name: str) -> str:
    paths = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    found = shutil.which(name, path=paths)
    if found is None:
        raise FileNotFoundError(name)
    return found


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that nothing listens on now, away from the usual defaults (6817/6818...)."""
    ports: list[int] = []
    socks = []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


class SlurmCluster:
    """``start()`` brings up munged, slurmctld and one slurmd per node; ``stop()`` ends them by PID.

    ``env`` is the environment a client (``sbatch``, ``srun``, ``scontrol``) needs: ``SLURM_CONF``.
    """

    def __init__(self, root: str | os.PathLike, nodes: tuple[str, ...] = NODES, cpus_per_node: int = 1,
                 kill_wait: int = 5, first_job_id: int = 1):
        self.root = Path(root)
        self.nodes, self.cpus_per_node, self.kill_wait = nodes, cpus_per_node, kill_wait
        self.first_job_id = first_job_id
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.sock"
        self.procs: dict[str, subprocess.Popen] = {}
        self.host = socket.gethostname().split(".")[0]

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def log(self, name: str) -> Path:
        return self.root / "log" / f"{name}.log"

    # -- set-up ---------------------------------------------------------------------------------
    def _write_munge(self) -> None:
        d = self.root / "munge"
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        key = d / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)

    def _write_conf(self) -> None:
        for sub in ("state", "log", "spool"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        ctld_port, *node_ports = free_ports(1 + len(self.nodes))
        r = self.root
        lines = [
            "ClusterName=dsttest",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={r}/state",
            f"SlurmdSpoolDir={r}/spool/%n",
            f"SlurmctldPidFile={r}/slurmctld.pid",
            f"SlurmdPidFile={r}/slurmd-%n.pid",
            f"SlurmctldLogFile={self.log('slurmctld')}",
            f"SlurmdLogFile={r}/log/slurmd-%n.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SwitchType=switch/none",
            "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/builtin",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "ReturnToService=2",
            f"KillWait={self.kill_wait}",  # a Ray head drains for 30 s on SIGTERM
            "InactiveLimit=0",
            "MinJobAge=600",
            f"FirstJobId={self.first_job_id}",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=60",
            "MessageTimeout=30",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
        ]
        for name, port in zip(self.nodes, node_ports):
            lines.append(f"NodeName={name} NodeHostname={self.host} NodeAddr=127.0.0.1 Port={port} "
                         f"CPUs={self.cpus_per_node} RealMemory=1024 State=UNKNOWN")
        lines.append(f"PartitionName=test Nodes={','.join(self.nodes)} Default=YES MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")

    def _spawn(self, name: str, argv: list[str]) -> None:
        with open(self.root / "log" / f"{name}.stdout", "ab") as out:
            self.procs[name] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, env=self.env, start_new_session=True)

    def _check_alive(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}:\n{self.diagnostics()}")

    def scontrol(self, *args: str, check: bool = True) -> str:
        return subprocess.run([which("scontrol"), *args], env=self.env, capture_output=True, text=True,
                              check=check, timeout=60).stdout

    def start(self, timeout: float = 60) -> SlurmCluster:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "log").mkdir(exist_ok=True)
        self._write_munge()
        self._write_conf()
        m = self.root / "munge"
        # --force: munged refuses a socket dir it finds insecure otherwise
        self._spawn("munged", [which("munged"), "-F", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={m / 'munge.key'}", f"--pid-file={m / 'munged.pid'}",
                               f"--seed-file={m / 'munged.seed'}", f"--log-file={self.log('munged')}"])
        deadline = time.time() + timeout
        while not self.munge_socket.exists():
            self._check_alive()
            if time.time() > deadline:
                raise TimeoutError(f"munged did not start:\n{self.diagnostics()}")
            time.sleep(0.05)
        self._spawn("slurmctld", [which("slurmctld"), "-D", "-i", "-f", str(self.conf)])
        while subprocess.run([which("scontrol"), "ping"], env=self.env, capture_output=True,
                             text=True, check=False).stdout.count("UP") < 1:
            self._check_alive()
            if time.time() > deadline:
                raise TimeoutError(f"slurmctld did not answer:\n{self.diagnostics()}")
            time.sleep(0.2)
        for node in self.nodes:
            self._spawn(f"slurmd-{node}", [which("slurmd"), "-D", "-N", node, "-f", str(self.conf)])
        while True:
            out = self.scontrol("show", "nodes", "-o", check=False)
            states = dict(re.findall(r"NodeName=(\S+) .*?State=(\S+)", out))
            if len(states) == len(self.nodes) and all(s.split("+")[0] == "IDLE" for s in states.values()):
                return self
            self._check_alive()
            if time.time() > deadline:
                raise TimeoutError(f"nodes not idle: {states}\n{self.diagnostics()}")
            time.sleep(0.2)

    # -- jobs -----------------------------------------------------------------------------------
    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` as a dict (JobState, ExitCode, NodeList, StdOut, ...); {} once purged."""
        out = self.scontrol("show", "job", "-o", job_id, check=False)
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def wait_job(self, job_id: str, timeout: float) -> dict[str, str]:
        """Poll until the job has ended (quicker than ``sbatch --wait``); returns its last record."""
        deadline = time.time() + timeout
        while True:
            info = self.job(job_id)
            if info.get("JobState") not in (None, "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"):
                return info
            self._check_alive()
            if time.time() > deadline:
                subprocess.run([which("scancel"), job_id], env=self.env, check=False)
                raise TimeoutError(f"job {job_id} still {info.get('JobState')} after {timeout:.0f}s")
            time.sleep(0.5)

    def diagnostics(self) -> str:
        parts = []
        for f in sorted((self.root / "log").glob("*")):
            text = f.read_text(errors="replace").strip().splitlines()
            parts.append(f"--- {f.name} (last 30 lines)\n" + "\n".join(text[-30:]))
        return "\n".join(parts)

    # -- tear-down ------------------------------------------------------------------------------
    def stop(self) -> None:
        """Cancel what is left, then end the daemons (slurmd first, munged last), each by its PID."""
        if "slurmctld" in self.procs and self.procs["slurmctld"].poll() is None:
            subprocess.run([which("scancel"), "--partition=test"], env=self.env,
                           capture_output=True, timeout=30, check=False)
            deadline = time.time() + self.kill_wait + 20  # their processes end before the slurmd do
            while time.time() < deadline and subprocess.run(
                    [which("squeue"), "-h", "-o", "%i"], env=self.env, capture_output=True, text=True,
                    timeout=30, check=False).stdout.strip():
                time.sleep(0.5)
        order = [n for n in self.procs if n.startswith("slurmd")] + ["slurmctld", "munged"]
        for name in order:
            p = self.procs.get(name)
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.procs.clear()

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    import sys

    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    cluster = SlurmCluster(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dst-slurm")
    try:
        cluster.start()
        print(f"export SLURM_CONF={cluster.conf}   # nodes {', '.join(cluster.nodes)}; Ctrl-C stops", flush=True)
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        cluster.stop()
