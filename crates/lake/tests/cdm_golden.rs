//! model.json: golden output, documents written by other tools, invalid documents.
//!
//! Regenerate the golden file with `LAKECDP_UPDATE_GOLDEN=1 cargo test -p lakecdp-lake --test cdm_golden`.

mod common;

use std::path::PathBuf;

use arrow::array::{Array, BooleanArray, Int64Array, StringArray};
use arrow::datatypes::DataType;
use lakecdp_lake::cdm::{
    cdm_type_of, Annotation, ArrowTypes, Attribute, CdmDataType, Entity, FileFormatSettings, Model,
    Partition, ARROW_TYPE_ANNOTATION,
};
use lakecdp_lake::partition::{entity_schema, entity_schema_of, read_entity};
use lakecdp_lake::publish::read_model_at;
use lakecdp_lake::Error;

fn golden(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name)
}

fn sample_model() -> Model {
    let types = [
        ("CustomerId", DataType::Utf8),
        ("Age", DataType::Int32),
        ("Score", DataType::Float64),
        ("BirthDate", DataType::Date32),
        (
            "LastSeen",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into())),
        ),
        ("Balance", DataType::Decimal128(18, 2)),
        ("Vip", DataType::Boolean),
    ];
    let mut m = Model::new("Unification");
    m.description = Some("Unified customer profiles".into());
    m.modified_time = Some("2026-01-02T03:04:05.678Z".into());
    m.entities.push(Entity {
        kind: "LocalEntity".into(),
        name: "Customer".into(),
        description: Some("One row per customer".into()),
        annotations: vec![],
        attributes: types
            .iter()
            .map(|(n, t)| Attribute {
                name: n.to_string(),
                data_type: cdm_type_of(t),
                description: None,
                annotations: vec![Annotation { name: ARROW_TYPE_ANNOTATION.into(), value: Some(t.to_string()) }],
                extra: Default::default(),
            })
            .collect(),
        partitions: vec![Partition {
            name: "Customer-20260102T030405678Z-0a1b2c3d".into(),
            location: "https://contoso.dfs.core.windows.net/customerinsights/ci_3fa85f64-5717-4562-b3fc-2c963f66afa6/Unification/Customer/20260102T030405678Z-0a1b2c3d/part-00000.csv".into(),
            refresh_time: Some("2026-01-02T03:04:05.600Z".into()),
            file_format_settings: Some(FileFormatSettings::csv()),
            annotations: vec![],
            extra: Default::default(),
        }],
        extra: Default::default(),
    });
    m
}

#[test]
fn model_json_matches_the_golden_file() {
    let written = String::from_utf8(sample_model().to_json()).unwrap();
    let path = golden("unification-model.json");
    if std::env::var_os("LAKECDP_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &written).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .expect("golden file exists (LAKECDP_UPDATE_GOLDEN=1 writes it)");
    pretty_assertions::assert_eq!(written, expected);
    // and it reads back to the same model
    assert_eq!(
        Model::from_json("golden", written.as_bytes()).unwrap(),
        sample_model()
    );
}

#[test]
fn other_tools_documents_are_read_and_unknown_fields_kept() {
    let bytes = std::fs::read(golden("other-tool-model.json")).unwrap();
    let model = Model::from_json("other-tool-model.json", &bytes).unwrap();
    assert_eq!(model.name, "SalesDataflow");
    assert_eq!(model.culture.as_deref(), Some("en-GB"));
    let customers = model.entity("customers").unwrap();
    let types: Vec<CdmDataType> = customers.attributes.iter().map(|a| a.data_type).collect();
    use CdmDataType::*;
    assert_eq!(
        types,
        [Int64, String, DateTime, Decimal, Guid, Json, Boolean, String]
    );
    assert_eq!(
        customers.partitions[0]
            .file_format_settings
            .as_ref()
            .unwrap()
            .delimiter,
        ";"
    );
    assert!(
        !customers.partitions[0]
            .file_format_settings
            .as_ref()
            .unwrap()
            .column_headers
    );
    assert_eq!(model.entity("Products").unwrap().kind, "ReferenceEntity");
    // unknown fields survive a round trip
    let again: serde_json::Value = serde_json::from_slice(&model.to_json()).unwrap();
    let original: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(again["pbi:mashup"], original["pbi:mashup"]);
    assert_eq!(again["referenceModels"], original["referenceModels"]);
    assert_eq!(
        again["entities"][0]["pbi:refreshPolicy"],
        original["entities"][0]["pbi:refreshPolicy"]
    );
    assert_eq!(again["entities"][0]["attributes"][0]["isHidden"], false);
    assert_eq!(
        again["entities"][1]["modelId"],
        original["entities"][1]["modelId"]
    );
    // the schema follows the default mapping
    let schema = entity_schema(customers);
    assert_eq!(schema.field(0).data_type(), &DataType::Int64);
    assert_eq!(schema.field(4).data_type(), &DataType::Utf8);
}

#[tokio::test]
async fn other_tools_csv_partitions_are_read_from_the_lake() {
    let f = common::local_fixture(true);
    let lake = common::lake(&f);
    let mut model: serde_json::Value =
        serde_json::from_slice(&std::fs::read(golden("other-tool-model.json")).unwrap()).unwrap();
    // keep the attributes the CSV below has
    model["entities"][0]["attributes"] = serde_json::json!([
        { "name": "CustomerID", "dataType": "int64" },
        { "name": "Name", "dataType": "string" },
        { "name": "IsActive", "dataType": "boolean" }
    ]);
    lake.put("Imported/model.json", serde_json::to_vec(&model).unwrap())
        .await
        .unwrap();
    lake.put(
        "Imported/Customers/Part001.csv",
        "1;\"Doe; Jane\";true\n2;Bob;false\n3;;\n",
    )
    .await
    .unwrap();
    let model = read_model_at(&lake, "Imported").await.unwrap().unwrap();
    let batches = read_entity(&lake, "Imported", model.entity("Customers").unwrap())
        .await
        .unwrap();
    let b = &batches[0];
    assert_eq!(b.num_rows(), 3);
    let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(ids.values(), &[1, 2, 3]);
    let names = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
    assert_eq!(names.value(0), "Doe; Jane");
    let active = b.column(2).as_any().downcast_ref::<BooleanArray>().unwrap();
    assert!(active.value(0) && !active.value(1) && active.is_null(2));
}

#[test]
fn invalid_documents_name_the_path_and_the_field() {
    let text = std::fs::read_to_string(golden("other-tool-model.json")).unwrap();
    let bad = text.replace("\"dataType\": \"string\"", "\"dataType\": \"varchar\"");
    let err = Model::from_json("DataIngestion/Crm/model.json", bad.as_bytes()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::InvalidCdm { .. }));
    assert!(
        msg.contains("DataIngestion/Crm/model.json")
            && msg.contains("entities[0].attributes[1].dataType")
            && msg.contains("varchar"),
        "{msg}"
    );

    let err = Model::from_json(
        "m.json",
        br#"{"name": "x", "entities": [{"name": "A"}, {"name": "a"}]}"#,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("entities[1].name") && err.to_string().contains("appears twice"),
        "{err}"
    );

    let err = Model::from_json("m.json", b"{\"entities\": []}").unwrap_err();
    assert!(err.to_string().contains("name"), "{err}");
    assert!(Model::from_json("m.json", b"not json").is_err());
    // a BOM is accepted
    assert!(Model::from_json("m.json", b"\xEF\xBB\xBF{\"name\": \"x\"}").is_ok());
}

#[tokio::test]
async fn a_crafted_deep_arrow_type_annotation_is_an_error_not_a_stack_overflow() {
    let f = common::local_fixture(true);
    let lake = common::lake(&f);
    let deep = format!("{}Int64{}", "List(".repeat(100_000), ")".repeat(100_000));
    let model = serde_json::json!({
        "name": "Imported",
        "version": "1.0",
        "entities": [{
            "$type": "LocalEntity",
            "name": "Customers",
            "attributes": [
                { "name": "Id", "dataType": "int64" },
                { "name": "Tags", "dataType": "json",
                  "annotations": [{ "name": ARROW_TYPE_ANNOTATION, "value": deep }] }
            ],
            "partitions": [{ "name": "p", "location": "Customers/p.csv" }]
        }]
    });
    lake.put("Imported/model.json", serde_json::to_vec(&model).unwrap())
        .await
        .unwrap();
    lake.put("Imported/Customers/p.csv", "1,a\n").await.unwrap();
    let model = read_model_at(&lake, "Imported").await.unwrap().unwrap();
    let entity = model.entity("Customers").unwrap();
    let err = read_entity(&lake, "Imported", entity).await.unwrap_err();
    assert!(
        matches!(&err, Error::ArrowTypeAnnotation { attribute, .. } if attribute == "Tags"),
        "{err}"
    );
    assert!(err.to_string().contains("remove the annotation"), "{err}");
    // someone else's document: the annotation is not read at all
    let schema = entity_schema_of(entity, ArrowTypes::CdmOnly).unwrap();
    assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
    // the infallible schema of the lake's own tables leaves it out
    assert_eq!(entity_schema(entity).field(1).data_type(), &DataType::Utf8);
}
