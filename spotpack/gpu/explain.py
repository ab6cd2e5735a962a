"""Why a pod does not fit a node, in words a person can act on, and whether preemption helps.

Failures are the slow path of the fit, so clarity wins over speed here, except
for :func:`from_summary`, which explains the common "node is full" rejections
from the node summary without a card loop. The full explanation narrows the
candidate cards check by check (healthy, allowed type, big enough when empty,
a free slot, cores, memory) and reports the first check that leaves fewer
cards than the container needs; the first three cannot be fixed by evicting
pods (``unresolvable``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spotpack.gpu.demand import FitResult, PreparedDemand, Step
from spotpack.gpu.inventory import FULL_CORES, NodeGPUs
from spotpack.gpu.usage import NodeUsage

State = tuple[list[int], list[int], list[int]]
"""(used slots, used MiB, used cores) per card position."""


def from_summary(
    prepared: PreparedDemand, step: Step, gpus: NodeGPUs, usage: NodeUsage
) -> FitResult:
    """The node summary already rules ``step`` out: explain it without a card loop.

    What needs a closer look (too few usable cards, mixed models under a type
    filter, cards of mixed sizes) gets the full explanation instead.
    """
    count, need = step.count, step.floor_need(gpus)
    mixed = gpus.uniform_mem is None or (prepared.filtered and gpus.uniform_model is None)
    if count > gpus.usable_count or mixed:
        return explain(prepared, step, gpus, (usage.used_slots, usage.used_mem, usage.used_cores))
    unresolvable = False
    if need > gpus.max_healthy_mem:
        reason = f"needs {step.describe_need()} per card, cards have {gpus.max_healthy_mem} MiB"
        unresolvable = True
    elif count > usage.open_cards:
        text = f"needs {_plural(count, 'card')} with a free vGPU slot and cores"
        reason = f"{text}, {_have(usage.open_cards)} one"
    elif step.cores >= FULL_CORES and count > usage.idle_cards:
        text = f"needs {_plural(count, 'unused card')} (a whole card or cores=100)"
        reason = f"{text}, {usage.idle_cards} unused"
    else:
        where = gpus.describe(usage.max_free_pos)
        largest = f"largest free: {usage.max_free_mem} MiB on {where}"
        text = step.describe_need()
        if count == 1:
            reason = f"no card with {text} free ({largest})"
        else:
            have = sum(1 for free in usage.free_desc if free >= need)
            reason = f"needs {count} cards with {text} free, {_have(have)} ({largest})"
    if len(prepared.steps) > 1:
        reason = f"container {step.name}: {reason}"
    return FitResult(False, reason, None, unresolvable)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _have(n: int) -> str:
    return "1 has" if n == 1 else f"{n} have"


def type_reason(prepared: PreparedDemand, gpus: NodeGPUs, positions: list[int]) -> str:
    models = ", ".join(dict.fromkeys(gpus.cards[i].model for i in positions))
    for pattern in prepared.exclude:
        if any(pattern in gpus.models_lower[i] for i in positions):
            return f"GPU type excluded: {pattern} (node has {models})"
    return f"GPU type not included: wants {', '.join(prepared.include)} (node has {models})"


def explain(
    prepared: PreparedDemand,
    step: Step,
    gpus: NodeGPUs,
    state: State,
) -> FitResult:
    why = _Why(prepared, step, gpus, *state)
    reason, unresolvable = "does not fit", False
    candidates = list(range(len(gpus.cards)))
    for check, final in _CHECKS:
        kept, message = check(why, candidates)
        if len(kept) < step.count:
            reason, unresolvable = message, final
            break
        candidates = kept
    if len(prepared.steps) > 1:
        reason = f"container {step.name}: {reason}"
    return FitResult(False, reason, None, unresolvable)


@dataclass(frozen=True, slots=True)
class _Why:
    """What a failure explanation looks at: one step against one usage state."""

    prepared: PreparedDemand
    step: Step
    gpus: NodeGPUs
    used_slots: list[int]
    used_mem: list[int]
    used_cores: list[int]


def _healthy(w: _Why, cards: list[int]) -> tuple[list[int], str]:
    kept = [i for i in cards if w.gpus.healthy[i]]
    return kept, f"needs {_plural(w.step.count, 'card')}, {len(kept)} healthy"


def _typed(w: _Why, cards: list[int]) -> tuple[list[int], str]:
    if not w.prepared.filtered:
        return cards, ""
    kept = [i for i in cards if w.prepared.model_ok(w.gpus.models_lower[i])]
    if not kept:
        return kept, type_reason(w.prepared, w.gpus, cards)
    return kept, f"needs {_plural(w.step.count, 'card')}, {len(kept)} healthy of an allowed type"


def _capable(w: _Why, cards: list[int]) -> tuple[list[int], str]:
    """Cards on which the vGPU would fit if they were empty: preemption cannot beat this."""
    gpus, step = w.gpus, w.step
    kept = [
        i
        for i in cards
        if gpus.slots[i] >= 1
        and step.need_on(gpus.mem[i]) <= gpus.mem[i]
        and (step.exclusive or step.cores <= gpus.cores[i])
    ]
    if all(gpus.slots[i] < 1 for i in cards):
        return kept, "the cards have no vGPU slots (split count 0)"
    big = [i for i in cards if step.need_on(gpus.mem[i]) <= gpus.mem[i]]
    if len(big) < step.count:
        need = step.describe_need()
        if not big:
            largest = max(gpus.mem[i] for i in cards)
            return kept, f"needs {need} per card, cards have {largest} MiB"
        return kept, f"needs {_plural(step.count, 'card')} with {need}, {_have(len(big))} that much"
    return kept, f"needs {step.cores}% cores per card, more than a card has"


def _slotted(w: _Why, cards: list[int]) -> tuple[list[int], str]:
    kept = [i for i in cards if w.used_slots[i] < w.gpus.slots[i]]
    count = _plural(w.step.count, "card")
    return kept, f"needs {count} with a free vGPU slot, {_have(len(kept))} one"


def _cored(w: _Why, cards: list[int]) -> tuple[list[int], str]:
    gpus, step, used = w.gpus, w.step, w.used_cores
    if step.exclusive:
        kept = [i for i in cards if w.used_slots[i] == 0]
        text = f"needs {_plural(step.count, 'unused card')} (a whole card or cores=100)"
        return kept, f"{text}, {len(kept)} unused"
    kept = [i for i in cards if used[i] < gpus.cores[i] and used[i] + step.cores <= gpus.cores[i]]
    top = max(cards, key=lambda i: (gpus.cores[i] - used[i], -i))
    head = f"no card with {step.cores}% cores free"
    if step.count > 1:
        head = f"needs {step.count} cards with {step.cores}% cores free, {_have(len(kept))}"
    return kept, f"{head} (most free: {gpus.cores[top] - used[top]}% on {gpus.describe(top)})"


def _memory(w: _Why, cards: list[int]) -> tuple[list[int], str]:
    gpus, step, used = w.gpus, w.step, w.used_mem
    kept = [i for i in cards if gpus.mem[i] - used[i] >= step.need_on(gpus.mem[i])]
    top = max(cards, key=lambda i: (gpus.mem[i] - used[i], -i))
    largest = f"largest free: {gpus.mem[top] - used[top]} MiB on {gpus.describe(top)}"
    need = step.describe_need()
    if step.count == 1:
        return kept, f"no card with {need} free ({largest})"
    return kept, f"needs {step.count} cards with {need} free, {_have(len(kept))} ({largest})"


_CHECKS: tuple[tuple[Callable[[_Why, list[int]], tuple[list[int], str]], bool], ...] = (
    (_healthy, True),
    (_typed, True),
    (_capable, True),
    (_slotted, False),
    (_cored, False),
    (_memory, False),
)
"""Explanations in order, each narrowing the candidate cards; True: preemption cannot help."""


__all__ = ["State", "explain", "from_summary", "type_reason"]
