"""The scale-out examples in deploy/scale-out/ appended to the production template load against a
real PostgreSQL instance and construct their run launcher (Docker, Kubernetes). No Docker engine
or cluster is available to the tests, so launching a run elsewhere is not exercised here."""

import os

import pytest
from dagster import DagsterInstance

from tests.deploy.instance import DEPLOY

SCALE_OUT = DEPLOY / "scale-out"
TEMPLATE = DEPLOY / "dagster.postgres.yaml"
IMAGE = "registry.example.org/run-record-archiver:1.0"

FAKE_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: test
  user: {token: not-a-real-token}
contexts:
- name: test
  context: {cluster: test, user: test, namespace: run-record-archiver}
current-context: test
"""

pytestmark = pytest.mark.postgres


def _home_with(tmp_path, fragment: str, replace: dict = None):
    text = TEMPLATE.read_text() + "\n" + (SCALE_OUT / fragment).read_text()
    for old, new in (replace or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(text)
    return home


@pytest.fixture
def scale_out_env(postgres_server, postgres_db, monkeypatch):
    for key, value in postgres_server.env(postgres_db).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("ARCHIVER_RUN_IMAGE", IMAGE)


def test_every_scale_out_example_is_tested():
    assert sorted(p.name for p in SCALE_OUT.glob("*.yaml")) == [
        "docker.run_launcher.yaml", "k8s.run_launcher.yaml"]


def test_docker_run_launcher_loads(tmp_path, scale_out_env):
    pytest.importorskip("dagster_docker", reason="dagster-docker==0.29.27 is not installed")
    home = _home_with(tmp_path, "docker.run_launcher.yaml")
    with DagsterInstance.from_config(str(home)) as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "DockerRunLauncher"
        assert launcher.image == IMAGE
        assert launcher.networks == ["host"]
        assert "DAGSTER_PG_PASSWORD" in launcher.env_vars  # the name only, passed through
        assert launcher.container_kwargs["auto_remove"] is True
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert os.environ["DAGSTER_PG_PASSWORD"] not in (home / "dagster.yaml").read_text()


def test_k8s_run_launcher_loads(tmp_path, scale_out_env):
    pytest.importorskip("dagster_k8s", reason="dagster-k8s==0.29.27 is not installed")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(FAKE_KUBECONFIG)
    home = _home_with(tmp_path, "k8s.run_launcher.yaml",
                      {"/etc/run-record-archiver/kubeconfig": str(kubeconfig)})
    with DagsterInstance.from_config(str(home)) as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "K8sRunLauncher"
        assert launcher.job_image == IMAGE
        assert launcher.job_namespace == "run-record-archiver"
        assert launcher.service_account_name == "archiver-runs"
        assert launcher.instance_config_map == "archiver-dagster-instance"
        assert launcher.env_secrets == ["archiver-secrets"]
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"


def test_a_broken_launcher_config_is_rejected(tmp_path, scale_out_env):
    pytest.importorskip("dagster_docker", reason="dagster-docker==0.29.27 is not installed")
    home = _home_with(tmp_path, "docker.run_launcher.yaml",
                      {"    network: host\n": "    network: host\n    networks: [other]\n"})
    with pytest.raises(Exception, match="network"):
        with DagsterInstance.from_config(str(home)) as instance:
            instance.run_launcher  # noqa: B018  (constructing it validates the config)
