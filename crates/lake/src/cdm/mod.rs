//! CDM folders: `model.json` (the only code that knows its JSON shape), the
//! `default.manifest.cdm.json` written beside it, the Spark JSON schema Delta Sharing
//! states an entity with, and the one table that maps Arrow types to CDM data types and
//! back.

mod manifest;
mod model;
mod spark;
mod types;

pub use manifest::{entity_definition, manifest_for, MANIFEST};
pub use model::{
    cdm_time, Annotation, Attribute, Entity, FileFormatSettings, Model, Partition,
    FORMAT_ANNOTATION, MODEL_JSON,
};
pub use spark::{spark_schema, spark_type};
pub use types::{
    cdm_type_of, default_arrow_type, ArrowTypes, CdmDataType, ARROW_TYPE_ANNOTATION,
    MAX_ARROW_TYPE_DEPTH, MAX_ARROW_TYPE_LEN,
};
