"""Tenant backups with restic: the scheduler, the jobs it runs, and the restic adapter."""
