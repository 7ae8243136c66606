"""The potential: a weighted sum of 0-10 signal scores, with a documented answer for missing signals.

For each weighted signal, in the order of `weights`:

1. its own score, when a scorer gave one that is not a fallback;
2. otherwise the first stand-in signal (`stand_ins[signal]`, in order) with a non-fallback score;
   the term is marked `stood_in` and says which signal stood in and why;
3. otherwise a constant, marked `fallback`: the failing scorer's own fallback value when it reported
   one (Moondream's is 5.0), else `fallback_score`. A constant that is the same for every candidate
   leaves the ranking to the other signals, which is the intent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from orchestrator.search.ledger import PotentialTerm, ScoreRecord


def _first(scores: Sequence[ScoreRecord], signal: str, *, fallback: bool) -> ScoreRecord | None:
    for score in scores:
        if score.signal == signal and score.fallback == fallback:
            return score
    return None


def compute_potential(
    scores: Sequence[ScoreRecord],
    weights: Mapping[str, float],
    stand_ins: Mapping[str, tuple[str, ...]],
    fallback_score: float,
) -> tuple[float, tuple[PotentialTerm, ...]]:
    """The potential of one candidate and the term behind each weighted signal."""
    terms: list[PotentialTerm] = []
    for signal, weight in weights.items():
        direct = _first(scores, signal, fallback=False)
        if direct is not None:
            terms.append(
                PotentialTerm(
                    signal=signal,
                    weight=weight,
                    value=direct.value,
                    source_signal=signal,
                    source=direct.source,
                    stood_in=False,
                    fallback=False,
                )
            )
            continue
        failed = _first(scores, signal, fallback=True)
        why = failed.reason if failed is not None and failed.reason else "no scorer provided it"
        stand_in = next(
            (s for alt in stand_ins.get(signal, ()) if (s := _first(scores, alt, fallback=False)) is not None),
            None,
        )
        if stand_in is not None:
            terms.append(
                PotentialTerm(
                    signal=signal,
                    weight=weight,
                    value=stand_in.value,
                    source_signal=stand_in.signal,
                    source=stand_in.source,
                    stood_in=True,
                    fallback=False,
                    reason=f"{signal} unavailable ({why}); {stand_in.signal} stood in",
                )
            )
            continue
        value = failed.value if failed is not None else fallback_score
        terms.append(
            PotentialTerm(
                signal=signal,
                weight=weight,
                value=value,
                source_signal=signal,
                source=failed.source if failed is not None else "constant",
                stood_in=False,
                fallback=True,
                reason=f"{signal} unavailable ({why}); constant {value:g} used",
            )
        )
    return sum(t.weight * t.value for t in terms), tuple(terms)
