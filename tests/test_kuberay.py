"""kuberay.yaml: every field it uses exists in KubeRay's ray.io/v1 CRDs with the right type, its
entrypoint is a valid sweep command line, and the cluster offers what that sweep asks for."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from sweeps import capacity
from sweeps.cli import parser, spec_from_args

ROOT = Path(__file__).resolve().parents[1]
DOCS = list(yaml.safe_load_all((ROOT / "kuberay.yaml").read_text()))

# The subset of the CRDs' openAPIV3Schema (spec.versions[name=v1]) that kuberay.yaml uses, types and
# required lists copied from ray-operator/config/crd/bases/ray.io_rayclusters.yaml and
# ray.io_rayjobs.yaml of ray-project/kuberay v1.7.0 (commit 59d663aeec13760646da3db9c1cf8cfe883e30b7;
# unchanged on master at feeaf72f, 2026-08-19). Pod fields are the core/v1 PodSpec the CRDs embed.
# A field the manifest starts to use must be added here from the CRD, or the test fails.
STR, INT, BOOL, QUANTITY = "string", "integer", "boolean", "int-or-string"


def obj(required: tuple[str, ...] = (), **fields) -> dict:
    return {"type": "object", "required": required, "fields": fields}


def mapping(value: str) -> dict:
    return {"type": "object", "values": value}


def array(item) -> dict:
    return {"type": "array", "item": item}


def enum(*values: str) -> dict:
    return {"type": STR, "enum": values}


RESOURCES = obj(requests=mapping(QUANTITY), limits=mapping(QUANTITY))
POD_TEMPLATE = obj(
    spec=obj(
        ("containers",),
        serviceAccountName=STR,
        containers=array(obj(("name",), name=STR, image=STR, resources=RESOURCES)),
        tolerations=array(obj(key=STR, operator=STR, effect=STR)),
    )
)
RAY_CLUSTER_SPEC = obj(
    ("headGroupSpec",),
    rayVersion=STR,
    authOptions=obj(mode=enum("disabled", "token")),
    enableInTreeAutoscaling=BOOL,
    autoscalerOptions=obj(idleTimeoutSeconds=INT),
    headGroupSpec=obj(
        ("template",), serviceType=STR, enableIngress=BOOL, rayStartParams=mapping(STR), template=POD_TEMPLATE
    ),
    workerGroupSpecs=array(
        obj(
            ("groupName", "maxReplicas", "minReplicas", "template"),
            groupName=STR,
            replicas=INT,
            minReplicas=INT,
            maxReplicas=INT,
            rayStartParams=mapping(STR),
            template=POD_TEMPLATE,
        )
    ),
)
RAY_JOB_SPEC = obj(
    clusterSelector=mapping(STR),
    # The CRD types submissionMode as a string; the values are the Go constants of rayjob_types.go.
    submissionMode=enum("K8sJobMode", "HTTPMode", "InteractiveMode", "SidecarMode"),
    entrypoint=STR,
    submitterConfig=obj(backoffLimit=INT),
)
METADATA = obj(("name",), name=STR, annotations=mapping(STR))  # ObjectMeta: the API server checks it, not the CRDs
SCHEMAS = {
    ("v1", "ServiceAccount"): obj(("metadata",), apiVersion=STR, kind=STR, metadata=METADATA),
    ("ray.io/v1", "RayCluster"): obj(("spec",), apiVersion=STR, kind=STR, metadata=METADATA, spec=RAY_CLUSTER_SPEC),
    ("ray.io/v1", "RayJob"): obj(("spec",), apiVersion=STR, kind=STR, metadata=METADATA, spec=RAY_JOB_SPEC),
}


def problems(value, schema, where: str = "") -> list[str]:
    """Where `value` breaks `schema`: unknown fields, missing required ones, wrong types or values."""
    kind = schema if isinstance(schema, str) else schema["type"]
    ok = {
        STR: isinstance(value, str),
        INT: isinstance(value, int) and not isinstance(value, bool),
        BOOL: isinstance(value, bool),
        QUANTITY: isinstance(value, (str, int)) and not isinstance(value, bool),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
    }[kind]
    if not ok:
        return [f"{where or '.'}: expected {kind}, got {value!r}"]
    if isinstance(schema, str):
        return []
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r} is not one of {schema['enum']}"]
    out = []
    if "fields" in schema:
        out += [f"{where}.{k}: required" for k in schema["required"] if k not in value]
        for key, item in value.items():
            if key not in schema["fields"]:
                out.append(f"{where}.{key}: not in the CRD subset (add it from the CRD)")
            else:
                out += problems(item, schema["fields"][key], f"{where}.{key}")
    for key, item in value.items() if "values" in schema else ():
        out += problems(item, schema["values"], f"{where}.{key}")
    for i, item in enumerate(value if "item" in schema else ()):
        out += problems(item, schema["item"], f"{where}[{i}]")
    return out


def _doc(kind: str) -> dict:
    (doc,) = [d for d in DOCS if d["kind"] == kind]
    return doc


def _pods() -> list[dict]:
    spec = _doc("RayCluster")["spec"]
    return [spec["headGroupSpec"]["template"]["spec"], *(g["template"]["spec"] for g in spec["workerGroupSpecs"])]


def _entrypoint():
    """The RayJob's entrypoint through our real CLI: (model, args, spec)."""
    python, script, *argv = shlex.split(_doc("RayJob")["spec"]["entrypoint"])
    assert python == "python" and script.startswith("/home/ray/forecast-sweeps/sweeps/"), script
    model = Path(script).stem
    assert (ROOT / "sweeps" / f"{model}.py").is_file()
    args = parser(model).parse_args(argv)
    return model, args, spec_from_args(model, args)


def test_manifest_holds_a_service_account_a_ray_cluster_and_a_ray_job():
    assert [(d["apiVersion"], d["kind"]) for d in DOCS] == list(SCHEMAS)


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d["kind"])
def test_every_field_matches_the_crd(doc):
    assert problems(doc, SCHEMAS[(doc["apiVersion"], doc["kind"])]) == []


def test_validator_catches_unknown_fields_wrong_types_and_missing_required():
    bad = {"apiVersion": "ray.io/v1", "kind": "RayJob", "spec": {"entrypoint": 1, "clusterSelecter": {}}}
    assert problems(bad, SCHEMAS[("ray.io/v1", "RayJob")]) == [
        ".spec.entrypoint: expected string, got 1",
        ".spec.clusterSelecter: not in the CRD subset (add it from the CRD)",
    ]
    assert problems({"spec": {}}, RAY_CLUSTER_SPEC["fields"]["workerGroupSpecs"]["item"]) == [
        ".groupName: required",
        ".maxReplicas: required",
        ".minReplicas: required",
        ".template: required",
        ".spec: not in the CRD subset (add it from the CRD)",
    ]


def test_job_runs_on_the_cluster_as_kuberay_validates_it():
    # ray-operator/controllers/ray/utils/validation.go: ValidateRayJobSpec, ValidateRayClusterSpec.
    job, cluster = _doc("RayJob")["spec"], _doc("RayCluster")
    assert job["clusterSelector"] == {"ray.io/cluster": cluster["metadata"]["name"]}
    assert job.get("backoffLimit", 0) == 0, "BackoffLimit is incompatible with ClusterSelector mode"
    assert job["submissionMode"] == "K8sJobMode", "the submitter Job resubmits the entrypoint after a head restart"
    assert job["submitterConfig"]["backoffLimit"] >= 1
    version = tuple(int(p) for p in cluster["spec"]["rayVersion"].split("."))
    assert cluster["spec"]["authOptions"]["mode"] == "token" and version >= (2, 52, 0)


def test_entrypoint_is_a_sweep_with_resume_auto_on_s3():
    _, args, spec = _entrypoint()
    assert args.resume == "auto"
    assert spec.storage.startswith("s3://") and args.address is None  # Ray job sets RAY_ADDRESS


def test_gpu_workers_scale_from_zero_and_fit_the_trials():
    _, _, spec = _entrypoint()
    cluster = _doc("RayCluster")["spec"]
    assert cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0", "no trial on the head"
    (group,) = cluster["workerGroupSpecs"]
    assert group["minReplicas"] == 0 and group.get("replicas", 0) == 0 and group["maxReplicas"] >= 1
    (container,) = group["template"]["spec"]["containers"]
    res = container["resources"]
    assert res["requests"] == res["limits"], "extended resources (GPUs) need requests == limits"
    gpus, cpus = int(res["limits"]["nvidia.com/gpu"]), float(res["limits"]["cpu"])
    # With 0 pods at the start, the driver sizes trials by the RayCluster as Ray's KubeRay code
    # translates it for the autoscaler (sweeps.capacity): a GPU per trial, as many as the pods hold.
    sizing = capacity.size(spec, capacity.from_kuberay_config(_autoscaler_view(), "default/forecast-sweeps"))
    assert spec.gpus_per_trial is None and spec.max_concurrent is None, "sized by the cluster, not by flags"
    trials_per_pod = int(gpus // sizing.gpus_per_unit)
    assert sizing.gpus_per_unit == 1 and trials_per_pod * spec.cpus_per_trial * spec.parallel_units <= cpus
    assert sizing.concurrent == trials_per_pod * group["maxReplicas"]
    assert f"up to {group['maxReplicas']} × gpu {{CPU: 4, GPU: 1}}" in sizing.why


def _autoscaler_view() -> dict:
    """The RayCluster as KubeRay's autoscaler sidecar sees it (Ray's own translation)."""
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    cluster = _doc("RayCluster")
    return _derive_autoscaling_config_from_ray_cr(
        {**cluster, "metadata": {**cluster["metadata"], "namespace": "default"}}
    )


def test_no_public_ports_and_no_credentials():
    cluster = _doc("RayCluster")["spec"]
    assert cluster["headGroupSpec"].get("serviceType", "ClusterIP") == "ClusterIP"
    assert cluster["headGroupSpec"].get("enableIngress") is not True
    assert not any(d["kind"] in ("Service", "Ingress") for d in DOCS)
    text = (ROOT / "kuberay.yaml").read_text()
    assert not re.search(r"(?i)aws_(secret_)?access_key|AKIA[0-9A-Z]{12,}|secret_key\s*:|hostPort|hostNetwork", text)


def test_s3_access_comes_from_the_pods_identity():
    account = _doc("ServiceAccount")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    pods = _pods()
    assert all(p["serviceAccountName"] == account["metadata"]["name"] for p in pods)
    assert len({c["image"] for p in pods for c in p["containers"]}) == 1, "head and workers run one image"
    assert not any("env" in c for p in pods for c in p["containers"])
