"""clusters/slurm/dst-study.sbatch under a real SLURM: two nodes, Ray head and worker through srun.

The fixture starts a private SLURM (munged, slurmctld, two slurmd ``n1``/``n2`` on this host, see
``slurm_cluster.py``); the test submits the real batch script twice with ``sbatch -N2``: the first
job runs the study's 2 trials on a 2-node Ray cluster, the second (a resubmission after the
allocation ended) finds them done and runs nothing.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from study.runner import plan
from study.spec import parse
from study.store import ParquetStore

from .slurm_cluster import SlurmCluster, missing_binaries, which

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "clusters" / "slurm" / "dst-study.sbatch"
JOB_TIMEOUT = 240  # seconds per job; each takes well under a minute on 2 cores


def _why_no_slurm() -> str | None:
    missing = missing_binaries()
    if missing:
        return (f"SLURM is not installed ({', '.join(missing)} missing): install Debian's slurmctld slurmd "
                f"slurm-client munge packages, as .ci/run does, to run the batch script under a real SLURM")
    if os.geteuid() != 0:
        return "the test SLURM runs its daemons and jobs as root (SlurmUser=root): run the tests as root"
    return None


pytestmark = pytest.mark.skipif(_why_no_slurm() is not None, reason=_why_no_slurm() or "")


def _port_block_free(base: int, n: int = 20) -> bool:
    for port in range(base, base + n):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("", port))
            except OSError:
                return False
    return True


def _first_job_id() -> int:
    """A random first job id whose jobs (this one and the next) get free Ray port blocks from the
    script's default rule 20000 + (job id % 300) * 40, so the defaults are what runs."""
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(100_000, 900_000)
        if all(_port_block_free(20000 + (j % 300) * 40) for j in (first, first + 1)):
            return first
    pytest.skip("no free port block for Ray in 20000-31999")


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), first_job_id=_first_job_id())
    try:
        cluster.start()
    except BaseException:
        print(cluster.diagnostics())
        cluster.stop()
        raise
    yield cluster
    cluster.stop()


@pytest.fixture
def ray_tmp():
    # short on purpose: Ray's unix socket paths below it must stay under 107 characters
    path = tempfile.mkdtemp(prefix="dsr", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _job_env(cluster: SlurmCluster, ray_tmp: str) -> dict[str, str]:
    env = {k: v for k, v in cluster.env.items()
           if not (k.startswith("SLURM_") and k != "SLURM_CONF") and k not in ("RAY_ADDRESS", "SBATCH_EXPORT")}
    env["DST_STUDY_ENV"] = sys.prefix  # the venv running this test; DST_STUDY_CACHE comes along
    env["DST_STUDY_TMP"] = ray_tmp
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def _submit(cluster: SlurmCluster, env: dict[str, str], workdir: Path, spec: Path,
            export: str = "ALL") -> tuple[dict[str, str], str]:
    out = subprocess.run([which("sbatch"), "--parsable", "-N2", f"--export={export}", f"--chdir={workdir}",
                          f"--output={workdir}/job-%j.out", str(SCRIPT), str(spec)],
                         env=env, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, f"sbatch failed: {out.stderr}\n{cluster.diagnostics()}"
    job_id = out.stdout.strip().split(";")[0]
    info = cluster.wait_job(job_id, JOB_TIMEOUT)  # polls scontrol: quicker than sbatch --wait
    log = workdir / f"job-{job_id}.out"
    text = log.read_text(errors="replace") if log.exists() else "(no job output)"
    assert info.get("JobState") == "COMPLETED" and info.get("ExitCode") == "0:0", \
        f"job {job_id}: {info.get('JobState')} {info.get('ExitCode')}\n{text}\n{cluster.diagnostics()}"
    return info, text


def _our_ray_processes(ray_tmp: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if ray_tmp.encode() in cmdline.read_bytes():
                found.append(cmdline.parent.name)
        except OSError:
            pass
    return found


@pytest.mark.slow
def test_sbatch_runs_study_on_two_nodes_and_resubmission_runs_nothing(slurm, ray_tmp, tmp_path, monkeypatch,
                                                                      forget_plugins):
    assert os.environ.get("DST_STUDY_CACHE"), "tests/conftest.py sets the MNIST-1D cache"
    # a plugin in the submitting directory only (not installed): Ray's runtime environment ships it
    marker = tmp_path / "plugin-imports.txt"
    (tmp_path / "slurm_plugin.py").write_text(
        "import os\nimport dst_core\n"
        f"open({str(marker)!r}, 'a').write(f'{{os.getpid()}} {{__file__}}\\n')\n"
        "@dst_core.register_criterion('slurm_abs_grad', needs_grad=True, paper_order='before_step', "
        "description='|g|')\n"
        "def score(w, g, mask, generator=None):\n    return g.abs()\n")
    data = {"name": "slurm-mini", "storage": str(tmp_path / "results"),  # shared by both "nodes"
            "plugins": ["slurm_plugin"],
            "base": {"dataset": "mnist1d", "model": "mnist1d_mlp", "epochs": 1, "lr": 0.1,
                     "update_period": 50, "device": "cpu", "criterion": "slurm_abs_grad"},
            "grid": {"density": [0.1, 0.3], "seed": [0]},
            "resources": {"cpu": 1}, "retries": 1}
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    spec = parse(data, plugins=[])
    expected = {t.id for t in plan(spec).trials}
    assert len(expected) == 2
    env = _job_env(slurm, ray_tmp)
    study = ParquetStore(spec.study_dir)

    started = time.time()
    info, out = _submit(slurm, env, tmp_path, spec_file)
    first = time.time() - started
    assert info["NodeList"] == "n[1-2]" and info["NumNodes"] == "2", info
    assert re.search(r"starting Ray head on n1\b", out) and re.search(r"starting Ray worker on n2\b", out), out
    assert "ray nodes alive: 2 (of 2 wanted), 2 CPUs" in out, out  # the driver's cluster: both nodes
    assert "2 trials (2 DST), 0 done, 2 to run" in out, out
    assert "Ray: 2 nodes, 2 CPUs, 0 GPUs" in out, out  # dst-study's driver sees both nodes
    trials = study.read("trials")
    assert sorted(trials["trial_id"]) == sorted(expected), out
    assert set(trials["status"]) == {"completed"}, trials[["trial_id", "status", "error"]]
    assert "dst-study: importing plugins: slurm_plugin" in out, out
    assert all('"module": "slurm_plugin"' in p for p in trials["plugins"]), trials["plugins"]
    # this test, the driver and the workers that ran the trials each imported it
    assert len({line.split()[0] for line in marker.read_text().splitlines()}) >= 3, marker.read_text()
    parts = sorted(study.files("trials"))
    waves = sorted(p.name for p in (tmp_path / "results" / "slurm-mini" / "tune").iterdir())
    # Ray is gone: no process of this job's Ray, its temp dirs removed on every node
    assert not _our_ray_processes(ray_tmp)
    assert not os.listdir(ray_tmp), os.listdir(ray_tmp)

    # again, from a clean environment: only what the job needs, the venv by DST_STUDY_ENV
    started = time.time()
    clean = ",".join(f"{k}={env[k]}" for k in ("SLURM_CONF", "DST_STUDY_ENV", "DST_STUDY_CACHE", "DST_STUDY_TMP",
                                                 "RAY_USAGE_STATS_ENABLED"))
    _, again = _submit(slurm, env, tmp_path, spec_file, export=f"NONE,{clean}")
    second = time.time() - started
    assert "ray nodes alive: 2" in again, again
    assert "2 trials (2 DST), 2 done, 0 to run" in again, again
    trials = study.read("trials")
    assert sorted(trials["trial_id"]) == sorted(expected)  # still exactly the 2 rows
    assert sorted(study.files("trials")) == parts, "the resubmission wrote rows"
    assert sorted(p.name for p in (tmp_path / "results" / "slurm-mini" / "tune").iterdir()) == waves, \
        "the resubmission started a Tune experiment"
    assert not _our_ray_processes(ray_tmp)
    print(f"{out}\n{again}\nfirst job {first:.1f}s, resubmission {second:.1f}s")
