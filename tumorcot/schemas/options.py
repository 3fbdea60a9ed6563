"""Build options that shape the records (not the measurements): part of every case's records key
(except ``split_ratios``, applied when shards are written), so changing one regenerates the
records it affects from the stored facts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tumorcot.errors import ManifestError


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


def resolve_options(options: "GenerationOptions | dict | None") -> GenerationOptions:
    """Flow parameters travel as JSON dicts; everything else uses the model."""
    if options is None:
        return GenerationOptions()
    return options if isinstance(options, GenerationOptions) else GenerationOptions(**options)
