"""Tenant backups with restic: the restic adapter and the pure logic around it."""
