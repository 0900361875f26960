"""The guwm code location on Kubernetes: the same assets, every step a Kubernetes Job.

    pip install -e '.[cluster]'                       # dagster-k8s
    dagster definitions validate -m dagster_defs.cluster_definitions

Point the Dagster Helm chart's user deployment at this module
(`dagsterApiGrpcArgs: ["-m", "dagster_defs.cluster_definitions"]`) with the image built
from this repository; runs are launched by the chart's K8sRunLauncher and each step runs
in its own pod through `k8s_job_executor`. Set on the code location's deployment:

    GUWM_K8S_IMAGE           step image (default: the code location's own image)
    GUWM_K8S_NAMESPACE       namespace of the step Jobs (default: guwm)
    GUWM_K8S_CONFIG_MAP      ConfigMap of GUWM_* settings for every step (default: guwm-config)
    GUWM_K8S_SECRET          Secret of FRED_API_KEY (and GUWM_LLM_API_KEY) for every step
                             (default: guwm-secrets)
    GUWM_K8S_VOLUME          PersistentVolumeClaim mounted at /data (default: guwm-data); put
                             GUWM_WAREHOUSE=/data/warehouse.duckdb and GUWM_ARTIFACTS=
                             /data/artifacts in the ConfigMap, or share a Parquet lake instead
                             (canvas config `lake_url`)
    GUWM_K8S_GPUS            GPUs per torch step (default: 1)
    GUWM_K8S_MAX_CONCURRENT  pods at once per run (default: 4)

Give the deployment the same ConfigMap and Secret: resources read them when the code is
loaded. Every asset of kind `pytorch` (the world model, its evaluation, the curriculum)
asks for GPUs and gets GUWM_DEVICE=cuda; other steps ask for 1 CPU and 2 GiB.
"""

import os
from collections.abc import Mapping

import dagster as dg
from dagster_k8s import k8s_job_executor

from dagster_defs import definitions as local

MOUNT = "/data"
STEP_RESOURCES = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}


def gpu_step_config(gpus: int) -> dict[str, object]:
    """Kubernetes config of a torch step: GPUs, more CPU and memory, GPU-node toleration."""
    return {
        "container_config": {
            "resources": {
                "requests": {"cpu": "4", "memory": "16Gi"},
                "limits": {"memory": "32Gi", "nvidia.com/gpu": str(gpus)},
            },
            "env": [{"name": "GUWM_DEVICE", "value": "cuda"}],
        },
        "pod_spec_config": {
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        },
    }


def torch_ops(definitions: dg.Definitions) -> list[str]:
    """Op names of the assets of kind `pytorch`: the steps that train or evaluate."""
    return sorted(
        asset.op.name
        for asset in definitions.assets or []
        if isinstance(asset, dg.AssetsDefinition)
        and any("pytorch" in spec.kinds for spec in asset.specs)
    )


def executor_config(
    env: Mapping[str, str] = os.environ, *, definitions: dg.Definitions = local.defs
) -> dict[str, object]:
    """The `k8s_job_executor` configuration, from `GUWM_K8S_*` settings in `env`."""
    volume = env.get("GUWM_K8S_VOLUME", "guwm-data")
    gpu = gpu_step_config(int(env.get("GUWM_K8S_GPUS", "1")))
    config: dict[str, object] = {
        "job_namespace": env.get("GUWM_K8S_NAMESPACE", "guwm"),
        "env_config_maps": [env.get("GUWM_K8S_CONFIG_MAP", "guwm-config")],
        "env_secrets": [env.get("GUWM_K8S_SECRET", "guwm-secrets")],
        "volumes": [{"name": "data", "persistent_volume_claim": {"claim_name": volume}}],
        "volume_mounts": [{"name": "data", "mount_path": MOUNT}],
        "max_concurrent": int(env.get("GUWM_K8S_MAX_CONCURRENT", "4")),
        "step_k8s_config": {"container_config": {"resources": STEP_RESOURCES}},
        "per_step_k8s_config": {op: gpu for op in torch_ops(definitions)},
    }
    if env.get("GUWM_K8S_IMAGE"):
        config["job_image"] = env["GUWM_K8S_IMAGE"]
    return config


defs = dg.Definitions.merge(
    local.defs,
    dg.Definitions(executor=k8s_job_executor.configured(executor_config(), name="guwm_k8s")),
)
