"""The TumorCoT task families, one module each.

Each module has one public function ``<family>_records(make, ...) -> list[CoTRecord]`` that
turns facts (through ``RecordFactory``) into records of that family:

============== ===================================================================== ==============
family         subtasks                                                              needs
============== ===================================================================== ==============
localization   organ_box, lesion_box                                                 organ / lesion mask
lesion_attr.   presence, count, size, density, shape, margin, content, sub_location lesion mask
cot_report     organ_report (findings -> impression -> pathology, then conclusion)   lesion mask
tnm_staging    tnm                                                                   labels, or a size rule
pathology      pathology (labels; otherwise a KG differential, said to be one)       a lesion
============== ===================================================================== ==============

``choice`` holds the closed answer sets multiple-choice questions draw options from,
``focus`` the interleaved organ-focus turns, ``negatives`` the negative-share selection.
"""

FAMILIES = ("localization", "lesion_attribute", "cot_report", "tnm_staging", "pathology")
