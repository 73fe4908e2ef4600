"""The benchmark's side of the second daemon's API: policies in, RPO and metrics out.

Everything goes through the HTTP API as an operator's tools would; nothing reaches
into the daemon.
"""

import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from daemon_process import BenchError, Workspace
from prometheus_client.parser import text_string_to_metric_families

from drd.api.client import ApiClientError, ApiTarget, get_json, put_text

REQUEST_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RpoSample:
    """One row of GET /v1/rpo, as the bench reads it."""

    tenant: str
    image: str
    destination: str
    rpo_s: float | None
    state: str
    data_as_of: datetime | None
    detail: str

    @classmethod
    def of(cls, row: dict[str, Any]) -> "RpoSample":
        as_of = row.get("data_as_of")
        return cls(tenant=str(row["tenant"]), image=str(row["image"]),
                   destination=str(row["destination"]), rpo_s=row.get("rpo_seconds"),
                   state=str(row["rpo_state"]),
                   data_as_of=datetime.fromisoformat(as_of) if as_of else None,
                   detail=str(row.get("detail", "")))

    def staleness_s(self, now: datetime) -> float | None:
        """For a caught-up journal image, drd dates the reading at the moment it measured
        (less the writer's commit interval, which it also reports as the RPO): its age
        is how long ago the journal RPO loop last reached this image."""
        if self.data_as_of is None or self.rpo_s is None or self.detail != "caught up":
            return None
        return (now - self.data_as_of).total_seconds() - self.rpo_s


class DaemonApi:
    def __init__(self, workspace: Workspace) -> None:
        self.url = workspace.url
        self.target = ApiTarget(url=workspace.url,
                                token=workspace.token_file.read_text().strip())

    def put_policy(self, tenant: str, text: str) -> dict[str, Any]:
        """PUT a policy; the daemon's answer (what it accepted)."""
        try:
            return dict(put_text(self.target, f"/v1/tenants/{tenant}/policy", text,
                                 "application/yaml"))
        except ApiClientError as error:
            raise BenchError(f"PUT of {tenant}'s policy failed: {error}") from error

    def rpo(self, tenant: str | None = None) -> list[RpoSample]:
        path = "/v1/rpo" + (f"?tenant={tenant}" if tenant else "")
        try:
            body = get_json(self.target, path, timeout=REQUEST_TIMEOUT_S)
        except ApiClientError as error:
            raise BenchError(f"GET {path} failed: {error}") from error
        return [RpoSample.of(row) for row in body["rows"]]

    def metrics(self) -> "Metrics":
        try:
            with urllib.request.urlopen(self.url + "/metrics",  # noqa: S310 (our http URL)
                                        timeout=REQUEST_TIMEOUT_S) as response:
                text = response.read().decode()
        except OSError as error:
            raise BenchError(f"GET /metrics failed: {error}") from error
        return Metrics.parse(text)


@dataclass(frozen=True)
class Metrics:
    """Samples of one /metrics scrape: (name, sorted label pairs) -> value."""

    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    at: datetime

    @classmethod
    def parse(cls, text: str) -> "Metrics":
        samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
                   for family in text_string_to_metric_families(text)
                   for sample in family.samples}
        return cls(samples, datetime.now(UTC))

    def value(self, name: str, **labels: str) -> float:
        return self.samples.get((name, tuple(sorted(labels.items()))), 0.0)

    def total(self, name: str) -> float:
        """The sum over every label set of `name`."""
        return sum(value for (sample, _), value in self.samples.items() if sample == name)
