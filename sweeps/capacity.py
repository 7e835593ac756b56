"""What the cluster can grow to, and the trial sizes and concurrency that follow from it.

An autoscaling cluster starts small (cluster.yaml's GPU workers start at 0), so `ray.cluster_resources()`
at the start says nothing about the GPUs the sweep will get. The autoscaler's node types and their
maximum counts do; they are read, in this order, from
1. Ray's cluster config in the GCS (`ray._private.state`: what autoscalers report for libraries;
   Ray Train and Ray Data read it; Ray 2.60's own autoscalers do not report it yet),
2. the local autoscaler's config file (the `--autoscaling-config` of the monitor process of the
   cluster this driver is connected to: `ray up` heads, where `ray job submit` runs the driver),
3. the RayCluster resource on KubeRay (read as KubeRay's autoscaler sidecar reads it, with the head
   pod's service account, which KubeRay lets read its RayCluster for that sidecar),
and otherwise the nodes that are up now. `--gpus-per-trial` / `--max-concurrent` always win.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

UNBOUNDED = 1_000_000  # a node type without a maximum count
MAX_TRIALS_AT_ONCE = 256  # what "as many as fit" means on an unbounded cluster


@dataclass(frozen=True)
class NodeGroup:
    name: str
    resources: dict[str, float]
    max_count: int


@dataclass(frozen=True)
class Capacity:
    """The node groups the cluster can have at most (the head a group of one), and where that was read."""

    groups: tuple[NodeGroup, ...]
    source: str
    max_workers: int | None = None  # a cap on the groups' total count, the head's excluded
    head: str | None = None  # the head's group, outside max_workers
    autoscaling: bool = True

    def _most(self, per_node) -> float:
        """The most of `per_node(group)` summed over nodes, each group at most its count and the
        workers at most max_workers (greedy by value is optimal: every node costs one)."""
        total, left = 0.0, UNBOUNDED if self.max_workers is None else self.max_workers
        for g in sorted(self.groups, key=per_node, reverse=True):
            if g.name == self.head:
                total += per_node(g) * min(g.max_count, 1)
                continue
            n = min(g.max_count, left)
            total, left = total + per_node(g) * n, left - n
        return total

    def known(self) -> bool:
        """Whether every group declares its CPUs or GPUs (an empty `resources: {}` leaves Ray to detect them)."""
        return all("CPU" in g.resources or "GPU" in g.resources for g in self.groups)

    def total(self, resource: str) -> float:
        return self._most(lambda g: g.resources.get(resource, 0.0))

    def fits(self, unit: dict[str, float]) -> int:
        """How many `unit` bundles the fully grown cluster holds at once (node by node)."""
        need = {k: v for k, v in unit.items() if v > 0}
        return int(self._most(lambda g: min((g.resources.get(k, 0.0) // v for k, v in need.items()), default=0)))

    def describe(self) -> str:
        parts = []
        for g in self.groups:
            shown = {k: f"{v:g}" for k, v in g.resources.items() if k in ("CPU", "GPU")}
            what = "{" + ", ".join(f"{k}: {v}" for k, v in sorted(shown.items())) + "}"
            count = "any number of" if g.max_count >= UNBOUNDED else f"{g.max_count} ×"
            if self.autoscaling and g.name != self.head:
                count = f"up to {count}"
            parts.append(f"{g.name} {what}" if g.name == self.head else f"{count} {g.name} {what}")
        cap = f", at most {self.max_workers} workers" if self.max_workers is not None and self.autoscaling else ""
        return f"{self.source}: {' + '.join(parts)}{cap}"


@dataclass(frozen=True)
class Sizing:
    gpus_per_unit: float
    concurrent: int
    why: str  # where the two numbers came from, for the sweep's header


def size(spec, capacity: Capacity) -> Sizing:
    """GPUs per unit and trials at once for `spec` (a SweepSpec) on `capacity`; the flags win."""
    gpus = spec.gpus_per_trial
    if gpus is None:
        gpus = 1.0 if capacity.total("GPU") > 0 else 0.0
    unit = {"CPU": spec.cpus_per_trial, "GPU": gpus}
    if spec.max_concurrent:
        concurrent = spec.max_concurrent
    else:
        concurrent = max(1, min(capacity.fits(unit) // spec.parallel_units, MAX_TRIALS_AT_ONCE))
    given = [
        f
        for f, v in (("--gpus-per-trial", spec.gpus_per_trial is not None), ("--max-concurrent", spec.max_concurrent))
        if v
    ]
    why = " and ".join(given) + " as given" if given else ""
    if len(given) < 2:
        why = "; ".join(x for x in (why, capacity.describe()) if x)
    return Sizing(gpus, concurrent, why)


def from_autoscaler_config(config: dict, source: str) -> Capacity:
    """From an autoscaler config (cluster.yaml's format: available_node_types with max_workers)."""
    types = config.get("available_node_types") or {}
    default = config.get("max_workers")
    head = config.get("head_node_type")
    groups = []
    for name, node in types.items():
        count = 1 if name == head else node.get("max_workers", default)
        resources = {k: float(v) for k, v in (node.get("resources") or {}).items()}
        groups.append(NodeGroup(name, resources, UNBOUNDED if count is None else int(count)))
    return Capacity(tuple(groups), source, default, head)


def from_cluster_config(config, source: str = "Ray's cluster config") -> Capacity | None:
    """From Ray's ClusterConfig (autoscaler.proto): node groups with max_count (-1: no limit)."""
    if config is None or not config.node_group_configs:
        return None
    groups = tuple(
        NodeGroup(g.name, {k: float(v) for k, v in g.resources.items()}, UNBOUNDED if g.max_count < 0 else g.max_count)
        for g in config.node_group_configs
    )
    capped = dict(config.max_resources)
    capacity = Capacity(groups, source)
    if not capped:
        return capacity
    # A cluster-wide maximum of a resource caps its groups: keep each group's share under it.
    return _capped(capacity, capped)


def _capped(capacity: Capacity, caps: dict[str, float]) -> Capacity:
    groups = []
    for g in capacity.groups:
        count = g.max_count
        for k, cap in caps.items():
            if g.resources.get(k, 0) > 0:
                count = min(count, int(cap // g.resources[k]))
        groups.append(NodeGroup(g.name, g.resources, count))
    return Capacity(tuple(groups), capacity.source, capacity.max_workers, capacity.head)


def from_nodes(nodes: list[dict], why: str = "no autoscaler seen") -> Capacity:
    """The nodes up now (`ray.nodes()`), grouped by their CPUs and GPUs."""
    shapes: dict[tuple, list[dict]] = {}
    for n in nodes:
        if n.get("Alive"):
            r = n.get("Resources", {})
            shapes.setdefault((r.get("CPU", 0.0), r.get("GPU", 0.0)), []).append(dict(r))
    groups = tuple(NodeGroup("node", same[0], len(same)) for same in shapes.values())
    alive = sum(len(same) for same in shapes.values())
    return Capacity(groups, f"the cluster now ({alive} node{'s' * (alive != 1)}, {why})", autoscaling=False)


def discover() -> Capacity:
    """The connected cluster's capacity, from the first source that has it (module docstring)."""
    import ray

    for read in (_reported, _local_autoscaler, _kuberay):
        found = read()
        if found is not None and found.groups:
            if not found.known():  # e.g. the on-prem provider: its machines' resources are detected, not declared
                now = from_nodes(ray.nodes())
                return Capacity(
                    now.groups, f"{now.source[:-1]}; {found.source} declares no resources)", autoscaling=False
                )
            return found
    return from_nodes(ray.nodes())


def _reported() -> Capacity | None:
    try:
        from ray._private.state import state

        return from_cluster_config(state.get_cluster_config())
    except Exception:  # a private API: gone or changed in another Ray version means "not reported"
        return None


def _local_autoscaler() -> Capacity | None:
    """The config file of the autoscaler (monitor process) of the cluster this driver is connected to."""
    import psutil
    import ray
    import yaml

    port = ray.get_runtime_context().gcs_address.rsplit(":", 1)[-1]
    for proc in psutil.process_iter(["cmdline"]):
        args = proc.info.get("cmdline") or []
        if not any(a.endswith("monitor.py") and "autoscaler" in a for a in args):
            continue
        flags = dict(a[2:].split("=", 1) for a in args if a.startswith("--") and "=" in a)
        path = flags.get("autoscaling-config")
        if not path or flags.get("gcs-address", "").rsplit(":", 1)[-1] != port:
            continue
        path = os.path.expanduser(path)
        try:
            with open(path) as f:
                return from_autoscaler_config(yaml.safe_load(f), f"the autoscaler's config ({path})")
        except (OSError, yaml.YAMLError):
            return None
    return None


SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def _kuberay() -> Capacity | None:
    """The RayCluster this pod belongs to (KubeRay sets RAY_CLUSTER_NAME on every Ray container),
    translated by Ray's own KubeRay code, as its autoscaler sidecar does."""
    name = os.environ.get("RAY_CLUSTER_NAME")
    if not name or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        return None
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE) as f:
            namespace = f.read().strip()
        from ray.autoscaler._private.kuberay.autoscaling_config import AutoscalingConfigProducer

        config = AutoscalingConfigProducer(name, namespace)()
    except Exception as exc:  # no permission, API unreachable: fall back to the nodes up now
        print(f"note: could not read RayCluster {name} ({type(exc).__name__}); sizing trials by the nodes up now")
        return None
    return from_kuberay_config(config, f"{namespace}/{name}")


def from_kuberay_config(config: dict, cluster: str) -> Capacity:
    """From Ray's translation of a RayCluster (`_derive_autoscaling_config_from_ray_cr`)."""
    return from_autoscaler_config(config, f"RayCluster {cluster}")
