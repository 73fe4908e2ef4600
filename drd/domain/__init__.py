"""Pure domain models and decisions: no I/O, no clock, no Ceph."""
