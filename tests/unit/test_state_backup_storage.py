"""The state store's metering samples: stored bytes per tenant, kept in order."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drd.state import StateStore, schema

NOW = datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
REPO = "/srv/restic/water"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore.initialise(tmp_path / "state", "c") as store:
        yield store


def measure(store: StateStore, tenant: str, at: datetime, size: int) -> int:
    return store.record_stored_bytes(tenant, REPO, at, stored_bytes=size,
                                     uncompressed_bytes=size + 1, snapshots=size // 10).id


def test_the_latest_sample_of_each_tenant_is_read_back(store: StateStore) -> None:
    measure(store, "water", NOW, 100)
    measure(store, "transport", NOW, 70)
    latest_water = measure(store, "water", NOW + HOUR, 120)
    latest = store.latest_stored_bytes()
    assert [(r.tenant, r.stored_bytes) for r in latest] == [("transport", 70), ("water", 120)]
    (water,) = store.latest_stored_bytes("water")
    assert water.id == latest_water and water.measured_at == NOW + HOUR
    assert (water.repository, water.uncompressed_bytes, water.snapshots) == (REPO, 121, 12)
    assert store.latest_stored_bytes("sewage") == []


def test_a_tenants_samples_come_newest_first_and_since_a_time(store: StateStore) -> None:
    for hour in range(5):
        measure(store, "water", NOW + hour * HOUR, 100 + hour)
    assert [r.stored_bytes for r in store.stored_bytes_history("water", 3)] == [104, 103, 102]
    since = store.stored_bytes_history("water", 10, since=NOW + 3 * HOUR)
    assert [r.stored_bytes for r in since] == [104, 103]
    with pytest.raises(ValueError, match="limit must be at least 1"):
        store.stored_bytes_history("water", 0)


def test_a_sample_must_make_sense(store: StateStore) -> None:
    with pytest.raises(ValueError, match="stored_bytes cannot be negative"):
        store.record_stored_bytes("water", REPO, NOW, stored_bytes=-1, uncompressed_bytes=0,
                                  snapshots=0)
    with pytest.raises(ValueError, match="repository must not be empty"):
        store.record_stored_bytes("water", "", NOW, stored_bytes=1, uncompressed_bytes=1,
                                  snapshots=1)
    with pytest.raises(ValueError, match="has no timezone"):
        store.record_stored_bytes("water", REPO, NOW.replace(tzinfo=None), stored_bytes=1,
                                  uncompressed_bytes=1, snapshots=1)


def test_a_database_from_before_metering_gains_it_on_open_and_keeps_its_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as older_drd:
        older_drd.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:2])
        with StateStore.initialise(tmp_path / "state", "c") as old:
            drill = old.start_run("drill", "water", NOW)
    with StateStore.open(tmp_path / "state", "c") as store:
        assert store.get_run(drill.id) == drill
        measure(store, "water", NOW, 5)
        assert store.latest_stored_bytes("water")[0].stored_bytes == 5
