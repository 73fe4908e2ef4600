"""`radosgw-admin sync status` text, as Pacific prints it, reduced to verdicts."""

from drd.domain.rgw_sync_status import parse_bucket_sync_status, parse_sync_status

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


BUCKET_ON_B = """\
          realm 57c2d655-825f-48a2-b2df-069e8cb11585 (drd-lab)
      zonegroup b933853a-e334-4324-a453-94b989bfeb84 (city)
           zone 3b926bca-905e-484a-a4ad-72cfd11d484d (b)
         bucket :probe1[5f00be33-ebc6-4c0c-9d95-e64d86331f9f.4194.1])

    source zone 00d00238-e673-4832-9ff9-0b7029d27645 (c)
  source bucket probe1:5f00be33-ebc6-4c0c-9d95-e64d86331f9f.4194.1
                full sync: 0/11 shards
                incremental sync: 1/11 shards
                bucket is caught up with source
    source zone 5f00be33-ebc6-4c0c-9d95-e64d86331f9f (a)
  source bucket probe1:5f00be33-ebc6-4c0c-9d95-e64d86331f9f.4194.1
                full sync: 2/11 shards
                full sync: 0 objects completed
                incremental sync: 1/11 shards
                bucket is behind on 4 shards
                behind shards: [1,4,6,10]
"""


def test_bucket_sync_status_gives_one_verdict_per_source_zone() -> None:
    sources = {s.source: s for s in parse_bucket_sync_status(BUCKET_ON_B)}

    assert set(sources) == {"a", "c"}
    assert sources["c"].summary() == "c: caught up"
    assert not sources["a"].caught_up
    assert sources["a"].behind_shards == 4
    assert sources["a"].summary() == "a: bucket is behind on 4 shards"


def test_bucket_sync_status_without_a_verdict_is_never_read_as_caught_up() -> None:
    text = "    source zone 5f00 (a)\n  source bucket probe1:5f00.4194.1\n"

    assert [(s.source, s.caught_up) for s in parse_bucket_sync_status(text)] == [("a", False)]
