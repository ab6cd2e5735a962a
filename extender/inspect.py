"""``GET /inspect``: per-node, per-card GPU state, read-only, for people debugging placement."""

from __future__ import annotations

from typing import Any

from extender.state import ClusterState


def inspect_state(state: ClusterState, only: str | None = None) -> dict[str, Any]:
    """What the extender believes: cards, their usage, and the pods holding them."""
    with state.lock:
        nodes = {}
        for name, entry in state.nodes.items():
            if only is not None and name != only:
                continue
            if entry.view.gpus is None and only is None:
                continue
            nodes[name] = _node(state, name, entry)
        return {
            "nodes": nodes,
            "reservations": len(state.reserved),
            "pods_holding_gpus": len(state.holders),
            "drift": state.drift,
        }


def _node(state: ClusterState, name: str, entry: Any) -> dict[str, Any]:
    view = entry.view
    cards = []
    if view.gpus is not None and entry.usage is not None:
        holders: dict[str, list[str]] = {}
        for uid in state.by_node.get(name, ()):
            holder = state.holders[uid]
            suffix = " (reserved)" if holder.expires is not None else ""
            for grant in holder.assignment.grants():
                holders.setdefault(grant.uuid, []).append(holder.pod_key + suffix)
        for i, card in enumerate(view.gpus.cards):
            cards.append(
                {
                    "uuid": card.uuid,
                    "index": card.index,
                    "model": card.model,
                    "healthy": card.healthy,
                    "mem_mib": card.mem_mib,
                    "used_mem_mib": entry.usage.used_mem[i],
                    "slots": card.slots,
                    "used_slots": entry.usage.used_slots[i],
                    "cores": card.cores,
                    "used_cores": entry.usage.used_cores[i],
                    "pods": sorted(holders.get(card.uuid, [])),
                }
            )
    return {
        "spot": view.spot,
        "instance_type": view.instance_type,
        "zone": view.zone,
        "interrupted": view.interrupted,
        "price_per_hour": view.price,
        "gpu_source": view.gpus.source if view.gpus is not None else None,
        "cards": cards,
    }
