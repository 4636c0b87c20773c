"""Why a difference is, or is not, there: one sentence per benchmark, one headline per host.

From the variants' placements (each cache's filesystem, storage class and device,
as the runner found them; ``gotune.agent.verify.variants``), whether the page cache
was warm or dropped (``--cold``), and the measured medians and verdicts:

- "before: GOMODCACHE on fuse.9p (network, /mnt/c), 2.40 s; now on ext4 (nvme, /),
  120 ms: 20.0× faster";
- "before and tuned have GOCACHE on the same storage (ext4, nvme, /) with a warm page
  cache: placement cannot change much here";
- "placement differs, but with a warm page cache both are served from RAM: no
  measurable difference (--cold measures the morning after a reboot)".

Pure: reads a host's result and its ``variants``; the table and the HTML report show
the sentences as they are.
"""

from __future__ import annotations

from typing import Any

from gotune.agent.mounts import is_network_or_fuse
from gotune.agent.stats import FASTER, MIN_RUNS_FOR_VERDICT, SAME, SLOWER
from gotune.verify.table import seconds

# The variant a headline compares tuned with: the user's own setup first.
AGAINST = ("before", "default")
WHO = {"before": "before", "default": "Go's defaults", "tuned": "now"}
# A place's fields that make two places the same storage.
STORAGE_FIELDS = ("fstype", "class", "device")


def place_text(place: dict[str, Any] | None) -> str:
    """``fuse.9p (network, /mnt/c)``, ``tmpfs (/var/cache/gotune/tmpfs/dev)``."""
    if not place or not place.get("fstype"):
        return "unknown storage"
    kind = place.get("class")
    parts = [str(kind)] if kind and kind not in ("tmpfs", "unknown") else []
    if place.get("device"):
        parts.append(str(place["device"]))
    parts.append(str(place.get("mount") or "?"))
    return f"{place['fstype']} ({', '.join(parts)})"


def resolve(variants: dict[str, Any], name: str) -> dict[str, Any]:
    """A variant's description, following ``same_as`` (before measured as default)."""
    desc = variants.get(name) or {}
    other = desc.get("same_as")
    return variants.get(other) or {} if other else desc


def variant_text(variants: dict[str, Any], name: str) -> str:
    """One line on a variant: each place, or why it was not measured."""
    desc = variants.get(name) or {}
    if desc.get("same_as"):
        return f"the same environment as {desc['same_as']} (measured once)"
    if desc.get("missing"):
        return f"not measurable: {desc['missing']}"
    if desc.get("unmeasurable"):
        return f"not measurable: {desc['unmeasurable']}"
    places = desc.get("places") or {}
    text = ", ".join(f"{k} on {place_text(p)}" for k, p in places.items())
    if desc.get("note"):
        text += f" ({desc['note']})"
    return text or "no places recorded"


def _same_storage(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return all((a or {}).get(f) == (b or {}).get(f) for f in STORAGE_FIELDS)


def _against(b: dict[str, Any]) -> str:
    return "before" if b.get("before") else "default"


def benchmark(b: dict[str, Any], variants: dict[str, Any], cold: bool) -> str:
    """Why this benchmark's headline comparison came out as it did.

    + b: one benchmark result (``gotune.agent.stats.benchmark_result``)
    + variants: the host's variant descriptions
    + cold: whether the page cache was dropped before every run
    """
    text = _placement(b, variants, cold)
    other = _against(b)
    then, now = (resolve(variants, k).get("go_version") for k in (other, "tuned"))
    if not b.get("error") and then and now and then != now:
        text += f"; {WHO[other]} built with {then}, now {now}: the toolchain differs too"
    return text


def _placement(b: dict[str, Any], variants: dict[str, Any], cold: bool) -> str:
    """The placement half of ``benchmark``'s sentence."""
    if b.get("error"):
        return f"not measured: {b['error']}"
    other = _against(b)
    if other == "before" and (variants.get("before") or {}).get("same_as") == "tuned":
        return ("apply changed nothing a build sees here: before and tuned are the same "
                "environment")
    ratio = b.get("headline_ratio") if other == "before" else b.get("ratio")
    verdict = (b.get("verdicts") or {}).get(other) if other == "before" else b.get("verdict")
    uses = list(b.get("uses") or ["GOCACHE"])
    mine = (resolve(variants, "tuned").get("places") or {})
    theirs = (resolve(variants, other).get("places") or {})
    changed = [k for k in uses if not _same_storage(mine.get(k), theirs.get(k))]
    page_cache = ("a cold page cache (dropped before every run)" if cold
                  else "a warm page cache")
    t, o = (b.get("tuned") or {}).get("median_s"), (b.get(other) or {}).get("median_s")
    measured = f"{WHO[other]} {seconds(o)}, now {seconds(t)}"
    if not mine or not theirs:
        return f"{measured}: {_verdict_text(verdict, ratio)} (no placements were reported)"
    if not changed:
        where = place_text(mine.get(uses[0]))
        same = (f"{WHO[other]} and now have {', '.join(uses)} on the same storage ({where}) "
                f"with {page_cache}")
        if verdict in (FASTER, SLOWER):
            return (f"{same}; {measured}: {_verdict_text(verdict, ratio)}, from something "
                    "else than placement (GOFLAGS, the go binary, what the caches hold)")
        return f"{same}: placement cannot change much here; {verdict or SAME}"
    then = ", ".join(f"{k} on {place_text(theirs.get(k))}" for k in changed)
    now = ", ".join(f"{k} on {place_text(mine.get(k))}" for k in changed)
    figures = f"{WHO[other]}: {then}, {seconds(o)}; now {now}, {seconds(t)}"
    if verdict in (FASTER, SLOWER):
        return f"{figures}: {_verdict_text(verdict, ratio)}, with {page_cache}"
    runs = min((b.get(k) or {}).get("runs") or 0 for k in ("tuned", other))
    if runs < MIN_RUNS_FOR_VERDICT:
        return (f"{figures}: too few runs for a verdict (n={runs}; {MIN_RUNS_FOR_VERDICT} "
                "needed), with " + page_cache)
    networked = any(is_network_or_fuse((p or {}).get("fstype"))
                    for k in changed for p in (mine.get(k), theirs.get(k)))
    if not cold and not networked:
        return (f"{figures}: no measurable difference: with a warm page cache both are "
                "served from RAM (--cold measures the morning after a reboot)")
    return f"{figures}: no measurable difference at this size of work"


def _verdict_text(verdict: str | None, ratio: float | None) -> str:
    if verdict == FASTER and ratio:
        return f"{ratio:.1f}× faster"
    if verdict == SLOWER and ratio:
        return f"{1 / ratio:.1f}× slower"
    return verdict or SAME


def headline(benchmarks: list[dict[str, Any]], variants: dict[str, Any],
             cold: bool) -> dict[str, Any] | None:
    """The host's answer to "did my builds get faster": its largest measurable win over the
    user's setup before gotune (else over Go's defaults), or why there is none."""
    measured = [b for b in benchmarks if not b.get("error")]
    if not measured:
        return None
    against = "before" if any(b.get("before") for b in measured) else "default"
    key = "headline_ratio" if against == "before" else "ratio"

    def verdict_of(b: dict[str, Any]) -> str | None:
        v = (b.get("verdicts") or {}).get(against) if against == "before" else b.get("verdict")
        return str(v) if v else None

    wins = [b for b in measured if verdict_of(b) == FASTER and b.get(key)]
    best = max(wins, key=lambda b: float(b[key])) if wins else None
    # without a win, the workload most like real work says it best
    chosen = best or min(measured, key=lambda b: (0 if b.get("project") else 1 if "GOMODCACHE"
                                                  in (b.get("uses") or []) else 2))
    out = {"against": against, "benchmark": chosen["name"], "ratio": chosen.get(key),
           "verdict": verdict_of(chosen) or SAME,
           "text": benchmark(chosen, variants, cold)}
    if best is None:
        out["text"] = f"no measurable difference on any benchmark: {out['text']}"
    return out
