"""What an operator is told about an image whose mirroring is in trouble."""

from drd.replication.reporting import _problem
from drd.replication.views import DestinationView, ImageView


def view(state: str, description: str, site: str | None = "b") -> tuple[ImageView,
                                                                         DestinationView]:
    destination = DestinationView(
        destination="same_city", site=site, rpo_target_seconds=5, rpo_seconds=None,
        rpo_state="UNKNOWN", data_as_of=None, detail="", peer_state=state,
        peer_description=description)
    image = ImageView(image="rbd/water/db-1", tenant="water", selection="databases",
                      mode="journal", primary=True, last_snapshot_at=None,
                      destinations=[destination])
    return image, destination


def test_split_brain_names_the_resync_command_and_never_runs_it() -> None:
    problem = _problem(*view("error", "split-brain detected"))
    assert problem is not None
    assert "split-brain; compare the newest snapshots on both sites" in problem
    assert "drd does not resync by itself" in problem
    assert "run on b: `rbd mirror image resync rbd/water/db-1`" in problem


def test_a_stopped_or_failing_replay_is_reported_as_rbd_mirror_says() -> None:
    assert _problem(*view("error", "failed to bootstrap")) == \
        "rbd/water/db-1 at same_city (b): error: failed to bootstrap"
    assert _problem(*view("replaying", "replaying, {}")) is None
    assert _problem(*view("error", "whatever", site=None)) is None
