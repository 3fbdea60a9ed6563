"""Build options that shape the records (not the measurements): part of every case's records key
(except ``split_ratios``, applied when shards are written), so changing one regenerates the
records it affects from the stored facts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tumorcot.errors import ManifestError


# TumorCoT's published family mix, and the record tasks each of its four groups counts.
TUMORCOT_MIX = {"attributes": 0.60, "report": 0.19, "localization": 0.11, "tnm": 0.10}
MIX_GROUPS = {"attributes": ("lesion_attribute", "organ_measure", "tumor_burden", "spatial"),
              "report": ("cot_report", "pathology"), "localization": ("localization",), "tnm": ("tnm_staging",)}


def mix_group(task: str) -> str | None:
    return next((g for g, tasks in MIX_GROUPS.items() if task in tasks), None)


class GenerationOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    split_ratios: tuple[float, float, float] = Field(
        (0.8, 0.1, 0.1), description="train, validation, test shares of patients (salted hash of the pseudonym)")
    negative_share: float = Field(
        0.5, ge=0.0, lt=1.0,
        description="target share of negative records (organs without lesions) among presence, count and "
                    "organ-report records of cases with lesions; lesion-free cases keep this share of theirs")
    mc_share: float = Field(0.5, ge=0.0, le=1.0,
                            description="share of closed-answer attribute records asked as multiple choice")
    interleave: bool = Field(True, description="organ-level reasoning records carry the attend-to-organ turns")
    family_mix: dict[str, float] | None = Field(
        default_factory=lambda: dict(TUMORCOT_MIX),
        description="target shares of the family groups (MIX_GROUPS; default TUMORCOT_MIX, TumorCoT's published "
                    "mix); each split's shards keep records in these proportions among the groups it has "
                    "(agents/families/mix.py, applied when shards are written); None (CLI --mix off): every record")
    organ_box_cap: int = Field(4, ge=0, description="with a family mix: organ-box records kept per case at most")

    @field_validator("family_mix")
    @classmethod
    def _mix(cls, value):
        if value is None:
            return None
        unknown = set(value) - set(MIX_GROUPS)
        if unknown or any(v < 0 for v in value.values()) or sum(value.values()) <= 0:
            raise ValueError(f"family mix: groups {', '.join(MIX_GROUPS)} with non-negative shares, not all zero")
        total = sum(value.values())
        return {g: round(value.get(g, 0.0) / total, 6) for g in MIX_GROUPS}

    @classmethod
    def parse_mix(cls, text: str) -> dict[str, float] | None:
        """'attributes=60,report=19,localization=11,tnm=10' -> shares; 'tumorcot' -> TUMORCOT_MIX;
        'off' -> None."""
        if text.strip().lower() == "off":
            return None
        if text.strip().lower() == "tumorcot":
            return dict(TUMORCOT_MIX)
        try:
            pairs = dict((k.strip(), float(v)) for k, v in (p.split("=") for p in text.split(",") if p.strip()))
            return cls._mix(pairs)
        except ValueError:
            raise ManifestError(f"--mix must be 'off' or group=share pairs of {', '.join(MIX_GROUPS)}; got {text!r}") from None

    @field_validator("split_ratios")
    @classmethod
    def _ratios(cls, value):
        if any(v < 0 for v in value) or sum(value) <= 0:
            raise ValueError("split ratios must be non-negative and not all zero")
        return tuple(float(v) for v in value)

    @property
    def splits(self) -> tuple[tuple[str, float], ...]:
        return tuple(zip(("train", "validation", "test"), self.split_ratios))

    @classmethod
    def parse_ratios(cls, text: str) -> tuple[float, float, float]:
        """'0.8,0.1,0.1' (or '80/10/10') -> (0.8, 0.1, 0.1), normalised."""
        parts = [p for p in text.replace("/", ",").split(",") if p.strip()]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 3 or any(v < 0 for v in values) or sum(values) <= 0:
            raise ManifestError(f"--splits must be three non-negative numbers train,validation,test; got {text!r}")
        total = sum(values)
        return tuple(round(v / total, 6) for v in values)


def stored_options(options: dict | None) -> GenerationOptions:
    """The options a dataset's manifest stored (``versions.options``; None: no dataset yet, the
    defaults). A manifest written before ``family_mix`` existed was built without a mix, and a
    rerun keeps it so."""
    if options is None:
        return GenerationOptions()
    return GenerationOptions(**{"family_mix": None, **options})


def resolve_options(options: "GenerationOptions | dict | None") -> GenerationOptions:
    """Flow parameters travel as JSON dicts; everything else uses the model."""
    if options is None:
        return GenerationOptions()
    return options if isinstance(options, GenerationOptions) else GenerationOptions(**options)
