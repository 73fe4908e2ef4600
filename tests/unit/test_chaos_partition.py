"""Partition rules name each site's group and the other site's address, both ways, in a
table of the lab's own; lab cgroups are found from the mount table."""

from pathlib import Path

import pytest

from drd.chaos.experiment import load_experiments
from drd.chaos.partition import Sender, render_ruleset
from drd.config.yaml_document import ConfigError
from drd.lab.site_cgroups import cgroup2_mount, joining_argv, site_group

HYBRID = """cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nsdelegate 0 0
"""


def sender(site: str, octet: int) -> Sender:
    group = site_group(Path("/sys/fs/cgroup/unified"), 64, site)
    assert group is not None
    return Sender(site, group, f"127.64.{octet}.1")


def test_a_cut_drops_both_directions_and_nothing_else() -> None:
    senders = {"a": sender("a", 1), "b": sender("b", 2), "c": sender("c", 3)}
    script = render_ruleset(64, senders, [("a", "b")])
    rules = [line.strip() for line in script.splitlines() if "drop" in line]
    assert rules == [
        'socket cgroupv2 level 2 "unified/drd-lab-64/a" ip daddr 127.64.2.1 drop',
        'socket cgroupv2 level 2 "unified/drd-lab-64/b" ip daddr 127.64.1.1 drop',
    ]
    assert script.startswith("table inet drd_chaos_64\ndelete table inet drd_chaos_64\n")


def test_no_cut_leaves_an_empty_table() -> None:
    senders = {"a": sender("a", 1), "b": sender("b", 2)}
    assert "drop" not in render_ruleset(64, senders, [])


def test_the_cgroup2_mount_is_found_in_a_hybrid_hierarchy() -> None:
    mount = cgroup2_mount(HYBRID)
    assert mount == Path("/sys/fs/cgroup/unified")
    assert cgroup2_mount("cgroup /sys/fs/cgroup/memory cgroup rw 0 0\n") is None
    group = site_group(mount, 7, "b")
    assert group is not None
    assert (group.directory, group.nft_path, group.level) == (
        Path("/sys/fs/cgroup/unified/drd-lab-7/b"), "unified/drd-lab-7/b", 2)
    assert site_group(Path("/mnt/cg2"), 7, "b") is None  # nftables could not name it


def test_a_daemon_joins_its_group_and_keeps_its_argv() -> None:
    argv = joining_argv(Path("/sys/fs/cgroup/drd-lab-1/a"), ["ceph-mon", "-f"])
    assert argv[-2:] == ["ceph-mon", "-f"]
    assert "/sys/fs/cgroup/drd-lab-1/a/cgroup.procs" in argv
    assert joining_argv(None, ["ceph-mon"]) == ["ceph-mon"]


def test_the_shipped_experiments_are_valid_and_cover_the_seven_faults() -> None:
    experiments = load_experiments(Path(__file__).resolve().parents[2] / "chaos")
    kinds = {e.fault.kind for e in experiments.values()}
    assert kinds == {"kill_site", "kill_drd", "partition", "freeze", "kill_during_takeover",
                     "flap"}
    assert len(experiments) >= 7
    assert any(e.smoke for e in experiments.values())


def test_a_bad_experiment_is_refused_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "cut.yaml").write_text(
        "name: cut\ndescription: x\nfault:\n  kind: partition\n  cut: [[a, a]]\n"
        "expect: {takeover: false}\n")
    (tmp_path / "odd.yaml").write_text(
        "name: odd\ndescription: x\nfault: {kind: partition, cut: [[a, d]]}\n"
        "expect: {takeover: no}\n")
    with pytest.raises(ConfigError) as caught:
        load_experiments(tmp_path)
    text = str(caught.value)
    assert "cut.yaml" in text and "itself" in text
    assert "odd.yaml" in text and ":3" in text
