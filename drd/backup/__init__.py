"""Tenant backups with restic: the restic adapter, the scheduler and the jobs it runs."""
