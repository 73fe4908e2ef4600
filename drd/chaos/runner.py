"""One run of a chaos experiment on a lab, from the first write to the JSON result.

The order: the load writes and the watch samples for a few seconds; the fault is injected
and held; where a takeover is expected, the run waits for it to end; the fault is healed;
the run waits for the lab to converge (one primary for every image, the lease agreed, a
fenced old primary where there was a takeover); the load stops, every acknowledged write
is read back from the primary, and, when asked, a failback proves the state healable.
"""

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drd.api.client import ApiTarget, get_json
from drd.api.tokens import read_secret_file
from drd.chaos.experiment import Experiment, LostWrites
from drd.chaos.faults import FaultInjector
from drd.chaos.invariants import Sample, Verdict, first_primary, judge, lost_writes
from drd.chaos.lab_access import LabAccess
from drd.chaos.primary_watch import PrimaryWatch, wait_for
from drd.chaos.setup import GROUP, NAMESPACE, RPO_TARGET_SECONDS, TENANT, image_names, prepare
from drd.chaos.write_load import WriteLoad, read_back

WARM_UP_SECONDS = 5.0
TAKEOVER_END_TIMEOUT = 240.0
FAILBACK_TIMEOUT = 600.0
Note = Callable[[str], None]


@dataclass(frozen=True)
class RunSettings:
    images: int = 4
    rate: float = 20.0  # writes per second, over all images
    converge_timeout: float = 240.0
    failback: bool = True  # after a takeover, fail back to prove the state healable


class ChaosRun:
    def __init__(self, experiment: Experiment, access: LabAccess, settings: RunSettings,
                 note: Note) -> None:
        self.experiment = experiment
        self._access = access
        self._settings = settings
        self._started = time.monotonic()
        self._events: list[dict[str, Any]] = []
        self._note_out = note
        self._images = image_names(settings.images)

    def clock(self) -> float:
        return round(time.monotonic() - self._started, 3)

    def note(self, what: str) -> None:
        self._events.append({"at": self.clock(), "what": what})
        self._note_out(f"[{self.clock():7.1f} s] {what}")

    def run(self) -> dict[str, Any]:
        experiment, access = self.experiment, self._access
        prepare(access, self._images)
        self.note("images replicating and the lease held by a")
        sites = [access.lab.sites[name] for name in ("a", "b", "c")]
        run_id = secrets.token_hex(4)
        watch = PrimaryWatch(sites, NAMESPACE, self._images, self.clock)
        load = WriteLoad(run_id, sites[:2], NAMESPACE, self._images, self.clock,
                         rate=self._settings.rate)
        injector = FaultInjector(experiment.fault, access, self.note)
        watch.start()
        load.start()
        try:
            time.sleep(WARM_UP_SECONDS)
            before = self._access.leases("b").get(GROUP, {}).get("takeover", {})
            fault_at, fault_wall = self.clock(), datetime.now(UTC)
            injector.inject()
            injector.hold()
            if experiment.expect.takeover:
                self._wait_takeover_ended(before)
            injector.heal()
            healed_at = self.clock()
            converged, detail, owner = self._converge(watch, healed_at)
            time.sleep(2.0)  # writes on the converged primary, read back below
        finally:
            load.stop()
            watch.stop()
        samples = watch.samples
        took_over = first_primary(samples, "b", fault_at) is not None
        final = owner or ("b" if took_over else "a")
        found = read_back(access.lab.sites[final], NAMESPACE, load.writes)
        self.note(f"read {len(found)} written blocks back from {final}")
        allowed = (None if experiment.expect.lost_writes is LostWrites.NONE
                   else float(RPO_TARGET_SECONDS))
        figures = self._figures(samples, load, found=found, fault_at=fault_at,
                                fault_wall=fault_wall, took_over=took_over)
        # When the lease moved; a takeover resumed by a restarted daemon no longer knows,
        # and then the moment b was first seen primary stands in (later, so stricter on
        # a's writes and laxer on b's by the promotion time alone).
        handed_over_at = (fault_at + figures["promised_at_seconds"]
                          if "promised_at_seconds" in figures
                          else first_primary(samples, "b", fault_at))
        verdicts = judge(samples=samples, writes=load.writes, found=found,
                         handed_over_at=handed_over_at,
                         expect_takeover=experiment.expect.takeover, took_over=took_over,
                         lost_allowed_seconds=allowed, converged=converged,
                         converge_detail=detail)
        result: dict[str, Any] = {
            "experiment": experiment.name, "fault": experiment.fault.model_dump(mode="json"),
            "started": fault_wall.isoformat(), "fault_at": fault_at, "healed_at": healed_at,
            "images": len(self._images), "events": self._events,
            "figures": figures,
        }
        if took_over and self._settings.failback and converged:
            result["failback"] = self._failback(load, found)
            verdicts.append(result["failback"].pop("verdict"))
        result["invariants"] = [v.__dict__ for v in verdicts]
        result["passed"] = all(v.held for v in verdicts)
        return result

    def _figures(self, samples: list[Sample], load: WriteLoad, *,
                 found: dict[tuple[str, int], str], fault_at: float, fault_wall: datetime,
                 took_over: bool) -> dict[str, Any]:
        lost = lost_writes(load.writes, found)
        figures: dict[str, Any] = {
            "acknowledged_writes": len(load.writes),
            "lost_writes": len(lost),
            "lost_span_seconds": round(max((w.acked_at for w in lost), default=0)
                                       - min((w.acked_at for w in lost), default=0), 2),
            "write_failures": dict(load.failures),
            "samples": len(samples),
        }
        if took_over:
            writable = first_primary(samples, "b", fault_at)
            assert writable is not None
            figures["writable_after_seconds"] = round(writable - fault_at, 2)
            takeover = self._access.leases("b").get(GROUP, {}).get("takeover", {})
            figures["takeover"] = takeover
            for key in ("lost_since", "promised_at"):
                if takeover.get(key):
                    moment = datetime.fromisoformat(takeover[key])
                    figures[f"{key}_seconds"] = round((moment - fault_wall).total_seconds(), 2)
        return figures

    def _wait_takeover_ended(self, before: dict[str, Any]) -> None:
        """Wait until a takeover other than `before` (an earlier run's) has ended."""
        def ended() -> bool:
            takeover = self._access.leases("b").get(GROUP, {}).get("takeover", {})
            return bool(takeover) and takeover != before and takeover.get("running") is False
        if wait_for(ended, TAKEOVER_END_TIMEOUT):
            self.note("b's takeover run ended")
        else:
            self.note(f"b's takeover did not end within {TAKEOVER_END_TIMEOUT:.0f} s")

    def _converge(self, watch: PrimaryWatch, since: float) -> tuple[bool, str, str | None]:
        """Wait until each image has one primary, seen by every site, and the lease agrees;
        whether it did, how things stood, and the primary site it converged on."""
        last = ["nothing seen yet"]
        owner: list[str] = []

        def settled() -> bool:
            latest: dict[tuple[str, str], bool | None] = {}
            for sample in watch.samples:
                if sample.at >= since:
                    latest[(sample.site, sample.image)] = sample.primary
            owners = {image: sorted(site for (site, name), primary in latest.items()
                                    if name == image and primary) for image in self._images}
            unknown = sorted({site for (site, _), primary in latest.items() if primary is None})
            holders = {site: self._access.leases(site).get(GROUP, {}) for site in "abc"}
            agreed = {lease.get("holder") for lease in holders.values()}
            primary_sites = {tuple(sites) for sites in owners.values()}
            last[0] = (f"primaries {owners}, unanswered {unknown or 'none'}, lease holders "
                       f"{ {s: lease.get('holder') for s, lease in holders.items()} }")
            if unknown or len(primary_sites) != 1 or len(agreed) != 1:
                return False
            (owner_sites,) = primary_sites
            holder = agreed.pop()
            if len(owner_sites) != 1 or owner_sites[0] != holder:
                return False
            owner[:] = [holder]
            return holder == "a" or bool(holders["a"].get("fenced"))
        started = time.monotonic()
        if wait_for(settled, self._settings.converge_timeout):
            seconds = time.monotonic() - started
            self.note(f"converged {seconds:.1f} s after healing: {last[0]}")
            return True, f"converged {seconds:.1f} s after healing: {last[0]}", owner[0]
        self.note(f"did not converge: {last[0]}")
        return (False, f"not converged within {self._settings.converge_timeout:.0f} s: "
                       f"{last[0]}", None)

    def _failback(self, load: WriteLoad, found: dict[tuple[str, int], str]
                  ) -> dict[str, Any]:
        """Fail back to a; every write b held must then be on a too."""
        started = time.monotonic()
        access = self._access
        begun = access.cli_json("b", "failback", "--tenant", TENANT, "--from", "b",
                                "--to", "a", "--no-wait")
        view = self._wait_run("b", int(begun["id"]))
        if view["state"] == "paused":
            access.cli_json("b", "runbook", "resume", str(view["id"]), "--confirm-winner", "b",
                            "--no-wait")
            view = self._wait_run("b", int(view["id"]))
        seconds = time.monotonic() - started
        if view["state"] != "succeeded":
            failed = [f"{s['name']}: {s['error']}" for s in view["steps"] if s.get("error")]
            return {"run": view["id"], "state": view["state"], "seconds": round(seconds, 1),
                    "verdict": Verdict("failback heals", False,
                                       f"failback run {view['id']} {view['state']}: "
                                       + "; ".join(failed[:3]))}
        again = read_back(access.lab.sites["a"], NAMESPACE, load.writes)
        differ = sum(1 for key, value in found.items() if again.get(key) != value)
        self.note(f"failed back to a in {seconds:.1f} s; {differ} blocks differ from b's")
        return {"run": view["id"], "state": view["state"], "seconds": round(seconds, 1),
                "verdict": Verdict("failback heals", differ == 0,
                                   f"failback run {view['id']} succeeded in {seconds:.0f} s; "
                                   f"{differ} of {len(found)} written blocks on a differ "
                                   f"from b's")}

    def _wait_run(self, site: str, run_id: int) -> dict[str, Any]:
        lab = self._access.lab
        assert lab.operator_token_file is not None and lab.sites[site].api_url is not None
        target = ApiTarget(lab.sites[site].api_url or "",
                           read_secret_file(lab.operator_token_file))
        deadline = time.monotonic() + FAILBACK_TIMEOUT
        while True:
            view: dict[str, Any] = get_json(target, f"/v1/runs/{run_id}")
            if view["state"] != "running" or time.monotonic() > deadline:
                return view
            time.sleep(1.0)


def save_result(result: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{result['experiment']}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path
