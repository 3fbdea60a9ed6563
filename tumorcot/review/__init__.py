"""Clinician review and quality control of a built dataset.

- ``pack``: a stratified sample of records as one self-contained HTML page (3-plane CT slices
  with overlays, steps with their facts and KG nodes, verdict controls, JSON export);
- ``verdicts`` / ``ingest`` / ``rates`` / ``quarantine``: verdict files stored with the dataset,
  error rates with Wilson intervals, reviewer agreement, removal of records judged wrong;
- ``leakage``: the same CT or patient in two splits; ``report``: the QC report with plots.
"""
