"""A real multi-site Ceph deployment on one machine, for demos, tests, chaos and benchmarks."""
