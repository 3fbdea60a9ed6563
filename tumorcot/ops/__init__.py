"""Operating a dataset: scheduled builds, single-patient regeneration, audit of generation logs."""
