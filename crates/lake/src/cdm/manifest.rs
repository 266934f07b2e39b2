//! `default.manifest.cdm.json` and entity definition documents, written beside every
//! `model.json`: the manifest format declares a Parquet partition with the
//! `is.partition.format.parquet` trait, which `model.json` cannot, and its locations are
//! relative to the folder, so a copied folder stays readable.
//!
//! These documents are derived from `model.json` and written after it; `model.json`
//! stays the commit point of a publish.

use serde_json::{json, Value};

use super::model::{Entity, Model};

/// The manifest file name.
pub const MANIFEST: &str = "default.manifest.cdm.json";

/// The manifest document for a model, with partition locations relative to the folder.
pub fn manifest_for(model: &Model, relative_location: impl Fn(&str) -> String) -> Value {
    let entities: Vec<Value> = model
        .entities
        .iter()
        .map(|e| {
            let partitions: Vec<Value> = e
                .partitions
                .iter()
                .map(|p| {
                    let mut v =
                        json!({ "name": p.name, "location": relative_location(&p.location) });
                    if let Some(t) = &p.refresh_time {
                        v["lastFileModifiedTime"] = json!(t);
                    }
                    let trait_ref = if p.is_parquet() {
                        json!({ "traitReference": "is.partition.format.parquet" })
                    } else {
                        json!({
                            "traitReference": "is.partition.format.CSV",
                            "arguments": [
                                { "name": "columnHeaders", "value": "true" },
                                { "name": "delimiter", "value": "," }
                            ]
                        })
                    };
                    v["exhibitsTraits"] = json!([trait_ref]);
                    v
                })
                .collect();
            json!({
                "type": "LocalEntity",
                "entityName": e.name,
                "entityPath": format!("{}.cdm.json/{}", e.name, e.name),
                "dataPartitions": partitions,
            })
        })
        .collect();
    json!({
        "jsonSchemaSemanticVersion": "1.0.0",
        "imports": [{ "corpusPath": "cdm:/foundations.cdm.json" }],
        "manifestName": "default",
        "explanation": model.description.clone().unwrap_or_else(|| model.name.clone()),
        "lastFileModifiedTime": model.modified_time,
        "entities": entities,
        "relationships": [],
    })
}

/// The `<Entity>.cdm.json` definition document of an entity.
pub fn entity_definition(entity: &Entity) -> Value {
    let attributes: Vec<Value> = entity
        .attributes
        .iter()
        .map(|a| json!({ "name": a.name, "dataFormat": a.data_type.data_format() }))
        .collect();
    json!({
        "jsonSchemaSemanticVersion": "1.0.0",
        "imports": [{ "corpusPath": "cdm:/foundations.cdm.json" }],
        "definitions": [{ "entityName": entity.name, "hasAttributes": attributes }],
    })
}
