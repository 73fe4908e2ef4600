"""Turn the replication service's state into the views the API and CLI show."""

from drd.domain.protection import destination_site
from drd.domain.rpo import RpoState
from drd.replication.bucket_sync import BucketSyncService
from drd.replication.service import ReplicationService
from drd.replication.views import (
    BucketLagRow,
    DestinationView,
    ImageView,
    RpoReport,
    RpoRow,
    TenantProtection,
)

# rbd-mirror states that mean an image is not being protected right now.
TROUBLE_STATES = ("error", "stopped", "unknown")


def image_views(service: ReplicationService, tenant: str | None = None) -> list[ImageView]:
    report = service.state.report
    if report is None:
        return []
    views = []
    for protected in report.protected:
        selection = protected.selection
        spec = service.spec_of(protected)
        if spec is None or (tenant is not None and selection.tenant != tenant):
            continue
        destinations = []
        for target in spec.targets:
            site = destination_site(target.destination, service.own_kind, service.peers)
            measurement = service.state.measurements.get((protected.image_id,
                                                          target.destination))
            reading = measurement.reading if measurement else None
            peer = measurement.peer if measurement else None
            destinations.append(DestinationView(
                destination=target.destination.value, site=site,
                rpo_target_seconds=target.rpo_target.total_seconds(),
                rpo_seconds=(reading.measured.total_seconds()
                             if reading and reading.measured is not None else None),
                rpo_state=(measurement.state if measurement else RpoState.UNKNOWN).value,
                data_as_of=reading.data_as_of if reading else None,
                detail=reading.detail if reading else "not measured yet",
                peer_state=peer.state if peer else "unknown",
                peer_description=peer.description if peer else ""))
        views.append(ImageView(
            image=str(protected.ref), tenant=selection.tenant, selection=selection.name,
            mode=selection.mode.value, primary=True,
            last_snapshot_at=service.state.last_snapshot.get(protected.image_id),
            destinations=destinations))
    return views


def _problem(image: ImageView, destination: DestinationView) -> str | None:
    if destination.site is None:
        return None
    where = f"{image.image} at {destination.destination} ({destination.site})"
    if "split-brain" in destination.peer_description or destination.detail.startswith(
            "split-brain"):
        # Never resync on our own: which side wins is an operator's decision.
        evidence = (destination.detail if destination.detail.startswith("split-brain")
                    else f"split-brain; compare the newest snapshots on both sites "
                         f"(`rbd snap ls --all {image.image}`)")
        return (f"{where}: {evidence}. drd does not resync by itself; to make "
                f"{destination.site} follow this site, run on {destination.site}: "
                f"`rbd mirror image resync {image.image}`")
    if destination.peer_state in TROUBLE_STATES:
        return f"{where}: {destination.peer_state}: {destination.peer_description}"
    return None


def bucket_rows(objects: BucketSyncService | None,
                tenant: str | None = None) -> list[BucketLagRow]:
    if objects is None:
        return []
    return [BucketLagRow(
        tenant=m.tenant, selection=m.selection, bucket=m.bucket,
        destination=m.destination.value, site=m.site,
        lag_target_seconds=m.lag_target.total_seconds(),
        lag_seconds=m.lag.measured.total_seconds() if m.lag.measured is not None else None,
        lag_state=m.state.value, data_as_of=m.lag.data_as_of,
        behind_shards=list(m.lag.behind), stuck_shards=list(m.stuck), detail=m.lag.detail,
        repair=m.repair)
        for _, m in sorted(objects.state.measurements.items())
        if tenant is None or m.tenant == tenant]


def _bucket_problem(row: BucketLagRow) -> str | None:
    if not row.stuck_shards:
        return None
    return (f"bucket {row.bucket} at {row.destination} ({row.site}): sync stuck on "
            f"shard(s) {','.join(map(str, row.stuck_shards))}; repair: `{row.repair}`")


def tenant_protection(service: ReplicationService, tenant: str,
                      objects: BucketSyncService | None = None) -> TenantProtection:
    images = image_views(service, tenant)
    problems = [problem for image in images for d in image.destinations
                if (problem := _problem(image, d)) is not None]
    report = service.state.report
    if report is not None:
        problems += [f"{o.action.ref}: {o.error}" for o in report.failed
                     if o.action.tenant == tenant]
    buckets = bucket_rows(objects, tenant)
    problems += [problem for row in buckets if (problem := _bucket_problem(row)) is not None]
    return TenantProtection(tenant=tenant, images=images, buckets=buckets,
                            object_sync=objects.state.role if objects else "no RGW zone "
                            "configured on this site", problems=problems)


def rpo_report(service: ReplicationService, tenant: str | None = None,
               objects: BucketSyncService | None = None) -> RpoReport:
    rows = [
        RpoRow(tenant=image.tenant, image=image.image, destination=d.destination,
               site=d.site, rpo_target_seconds=d.rpo_target_seconds,
               rpo_seconds=d.rpo_seconds, rpo_state=d.rpo_state, data_as_of=d.data_as_of,
               detail=d.detail)
        for image in image_views(service, tenant) for d in image.destinations
    ]
    buckets = bucket_rows(objects, tenant)
    states = [r.rpo_state for r in rows] + [b.lag_state for b in buckets]
    return RpoReport(rows=rows, buckets=buckets,
                     breaches=states.count(RpoState.BREACH.value),
                     warnings=states.count(RpoState.WARN.value))
