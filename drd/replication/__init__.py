"""Block replication: reconcile tenant policies into RBD mirroring, schedule mirror
snapshots, measure RPO."""
