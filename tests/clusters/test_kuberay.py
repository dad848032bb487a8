"""clusters/kuberay: the manifests parse, use KubeRay's fields, agree with each other, with the image
the Dockerfile builds and with the spec they run; the commands they name are real dst-study
commands. No Kubernetes here, so these are static checks; each checker is also shown to reject a
broken copy."""

from __future__ import annotations

import copy
import math
import re
import shlex
from fractions import Fraction
from pathlib import Path, PurePosixPath

import pytest
import yaml
from packaging.version import Version

from study.spec import parse

from .cli_args import parse_cli

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "clusters" / "kuberay"
MANIFESTS = ("pvc.yaml", "configmap.yaml", "raycluster.yaml", "rayjob.yaml", "results-pod.yaml")
KINDS = {"PersistentVolumeClaim": "v1", "ConfigMap": "v1", "Pod": "v1",
         "RayCluster": "ray.io/v1", "RayJob": "ray.io/v1"}

# Spec fields of KubeRay's v1 CRDs (ray-operator/apis/ray/v1/{rayjob,raycluster}_types.go), to
# catch a misspelt field, which the API server would drop or reject.
RAYJOB_FIELDS = {"activeDeadlineSeconds", "backoffLimit", "rayClusterSpec", "submitterPodTemplate", "metadata",
                 "clusterSelector", "submitterConfig", "managedBy", "deletionStrategy", "entrypoint",
                 "runtimeEnvYAML", "jobId", "submissionMode", "entrypointResources", "entrypointNumCpus",
                 "entrypointNumGpus", "ttlSecondsAfterFinished", "shutdownAfterJobFinishes", "suspend", "schedule"}
CLUSTER_FIELDS = {"headGroupSpec", "workerGroupSpecs", "rayVersion", "enableInTreeAutoscaling",
                  "autoscalerOptions", "headServiceAnnotations", "suspend"}
HEAD_FIELDS = {"serviceType", "headService", "enableIngress", "rayStartParams", "template"}
WORKER_FIELDS = {"groupName", "replicas", "minReplicas", "maxReplicas", "numOfHosts", "rayStartParams",
                 "template", "scaleStrategy"}
AUTOSCALER_FIELDS = {"resources", "image", "imagePullPolicy", "env", "envFrom", "volumeMounts",
                     "securityContext", "idleTimeoutSeconds", "upscalingMode"}


@pytest.fixture(scope="module")
def docs() -> dict[str, dict]:
    """Every manifest document by kind (each kind appears once)."""
    out: dict[str, dict] = {}
    for name in MANIFESTS:
        for doc in yaml.safe_load_all((KUBERAY / name).read_text()):
            assert doc["kind"] not in out, f"{name}: a second {doc['kind']}"
            out[doc["kind"]] = doc
    return out


@pytest.fixture(scope="module")
def spec(docs):
    return parse(yaml.safe_load(docs["ConfigMap"]["data"]["study.yaml"]), "configmap.yaml")


def _pods(cluster_spec: dict) -> dict[str, dict]:
    pods = {"head": cluster_spec["headGroupSpec"]["template"]["spec"]}
    pods.update({g["groupName"]: g["template"]["spec"] for g in cluster_spec["workerGroupSpecs"]})
    return pods


def _mount(pod: dict, volume_source: str, name: str) -> PurePosixPath | None:
    """Where the pod's first container mounts the volume of that source (e.g. a claim's name)."""
    volumes = {v["name"] for v in pod.get("volumes", [])
               if name in (v.get(volume_source, {}).get("claimName"), v.get(volume_source, {}).get("name"))}
    paths = [m["mountPath"] for m in pod["containers"][0].get("volumeMounts", []) if m["name"] in volumes]
    return PurePosixPath(paths[0]) if paths else None


def _cpus(quantity) -> Fraction:
    q = str(quantity)
    return Fraction(q[:-1]) / 1000 if q.endswith("m") else Fraction(q)


def _trials_per_worker(group: dict, resources) -> int:
    params = group["rayStartParams"]
    fits = [math.floor(Fraction(params["num-cpus"]) / Fraction(str(resources.cpu)))]
    if resources.gpu:
        fits.append(math.floor(Fraction(params["num-gpus"]) / Fraction(str(resources.gpu))))
    return min(fits)


def test_every_manifest_parses_with_kuberay_kinds(docs):
    assert set(docs) == set(KINDS)
    for kind, doc in docs.items():
        assert doc["apiVersion"] == KINDS[kind], kind
        assert doc["metadata"]["name"], kind


def _field_problems(job: dict) -> list[str]:
    problems = [f"RayJob spec.{k}" for k in set(job["spec"]) - RAYJOB_FIELDS]
    cluster = job["spec"]["rayClusterSpec"]
    problems += [f"rayClusterSpec.{k}" for k in set(cluster) - CLUSTER_FIELDS]
    problems += [f"autoscalerOptions.{k}" for k in set(cluster.get("autoscalerOptions", {})) - AUTOSCALER_FIELDS]
    problems += [f"headGroupSpec.{k}" for k in set(cluster["headGroupSpec"]) - HEAD_FIELDS]
    for group in cluster["workerGroupSpecs"]:
        problems += [f"workerGroupSpecs.{k}" for k in set(group) - WORKER_FIELDS]
        if not group["minReplicas"] <= group.get("replicas", 0) <= group["maxReplicas"] or group["maxReplicas"] < 1:
            problems.append(f"{group['groupName']}: replicas outside [minReplicas, maxReplicas]")
    for group in [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]:
        # rayStartParams is a map of strings in the CRD: a bare number is rejected on apply
        problems += [f"rayStartParams.{k}: {v!r} is not a string"
                     for k, v in group["rayStartParams"].items() if not isinstance(v, str)]
    return problems


def test_ray_resources_use_kuberay_v1_fields(docs):
    assert _field_problems(docs["RayJob"]) == []
    assert _field_problems({"spec": {"rayClusterSpec": docs["RayCluster"]["spec"]}}) == []


@pytest.mark.parametrize("break_it, problem", [
    (lambda j: j["spec"].update(shutdownAfterJobFinish=True), "RayJob spec.shutdownAfterJobFinish"),
    (lambda j: j["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["rayStartParams"].update({"num-gpus": 1}),
     "rayStartParams.num-gpus: 1 is not a string"),
    (lambda j: j["spec"]["rayClusterSpec"]["workerGroupSpecs"][0].update(maxReplicas=0), "replicas outside"),
])
def test_field_check_catches_a_broken_rayjob(docs, break_it, problem):
    job = copy.deepcopy(docs["RayJob"])
    break_it(job)
    assert any(p.startswith(problem) or problem in p for p in _field_problems(job))


def test_rayjob_runs_the_same_cluster_as_raycluster(docs):
    assert docs["RayJob"]["spec"]["rayClusterSpec"] == docs["RayCluster"]["spec"]


def _docker_builds(readme: str) -> dict[str, str]:
    """Tag -> VARIANT of each `docker build` command in the README."""
    builds = {}
    for line in re.findall(r"^docker build .*$", readme, re.MULTILINE):
        argv = shlex.split(line)
        variant = [a.split("=", 1)[1] for a in argv if a.startswith("VARIANT=")]
        builds[argv[argv.index("-t") + 1]] = variant[0] if variant else "cpu"
    return builds


def test_every_pod_runs_the_cuda_image_the_readme_builds(docs):
    readme = (KUBERAY / "README.md").read_text()
    builds = _docker_builds(readme)
    pods = [*_pods(docs["RayCluster"]["spec"]).values(), *_pods(docs["RayJob"]["spec"]["rayClusterSpec"]).values(),
            docs["Pod"]["spec"]]
    images = {c["image"] for pod in pods for c in pod["containers"]}
    assert len(images) == 1, f"head, workers and results pod should share one image, got {images}"
    image = images.pop()
    assert builds.get(image) == "cuda", f"{image} is not what the README's CUDA `docker build -t` produces: {builds}"
    # the README's registry rewrite must match the manifests' image lines
    assert f"s#image: {image}#" in readme


def _dockerfile() -> tuple[dict[str, str], dict[str, list[str]]]:
    """Global ARG defaults, and each stage's instructions (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", (KUBERAY / "Dockerfile").read_text())
    args, stages, stage = {}, {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            words = line.split()
            stage = words[3] if len(words) > 3 and words[2].upper() == "AS" else "final"
            stages[stage] = [line]
        elif stage is None and line.startswith("ARG "):
            name, _, default = line[4:].partition("=")
            args[name] = default
        else:
            stages[stage].append(line)
    return args, stages


def _arg_default(lines: list[str], name: str) -> str:
    return next(line.split("=", 1)[1] for line in lines if line.startswith(f"ARG {name}="))


def test_dockerfile_pins_torch_and_ray_and_copies_what_exists(docs):
    args, stages = _dockerfile()
    assert stages["final"][0] == "FROM base-${VARIANT}" and {"base-cpu", "base-cuda"} <= set(stages)
    assert args["RAY_VERSION"] == docs["RayCluster"]["spec"]["rayVersion"]
    for variant in ("cpu", "cuda"):
        lines = stages[f"base-{variant}"]
        assert lines[0].split()[1].startswith("rayproject/ray:${RAY_VERSION}-")
        torch = _arg_default(lines, "TORCH_VERSION")
        assert Version(torch) >= Version("2.1")  # pyproject: torch>=2.1
        install = next(line for line in lines if "pip install" in line and "torch" in line)
        assert '"torch==${TORCH_VERSION}"' in install
    cpu_install = next(line for line in stages["base-cpu"] if "torch==" in line)
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu_install
    assert _arg_default(stages["base-cpu"], "TORCH_VERSION") == "2.13.0"

    copied = {}
    for line in stages["final"]:
        if line.startswith("COPY "):
            *sources, dest = [w for w in line.split()[1:] if not w.startswith("--")]
            copied.update({s: dest for s in sources})
    missing = [s for s in copied if not (ROOT / s).exists()]
    assert not missing, f"the Dockerfile copies what the repository lacks: {missing}"
    pyproject = (ROOT / "pyproject.toml").read_text()
    readme = re.search(r'^readme = "(.+)"', pyproject, re.MULTILINE).group(1)
    needed = {"pyproject.toml", readme, "dst_core", "study"}  # what `pip install .` reads
    assert needed <= set(copied), f"pip install needs {needed - set(copied)}"
    assert any("pip install" in line and "/opt/dst-study" in line for line in stages["final"])


def _storage_problems(docs: dict, spec) -> list[str]:
    pvc, configmap = docs["PersistentVolumeClaim"], docs["ConfigMap"]
    problems = [] if "ReadWriteMany" in pvc["spec"]["accessModes"] else ["the claim is not ReadWriteMany"]
    clusters = {"RayCluster": docs["RayCluster"]["spec"], "RayJob": docs["RayJob"]["spec"]["rayClusterSpec"]}
    for where, cluster in clusters.items():
        for group, pod in _pods(cluster).items():
            results = _mount(pod, "persistentVolumeClaim", pvc["metadata"]["name"])
            if results is None or not PurePosixPath(spec.storage).is_relative_to(results):
                problems.append(f"{where} {group}: storage {spec.storage} is not on the claim (mounted at {results})")
            if _mount(pod, "configMap", configmap["metadata"]["name"]) is None:
                problems.append(f"{where} {group}: the spec ConfigMap is not mounted")
    return problems


def test_spec_is_valid_and_stored_on_the_shared_claim_in_every_pod(docs, spec):
    assert _storage_problems(docs, spec) == []


def test_storage_check_catches_a_pod_without_the_claim(docs, spec):
    broken = copy.deepcopy(docs)
    broken["RayCluster"]["spec"]["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]["volumeMounts"] = []
    assert _storage_problems(broken, spec) == [
        "RayCluster gpu: storage /mnt/results is not on the claim (mounted at None)",
        "RayCluster gpu: the spec ConfigMap is not mounted"]
    assert _storage_problems(docs, spec.model_copy(update={"storage": "/tmp/results"}))  # a pod-local path


def test_worker_pods_hold_what_the_spec_asks_per_trial(docs, spec):
    resources = spec.resources
    assert resources.gpu > 0, "the workers are GPU pods; a CPU-only spec would leave their GPUs idle"
    for group in docs["RayCluster"]["spec"]["workerGroupSpecs"]:
        container = group["template"]["spec"]["containers"][0]["resources"]
        limits, params = container["limits"], group["rayStartParams"]
        assert Fraction(params["num-gpus"]) == Fraction(limits["nvidia.com/gpu"])
        assert container["requests"].get("nvidia.com/gpu", limits["nvidia.com/gpu"]) == limits["nvidia.com/gpu"]
        assert Fraction(params["num-cpus"]) <= _cpus(limits["cpu"])
        per_pod = _trials_per_worker(group, resources)
        assert per_pod >= 1, f"{group['groupName']}: a pod cannot hold one trial of {resources}"
        # the comments that tell users how many trials share a pod must say the same
        for name in ("raycluster.yaml", "configmap.yaml"):
            claims = {int(n) for n in re.findall(r"(\d+) trials per worker pod", (KUBERAY / name).read_text())}
            assert claims == {per_pod}, f"{name} says {claims} trials per worker pod; it is {per_pod}"


def test_trial_packing(spec):
    group = {"rayStartParams": {"num-cpus": "4", "num-gpus": "1"}}
    gpu_bound = spec.resources.model_copy(update={"gpu": 0.3})
    assert _trials_per_worker(group, gpu_bound) == 3  # 1 GPU / 0.3
    too_big = spec.resources.model_copy(update={"cpu": 8})
    assert _trials_per_worker(group, too_big) == 0  # 4 CPUs cannot hold an 8-CPU trial


def _commands(text: str) -> list[list[str]]:
    """Every `dst-study run|resume|status|compare ...` written in the text (docs, comments, fields)."""
    out = []
    for cmd in re.findall(r"dst-study (?:run|resume|status|compare)\b[^\n`]*", text):
        for quote in "'\"":
            if cmd.count(quote) % 2:  # the closing quote of e.g. `ray exec ... '...'`
                cmd = cmd[:cmd.rindex(quote)]
        out.append(shlex.split(cmd, comments=True)[1:])
    return out


def test_entrypoint_runs_the_mounted_spec_on_the_cluster(docs):
    argv = shlex.split(docs["RayJob"]["spec"]["entrypoint"])
    assert argv[0] == "dst-study"
    args = parse_cli(argv[1:])
    assert args.command == "run" and args.address == "auto"
    spec_path = PurePosixPath(args.spec)
    head = docs["RayJob"]["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert _mount(head, "configMap", docs["ConfigMap"]["metadata"]["name"]) == spec_path.parent
    assert spec_path.name in docs["ConfigMap"]["data"]


def test_commands_in_readme_and_manifests_are_real_and_point_at_the_study(docs, spec):
    text = "\n".join(p.read_text() for p in sorted(KUBERAY.iterdir()) if p.suffix in (".md", ".yaml"))
    commands = _commands(text)
    assert len(commands) >= 8
    for argv in commands:
        args = parse_cli(argv)
        if args.command in ("run", "resume"):
            # without --address dst-study starts a private Ray in the head pod, away from the GPUs
            assert args.address == "auto", argv
        if args.command == "run":
            assert args.spec == "/specs/study.yaml", argv
        else:
            assert args.study in (spec.study_dir, f"results/{spec.name}"), argv
