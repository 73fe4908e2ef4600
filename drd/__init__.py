"""drd: disaster-recovery orchestration for three-site Ceph city clouds."""

__version__ = "0.1.0"
