"""`radosgw-admin sync status` text, as Pacific prints it, reduced to verdicts."""

from drd.domain.rgw_sync_status import parse_sync_status

SECONDARY = """\
          realm 34447dae-3f7f-49b3-81f4-13f5914e4fcf (drd-lab)
      zonegroup 45472b00-2359-4d9a-911b-b25298773823 (city)
           zone 47f2a963-ce15-4ed9-9c12-9186324569ba (b)
  metadata sync syncing
                full sync: 0/16 shards
                incremental sync: 16/16 shards
                metadata is caught up with master
      data sync source: 4a7b8be8-2bdb-4b33-a505-267bdd0725d9 (c)
                        syncing
                        full sync: 0/16 shards
                        incremental sync: 16/16 shards
                        data is caught up with source
                source: ad5e1989-0a74-48fd-957d-2f2986a28c57 (a)
                        syncing
                        full sync: 0/16 shards
                        incremental sync: 16/16 shards
                        data is behind on 2 shards
                        behind shards: [3,9]
                        oldest incremental change not applied: 2026-11-22T01:50:35.805+0000 [3]
"""

MASTER = """\
          realm 34447dae-3f7f-49b3-81f4-13f5914e4fcf (drd-lab)
      zonegroup 45472b00-2359-4d9a-911b-b25298773823 (city)
           zone ad5e1989-0a74-48fd-957d-2f2986a28c57 (a)
  metadata sync no sync (zone is master)
      data sync source: 47f2a963-ce15-4ed9-9c12-9186324569ba (b)
                        syncing
                        full sync: 0/16 shards
                        incremental sync: 16/16 shards
                        data is caught up with source
"""


def test_a_secondary_reports_metadata_and_each_source_zone_with_its_backlog() -> None:
    sources = {s.source: s for s in parse_sync_status(SECONDARY)}

    assert set(sources) == {"metadata", "a", "c"}
    assert sources["metadata"].caught_up and sources["c"].caught_up
    behind = sources["a"]
    assert not behind.caught_up
    assert behind.behind_shards == 2
    assert behind.oldest_change == "2026-11-22T01:50:35.805+0000"
    assert behind.summary() == ("a: data is behind on 2 shards, "
                                "oldest change 2026-11-22T01:50:35.805+0000")


def test_the_master_zone_syncs_no_metadata_and_says_so() -> None:
    sources = {s.source: s for s in parse_sync_status(MASTER)}

    assert sources["metadata"].caught_up
    assert sources["metadata"].detail == "this zone is the metadata master"
    assert sources["b"].summary() == "b: caught up"


def test_text_without_verdicts_is_never_read_as_caught_up() -> None:
    sources = parse_sync_status("  metadata sync syncing\n      data sync source: x (a)\n")

    assert [(s.source, s.caught_up) for s in sources] == [("metadata", False), ("a", False)]


# Zone b with zone a's gateway killed: Ceph cannot ask the master, and says so.
MASTER_UNREACHABLE = """\
          realm a7137928-47a5-41c9-8855-4087ee3ae9f0 (drd-lab)
      zonegroup 29dd766a-ca08-4f83-99b2-6a986b864935 (city)
           zone 981ddf3b-e302-4c47-81b3-05ad48675322 (b)
  metadata sync syncing
                full sync: 0/16 shards
                failed to fetch master sync status: (5) Input/output error
      data sync source: 90aa7afa-493f-4802-8547-dc4f6ab7b5a6 (c)
                        syncing
                        full sync: 0/16 shards
                        incremental sync: 16/16 shards
                        data is caught up with source
                source: f14beaf8-5e90-40ed-959d-104968557db4 (a)
                        failed to retrieve sync info: (5) Input/output error
"""


def test_an_unreachable_peer_is_reported_in_cephs_words_and_never_as_caught_up() -> None:
    sources = {s.source: s for s in parse_sync_status(MASTER_UNREACHABLE)}

    assert not sources["metadata"].caught_up
    assert sources["metadata"].summary() == (
        "metadata: failed to fetch master sync status: (5) Input/output error")
    assert not sources["a"].caught_up
    assert sources["a"].detail == "failed to retrieve sync info: (5) Input/output error"
    assert sources["c"].caught_up
