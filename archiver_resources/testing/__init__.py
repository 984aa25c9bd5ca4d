"""Reusable test tooling, shared by tests/ and bench/ (no Dagster import): a fault-injecting
loopback HTTP proxy for UconDB (``faultproxy``), a legacy-format config.yaml for throw-away
stores (``legacy_config``), a private Docker engine (``docker_engine``) and a throw-away
PostgreSQL server (``postgres``) for the deployment tests and benchmarks."""
