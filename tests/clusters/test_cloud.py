"""clusters/cloud: the Ray cluster-launcher config passes the schema and checks Ray ships (offline),
has autoscaling GPU workers that hold the spec's trials, installs what it should in the right
order, and the study it runs is a valid spec on storage every node sees."""

from __future__ import annotations

import copy
import json
import math
import re
import shlex
from fractions import Fraction
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from study.spec import load

from .cli_args import parse_cli

ROOT = Path(__file__).resolve().parents[2]
CLOUD = ROOT / "clusters" / "cloud"
SCHEMA = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((CLOUD / "aws.yaml").read_text())


def _local(config: dict, remote: str) -> Path | None:
    """The repository file that a path on the nodes comes from, through file_mounts (ray up runs
    from the repository root)."""
    for target, source in config["file_mounts"].items():
        if remote == target or remote.startswith(target.rstrip("/") + "/"):
            return ROOT / source / remote[len(target):].lstrip("/")
    return None


def test_config_passes_rays_schema_and_launcher_checks(config):
    jsonschema.validate(config, SCHEMA)
    # what `ray up` does before it contacts AWS: merge the provider defaults, check node types
    validate_config(prepare_config(copy.deepcopy(config)))


@pytest.mark.parametrize("break_it", [
    lambda c: c.update(max_worker=c.pop("max_workers")),                             # misspelt top-level key
    lambda c: c["available_node_types"]["gpu_worker"].update(min_worker=1),          # misspelt node-type key
    lambda c: c["available_node_types"]["gpu_worker"]["resources"].update(GPU=0.5),  # resources are integers
    lambda c: c["docker"].update(worker_imag="rayproject/ray"),
])
def test_schema_rejects_a_broken_config(config, break_it):
    broken = copy.deepcopy(config)
    break_it(broken)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_launcher_checks_reject_inconsistent_bounds(config):
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["min_workers"] = broken["max_workers"] + 1
    with pytest.raises(ValueError, match="max_workers"):
        validate_config(prepare_config(broken))


def test_gpu_workers_autoscale_within_bounds_and_hold_the_trials(config):
    spec = load(CLOUD / "study.yaml")
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("CPU") == 0, "trials on the head would die with it"
    workers = {name: t for name, t in types.items() if name != config["head_node_type"]}
    gpu = {name: t for name, t in workers.items() if t["resources"].get("GPU", 0) >= 1}
    assert gpu, "no GPU worker type"
    for name, t in gpu.items():
        assert 0 <= t["min_workers"] < t["max_workers"] <= config["max_workers"], name  # room to scale
        per_node = min(math.floor(Fraction(t["resources"]["CPU"]) / Fraction(str(spec.resources.cpu))),
                       math.floor(Fraction(t["resources"]["GPU"]) / Fraction(str(spec.resources.gpu))))
        assert per_node >= 1, f"{name} cannot hold one trial of {spec.resources}"
        for text in ((CLOUD / "study.yaml").read_text(), (CLOUD / "aws.yaml").read_text()):
            assert {int(n) for n in re.findall(r"(\d+) trials per worker node", text)} == {per_node}


def test_spec_is_valid_mounted_and_on_storage_every_node_sees(config):
    spec_file = _local(config, "~/dst-study/clusters/cloud/study.yaml")
    assert spec_file == ROOT / "clusters" / "cloud" / "study.yaml" and spec_file.is_file()
    assert (_local(config, "~/dst-study") / "pyproject.toml").is_file()
    spec = load(spec_file)
    assert "://" in spec.storage, f"storage {spec.storage!r} is a path local to each node"
    assert spec.resources.gpu > 0


def test_setup_installs_pinned_torch_before_the_project(config):
    commands = config["setup_commands"]
    torch = next(i for i, c in enumerate(commands) if "torch==" in c)
    project = next(i for i, c in enumerate(commands) if re.search(r"pip install( -q)? ~/dst-study\b", c))
    # installing the project first would let pip pick the newest torch from PyPI
    assert torch < project
    assert re.findall(r"torch==([\d.]+)", commands[torch]) == ["2.13.0", "2.13.0"]
    assert "--index-url https://download.pytorch.org/whl/cpu" in commands[torch]
    assert "~/dst-study" in config["file_mounts"]


def test_images_run_the_ray_of_the_kuberay_image_and_the_readme(config):
    dockerfile = (ROOT / "clusters" / "kuberay" / "Dockerfile").read_text()
    ray_version = re.search(r"^ARG RAY_VERSION=(\S+)", dockerfile, re.MULTILINE).group(1)
    for key in ("head_image", "worker_image"):
        assert config["docker"][key].startswith(f"rayproject/ray:{ray_version}-"), key
    assert config["docker"]["worker_image"].endswith("-gpu")
    assert f"ray[default]=={ray_version}" in (CLOUD / "README.md").read_text()


def test_commands_in_readme_and_config_are_real_and_point_at_the_study(config):
    spec = load(CLOUD / "study.yaml")
    text = (CLOUD / "README.md").read_text() + (CLOUD / "aws.yaml").read_text()
    commands = []
    for cmd in re.findall(r"dst-study (?:run|resume|status|compare)\b[^\n`]*", text):
        for quote in "'\"":
            if cmd.count(quote) % 2:  # the closing quote of `ray exec ... '...'`
                cmd = cmd[:cmd.rindex(quote)]
        commands.append(shlex.split(cmd, comments=True)[1:])
    assert len(commands) >= 6
    for argv in commands:
        args = parse_cli(argv)
        if args.command in ("run", "resume"):
            assert args.address == "auto", argv  # else a private Ray on the GPU-less head
        if args.command == "run":
            assert _local(config, args.spec) == CLOUD / "study.yaml", argv
        else:
            assert args.study == spec.study_dir, argv
