"""The Kubernetes code location: same assets, the k8s executor, GPU config on torch steps.

No cluster here: the executor config is validated by Dagster and turned into the Job
manifests it would create, which are checked instead.
"""

from types import SimpleNamespace

import dagster as dg
import pytest

pytest.importorskip("dagster_k8s", reason="the cluster extra: pip install -e '.[cluster]'")

from dagster_k8s.container_context import K8sContainerContext  # noqa: E402
from dagster_k8s.job import UserDefinedDagsterK8sConfig, construct_dagster_k8s_job  # noqa: E402

from dagster_defs import cluster_definitions as cluster  # noqa: E402
from dagster_defs.definitions import defs as local_defs  # noqa: E402

LAUNCHER = SimpleNamespace(  # what a K8sRunLauncher lends the step Jobs
    job_image=None,
    dagster_home="/opt/dagster/dagster_home",
    instance_config_map="dagster-instance",
    postgres_password_secret=None,
)


def executor_config(job_name: str = "ingest_all") -> dict:
    """The executor config Dagster resolves for a run of `job_name` (validated)."""
    job = cluster.defs.resolve_job_def(job_name)
    (config,) = dg.validate_run_config(job, {})["execution"].values()
    return config


def step_job(config: dict, op: str):
    """The Kubernetes Job the executor would create for a step of `op`."""
    context = K8sContainerContext(
        env_config_maps=config["env_config_maps"],
        env_secrets=config["env_secrets"],
        volumes=config["volumes"],
        volume_mounts=config["volume_mounts"],
        namespace=config["job_namespace"],
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(config["step_k8s_config"]),
    ).merge(
        K8sContainerContext(
            run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
                config["per_step_k8s_config"].get(op, {})
            )
        )
    )
    return construct_dagster_k8s_job(
        context.get_k8s_job_config("ghcr.io/example/guwm:1", LAUNCHER),
        args=["dagster", "api", "execute_step"],
        job_name=f"dagster-step-{op.replace('_', '-')}",
        user_defined_k8s_config=context.run_k8s_config,
    )


def test_cluster_location_has_the_same_assets_jobs_and_schedules():
    def keys(defs: dg.Definitions) -> set[dg.AssetKey]:
        return set(defs.resolve_asset_graph().get_all_asset_keys())

    assert keys(cluster.defs) == keys(local_defs)
    assert {j.name for j in cluster.defs.jobs} == {j.name for j in local_defs.jobs}
    assert {s.name for s in cluster.defs.schedules} == {s.name for s in local_defs.schedules}


def test_every_job_runs_on_the_configured_k8s_executor():
    for job in cluster.defs.jobs:
        assert cluster.defs.resolve_job_def(job.name).executor_def.name == "guwm_k8s"
    config = executor_config()
    assert config["job_namespace"] == "guwm"
    assert config["env_secrets"] == ["guwm-secrets"]
    assert config["env_config_maps"] == ["guwm-config"]
    assert config["max_concurrent"] == 4
    assert "job_image" not in config  # the code location's own image


def test_torch_steps_get_gpus_and_the_rest_do_not():
    config = executor_config()
    per_step = config["per_step_k8s_config"]
    assert {"world_model", "world_model_evaluation"} <= set(per_step)
    assert any(op.startswith("curriculum_") for op in per_step)
    assert not {"fred_observations", "canvas_tensors", "warehouse_parquet"} & set(per_step)

    gpu = step_job(config, "world_model").spec.template.spec
    (container,) = gpu.containers
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    assert container.resources.requests["cpu"] == "4"
    assert ("GUWM_DEVICE", "cuda") in [(e.name, e.value) for e in container.env]
    assert [t.key for t in gpu.tolerations] == ["nvidia.com/gpu"]
    assert {e.secret_ref.name for e in container.env_from if e.secret_ref} == {"guwm-secrets"}
    assert [m.mount_path for m in container.volume_mounts] == [cluster.MOUNT]

    (cpu,) = step_job(config, "fred_observations").spec.template.spec.containers
    assert cpu.resources.limits == cluster.STEP_RESOURCES["limits"]
    assert cpu.resources.requests == cluster.STEP_RESOURCES["requests"]


def test_settings_come_from_the_environment():
    config = cluster.executor_config(
        {
            "GUWM_K8S_IMAGE": "registry.example.com/guwm:2",
            "GUWM_K8S_NAMESPACE": "research",
            "GUWM_K8S_SECRET": "fred",
            "GUWM_K8S_GPUS": "2",
            "GUWM_K8S_MAX_CONCURRENT": "8",
        }
    )
    assert config["job_image"] == "registry.example.com/guwm:2"
    assert config["job_namespace"] == "research"
    assert config["env_secrets"] == ["fred"]
    assert config["max_concurrent"] == 8
    limits = config["per_step_k8s_config"]["world_model"]["container_config"]["resources"]
    assert limits["limits"]["nvidia.com/gpu"] == "2"
