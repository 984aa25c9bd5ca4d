"""Reusable test tooling (no Dagster import): a fault-injecting loopback HTTP proxy for UconDB."""
