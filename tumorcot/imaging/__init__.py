"""Imaging stage: load CT (NIfTI or DICOM series), put masks on the CT grid, measure."""
