"""Adapters for Ceph: the only modules that import `rados` and `rbd`."""
