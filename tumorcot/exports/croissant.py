"""``DIR/croissant.json``: Croissant 1.0 (MLCommons) JSON-LD metadata of the dataset.

Layout of the description:

- ``distribution``: one ``cr:FileSet`` per split that holds records, ``includes`` =
  ``data/{split}-*.parquet``, ``encodingFormat`` ``application/x-parquet``;
- ``recordSet``: ``splits`` (a ``cr:Split`` enumeration) and one record set per split,
  ``records_{split}``, whose fields follow the Arrow schema of ``CoTRecord``, each extracted from
  the Parquet column of the same name. A record set per split, because a field has one source.
- ``citeAs`` (the card's BibTeX), ``version`` (semantic, from the build time: later builds are
  greater), and the responsible-AI fields of Croissant RAI 1.0 (``rai:*``, ``rai_fields``).

Type mapping: string -> ``sc:Text``, integer -> ``sc:Integer``, floating -> ``sc:Float``,
boolean -> ``sc:Boolean``. Nested data are described, not flattened to JSON text: a list of
scalars (``options``, ``roi_box``) is a ``repeated`` field of the element's type; a list of
structs (``steps``, ``turns``) is a ``repeated`` field of type ``cr:RecordSet`` whose
``subField``s are the struct's members, each taken from the column with a ``jsonPath``
transform (how Hugging Face describes struct columns); members are again scalars or ``repeated``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from tumorcot.exports.card import LICENSE_NOTE, TAGS, citation, record_splits
from tumorcot.schemas import BOX_CONVENTION, CoTRecord
from tumorcot.schemas.arrow import arrow_schema
from tumorcot.store.atomic import atomic_write_json

CONFORMS_TO = "http://mlcommons.org/croissant/1.0"
CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
SPLIT_URLS = {"train": "cr:TrainingSplit", "validation": "cr:ValidationSplit", "test": "cr:TestSplit"}


def scalar_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "sc:Text"
    if pa.types.is_integer(arrow_type):
        return "sc:Integer"
    if pa.types.is_floating(arrow_type):
        return "sc:Float"
    if pa.types.is_boolean(arrow_type):
        return "sc:Boolean"
    raise TypeError(f"no Croissant type for Arrow {arrow_type}")


def _member(field: pa.Field, field_id: str, source: dict) -> dict:
    """A field (or sub-field) for ``field``: scalar, repeated scalar, or repeated record."""
    out = {"@type": "cr:Field", "@id": field_id, "name": field.name, "source": source}
    kind = field.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        out["repeated"] = True
        kind = kind.value_type
    if pa.types.is_struct(kind):
        out["dataType"] = "cr:RecordSet"
        out["subField"] = [
            _member(kind.field(i), f"{field_id}/{kind.field(i).name}",
                    {**source, "transform": {"jsonPath": kind.field(i).name}})
            for i in range(kind.num_fields)]
    else:
        out["dataType"] = scalar_type(kind)
    return out


def record_fields(record_set: str, file_set: str) -> list[dict]:
    """Croissant fields for every column of the records' Arrow schema."""
    fields = []
    for field in arrow_schema(CoTRecord):
        source = {"fileSet": {"@id": file_set}, "extract": {"column": field.name}}
        entry = _member(field, f"{record_set}/{field.name}", source)
        description = CoTRecord.model_fields[field.name].description
        if description:
            entry["description"] = description
        if field.name == "split":
            entry["references"] = {"field": {"@id": "splits/name"}}
        fields.append(entry)
    return fields


def _splits_record_set(splits: list[str]) -> dict:
    return {
        "@type": "cr:RecordSet", "@id": "splits", "name": "splits", "dataType": "cr:Split",
        "key": {"@id": "splits/name"}, "description": "Patient-level splits: no patient spans two splits.",
        "field": [{"@type": "cr:Field", "@id": "splits/name", "name": "name", "dataType": "sc:Text"},
                  {"@type": "cr:Field", "@id": "splits/url", "name": "url", "dataType": "sc:URL"}],
        "data": [{"splits/name": s, "splits/url": SPLIT_URLS.get(s, s)} for s in splits],
    }


def dataset_version(manifest: dict) -> str:
    """MAJOR.MINOR.PATCH from the build time ``YYYY-MM-DDTHH:MM:SS``: YYYY.MMDD.HHMMSS (no leading zeros)."""
    digits = "".join(c for c in (manifest.get("created") or "")[:19] if c.isdigit())
    if len(digits) < 14:
        return "0.0.0"
    return f"{int(digits[:4])}.{int(digits[4:8])}.{int(digits[8:14])}"


def rai_fields(manifest: dict, stats: dict) -> dict:
    """Croissant RAI: how the records came to be, what they hold and what they must not be used for."""
    versions = manifest.get("versions", {})
    segmentation = (versions.get("segmentation") or {}).get("backend", "precomputed")
    synthetic = stats["synthetic"]
    return {
        "rai:dataCollection": "Not collected: generated from CT volumes with organ and lesion masks and optional "
                              "labels supplied by the dataset builder (each record's source names the collection).",
        "rai:dataCollectionType": ["Secondary Data Analysis", "Machine-generated"],
        "rai:dataPreprocessingProtocol": "CT loaded in HU (NIfTI or DICOM), masks resampled onto the CT grid in "
                                         "physical space (nearest neighbour), organs and lesions measured: volumes, "
                                         "RECIST-style axial diameters, attenuation, boxes, sub-locations.",
        "rai:dataAnnotationProtocol": "Questions, reasoning steps and answers are rendered from the measured facts "
                                      "and a versioned knowledge graph citing clinical guidelines; a deterministic "
                                      "calibrator rejects any record whose statements do not match its cited facts "
                                      "and graph nodes. N, M and histology only come from given labels.",
        "rai:machineAnnotationTools": [f"tumorcot {manifest.get('package_version')}",
                                       f"generator {versions.get('generator')}", f"segmentation {segmentation}"],
        "rai:dataBiases": f"The case mix, scanners and populations are those of the source collections. "
                          f"{synthetic['records']} of {stats['records']} records are from synthetic phantoms. "
                          "Size-based T categories follow AJCC 8 size rules only.",
        "rai:dataLimitations": "Machine-generated text from automatic measurements; not reviewed by radiologists "
                               "unless a review pack was ingested. Not for clinical decision making.",
        "rai:personalSensitiveInformation": "Health data, pseudonymised: patient and study ids are salted HMACs; "
                                            "no DICOM identifying tags, file paths or report text; images are not "
                                            "included (content hash only).",
        "rai:dataUseCases": "Training and evaluating multimodal models that reason over 3D CT "
                            "(findings -> impression -> pathology).",
        "rai:dataSocialImpact": "May help build CT reasoning models; errors in generated text could mislead if "
                                "the records are used outside research.",
        "rai:dataReleaseMaintenancePlan": "Rebuilt incrementally by tumorcot; each build carries a run id and the "
                                          "versions of its knowledge graph, prompts and pipeline (manifest.json).",
    }


def croissant(dataset_dir: Path, manifest: dict, stats: dict) -> dict:
    name = Path(dataset_dir).resolve().name
    splits = record_splits(manifest)
    description = (f"{stats['records']} chain-of-thought VQA records over 3D CT ({', '.join(stats['families'])}), "
                   "each reasoning step citing measured facts, knowledge-graph nodes and a region of the CT. "
                   f"Boxes: {BOX_CONVENTION}. Records carry pseudonymous ids only; CT images are referenced "
                   "by content hash and not included.")
    return {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": name,
        "conformsTo": CONFORMS_TO,
        "description": description,
        "license": "other",
        "usageInfo": LICENSE_NOTE,
        "url": "README.md",
        "creator": {"@type": "sc:Organization", "name": "tumorcot"},
        "datePublished": manifest.get("created"),
        "version": dataset_version(manifest),
        "citeAs": citation(name, manifest),
        **rai_fields(manifest, stats),
        "keywords": list(TAGS),
        "isAccessibleForFree": True,
        "distribution": [{
            "@type": "cr:FileSet", "@id": f"{split}-files", "name": f"{split}-files",
            "description": f"Record shards of the {split} split.",
            "encodingFormat": "application/x-parquet", "includes": f"data/{split}-*.parquet",
        } for split in splits],
        "recordSet": [_splits_record_set(splits)] + [{
            "@type": "cr:RecordSet", "@id": f"records_{split}", "name": f"records_{split}",
            "description": f"The {split} split: one record per VQA item.",
            "key": {"@id": f"records_{split}/record_id"},
            "field": record_fields(f"records_{split}", f"{split}-files"),
        } for split in splits],
    }


def write_croissant(dataset_dir: Path, manifest: dict, stats: dict) -> None:
    atomic_write_json(Path(dataset_dir) / "croissant.json", croissant(dataset_dir, manifest, stats))
