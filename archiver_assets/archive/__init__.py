"""The archive domain: run partitions, the two archive assets, their checks, sensor and jobs."""
