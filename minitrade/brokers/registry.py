"""Broker adapters by the `type` of their spec in minitrade.yaml: the one place that knows which exist.

The daemon, `run` and the CLI ask here for an account's adapter (`BrokerPool`) and whether its
broker reports executions itself (`reports_fills`: IB does; a manual broker's fills are typed in
with `minitrade fill`). Adapters are imported when first used: a manual-only repo never loads the
IB client.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from minitrade.brokers.base import Broker
from minitrade.models import BrokerSpec, IBBroker


def _manual(name: str, _spec: BrokerSpec) -> Broker:
    from minitrade.brokers.manual import ManualBroker

    return ManualBroker(name)


def _ib(name: str, spec: BrokerSpec) -> Broker:
    from minitrade.brokers.ib.broker import IBBroker as IBAdapter

    assert isinstance(spec, IBBroker)
    return IBAdapter(name, spec)


@dataclass(frozen=True)
class _Kind:
    build: Callable[[str, BrokerSpec], Broker]
    reports_fills: bool  # executions come from the broker (collected each pass), not from `minitrade fill`
    remote: bool         # its calls go over the network (so never made while holding the state file)


_KINDS: dict[str, _Kind] = {
    "manual": _Kind(_manual, reports_fills=False, remote=False),
    "ib": _Kind(_ib, reports_fills=True, remote=True),
}


def adapter_for(name: str, spec: BrokerSpec) -> Broker:
    """A new adapter for broker account `name`; the caller closes it."""
    return _KINDS[spec.type].build(name, spec)


def reports_fills(spec: BrokerSpec | None) -> bool:
    """Whether this broker tells its executions itself (so a pass collects them)."""
    return spec is not None and _KINDS[spec.type].reports_fills


def is_remote(spec: BrokerSpec | None) -> bool:
    """Whether this broker's calls go over the network (an unknown one is taken to)."""
    return spec is None or _KINDS[spec.type].remote


class BrokerPool:
    """Adapters by account name, each built once and all closed together (one pass, one command)."""

    def __init__(self, specs: Mapping[str, BrokerSpec]) -> None:
        self._specs = specs
        self._built: dict[str, Broker] = {}

    def __call__(self, name: str) -> Broker:
        if name not in self._built:
            self._built[name] = adapter_for(name, self._specs[name])
        return self._built[name]

    def close(self) -> None:
        for broker in self._built.values():
            broker.close()
        self._built.clear()
