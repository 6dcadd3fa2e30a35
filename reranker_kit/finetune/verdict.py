"""What a run says of its training, the same way for both jobs: which weights it saved, and what the dev
queries' evidence says of the trained weights against the base.

The evidence is the paired comparison of trained - base on the dev metric (`metrics.paired`): its 95%
bootstrap interval and randomization test together (`significant`: p < 0.05 and the interval excludes 0):
- `gain`: significant, trained above base;
- `loss`: significant, trained below base;
- `within noise`: anything else; the difference the dev queries show may be chance, whatever was kept.
The same rule reads every paired comparison a report states (`finding`), main.py's included.
Which weights are saved is each job's rule (the reranker's guarded one-standard-error choice, the
embedder's better-than-base); the verdict never claims more than the interval shows. `no dev queries`
(nothing held out) and `not judged` (a cross-validation fold, measured on its held-out queries instead)
complete the vocabulary. dev_metrics.json, the log, the model card and main.py all say the same words.
"""

from dataclasses import dataclass

from reranker_kit.metrics.paired import PairedComparison

GAIN, LOSS, WITHIN_NOISE = "gain", "loss", "within noise"
NO_DEV, NOT_JUDGED = "no dev queries", "not judged"
VERDICTS = (GAIN, LOSS, WITHIN_NOISE, NO_DEV, NOT_JUDGED)


@dataclass(frozen=True)
class Verdict:
    """The run's verdict, the weights it saved ("trained", "base", "blend a=0.50"), and the paired evidence."""

    verdict: str
    saved: str
    metric: str | None = None
    trained_vs_base: dict | None = None  # PairedComparison.as_json() of trained against base on `metric`.

    def as_json(self) -> dict:
        """The fields dev_metrics.json records."""
        return {"verdict": self.verdict, "saved_weights": self.saved, "trained_vs_base": self.trained_vs_base}

    def evidence(self) -> str:
        """`mrr@5 trained - base +0.178 [-0.037, +0.392] on 19 dev queries`, or what stands in for it."""
        pair = self.trained_vs_base
        if not pair or pair.get("ci_low") is None:
            return {NO_DEV: "no dev queries were held out", NOT_JUDGED: "a fold is measured on its held-out queries"}.get(
                self.verdict, "one dev query bounds nothing")
        return (f"{self.metric} trained - base {pair['mean_difference']:+.3f} [{pair['ci_low']:+.3f}, "
                f"{pair['ci_high']:+.3f}] on {pair['n_queries']} dev queries")

    def log_line(self) -> str:
        meaning = {GAIN: "the trained weights beat the base beyond noise",
                   LOSS: "the trained weights rank below the base beyond noise",
                   WITHIN_NOISE: "the difference between trained and base weights is within noise",
                   NO_DEV: "nothing judged the trained weights", NOT_JUDGED: "the fold's held-out queries judge it"}
        return f"verdict: {self.verdict} ({meaning[self.verdict]}: {self.evidence()}); saved the {self.saved} weights"


def finding(comparison: dict) -> str:
    """GAIN, LOSS or WITHIN_NOISE for a paired comparison's fields (`PairedComparison.as_json()`)."""
    low, high = comparison.get("ci_low"), comparison.get("ci_high")
    if low is None or high is None or not comparison.get("significant"):
        return WITHIN_NOISE
    return GAIN if low > 0 else LOSS if high < 0 else WITHIN_NOISE


def judged(saved: str, metric: str, comparison: PairedComparison) -> Verdict:
    """The verdict the paired comparison supports, beside the weights the job's rule saved."""
    return Verdict(finding(comparison.as_json()), saved, metric, comparison.as_json())
