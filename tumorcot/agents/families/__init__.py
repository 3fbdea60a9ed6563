"""The TumorCoT task families, one module each.

Each module has one public function ``<family>_records(make, ...) -> list[CoTRecord]`` that
turns facts (through ``RecordFactory``) into records of that family:

============== ===================================================================== ==============
family         subtasks                                                              needs
============== ===================================================================== ==============
localization   organ_box, lesion_box                                                 organ / lesion mask
lesion_attr.   presence, count, size, density, shape, margin, content, sub_location lesion mask
cot_report     organ_report (findings -> impression -> pathology, then conclusion)   lesion mask
tnm_staging    tnm; t_check, t_band (a given T the size rule checks)                 labels, or a size rule
pathology      pathology (labels; otherwise a KG differential, said to be one)       a lesion
organ_measure  organ_volume, spleen_size, liver_fat, kidney_compare (``organs``)     complete organs
tumor_burden   lesion_burden, largest_lesion, location_count (``burden``)           lesion mask
spatial        relative_position, vessel_contact (``spatial``),                      complete organs; vessels;
               resectability (``resectability``)                                     NCCN vessels, PDAC
============== ===================================================================== ==============

The organ-level families state facts derived from measurements (``schemas.derived``) through
multi-step chains (``chain``): value -> reference or threshold -> label; the lesion attributes
and boxes are chains too (their links in ``attribute_links`` and ``localization.box_links``).

``choice`` holds the closed answer sets multiple-choice questions draw options from,
``focus`` the interleaved organ-focus turns, ``negatives`` the negative-share selection, ``mix``
the family mix each split's shards keep (applied when shards are written, ``store.mixing``).
"""

FAMILIES = ("localization", "lesion_attribute", "cot_report", "tnm_staging", "pathology",
            "organ_measure", "tumor_burden", "spatial")
