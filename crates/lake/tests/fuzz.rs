//! Property-based fuzzing of the `model.json` reader, which reads documents written by
//! anyone (a partner's CDM folder) as well as lakecdp's own: whatever the bytes, it
//! returns a model or a named error and never panics; the Arrow type of every attribute
//! of a model it accepts is a type or an error, whether annotations are trusted or not;
//! and a model it accepts reads back the same after writing.
//!
//! Case counts are bounded so CI stays quick; `scripts/fuzz.sh` runs these targets for
//! minutes with `LAKECDP_FUZZ_CASES`.

use lakecdp_lake::cdm::{ArrowTypes, Model};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Cases per target: `LAKECDP_FUZZ_CASES`, or a bounded default.
fn cases() -> u32 {
    std::env::var("LAKECDP_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Arrow type annotations, well-formed and hostile.
fn arrow_type() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        "Int64",
        "Utf8",
        "Float64",
        "Boolean",
        "Date32",
        "Decimal128(38, 10)",
        "Decimal128(99, 99)",
        "Timestamp(Microsecond, Some(\"UTC\"))",
        "Timestamp(Second, None)",
        "Dictionary(Int32, Utf8)",
        "FixedSizeBinary(-1)",
        "Nope",
        "",
        "(",
        ")",
        "List(",
        "\u{0}",
        "Int64)",
    ])
    .prop_map(str::to_string);
    (leaf, 0usize..200, any::<bool>()).prop_map(|(inner, depth, list)| {
        let open = if list { "List(" } else { "LargeList(" };
        format!("{}{inner}{}", open.repeat(depth), ")".repeat(depth))
    })
}

fn attribute() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["Id", "Name", "", "é", "a b", "Id"]),
        prop::sample::select(vec![
            "string", "int64", "double", "dateTime", "decimal", "boolean", "unknown", "",
        ]),
        prop::option::of(arrow_type()),
    )
        .prop_map(|(name, data_type, annotation)| {
            let mut a = json!({"name": name, "dataType": data_type});
            if let Some(t) = annotation {
                a["annotations"] = json!([{"name": "lakecdp:arrowType", "value": t}]);
            }
            a
        })
}

fn partition() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        "https://acct.dfs.core.windows.net/c/f/p.csv",
        "file:///etc/passwd",
        "../../x.csv",
        "p.csv",
        "",
        "%2E%2E/x",
        "s3://b/k",
    ])
    .prop_map(|location| json!({"name": "p", "location": location}))
}

/// Documents of the right shape with arbitrary choices inside.
fn document() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["Customer", "Orders", "", "customer"]),
            prop::collection::vec(attribute(), 0..6),
            prop::collection::vec(partition(), 0..3),
        ),
        0..4,
    )
    .prop_map(|entities| {
        let entities: Vec<Value> = entities
            .into_iter()
            .map(|(name, attributes, partitions)| {
                json!({"$type": "LocalEntity", "name": name, "attributes": attributes,
                       "partitions": partitions})
            })
            .collect();
        serde_json::to_vec(&json!({"name": "m", "version": "1.0", "entities": entities})).unwrap()
    })
}

/// Valid documents cut short or with a byte changed.
fn damaged() -> impl Strategy<Value = Vec<u8>> {
    (
        document(),
        any::<prop::sample::Index>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(mut bytes, at, byte, cut)| {
            if bytes.is_empty() {
                return bytes;
            }
            let i = at.index(bytes.len());
            if cut {
                bytes.truncate(i);
            } else {
                bytes[i] = byte;
            }
            bytes
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_bytes_read_as_a_model_or_a_named_error(bytes in prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        document(),
        damaged(),
    ]) {
        match Model::from_json("fuzz/model.json", &bytes) {
            Ok(model) => {
                for entity in &model.entities {
                    for attribute in &entity.attributes {
                        let _ = attribute.arrow_type(ArrowTypes::Annotated);
                        prop_assert!(attribute.arrow_type(ArrowTypes::CdmOnly).is_ok());
                    }
                }
                let again = Model::from_json("fuzz/model.json", &model.to_json());
                prop_assert_eq!(again.ok(), Some(model));
            }
            Err(e) => prop_assert!(e.to_string().contains("fuzz/model.json"), "{}", e),
        }
    }
}

#[test]
fn a_deeply_nested_document_is_an_error_not_a_stack_overflow() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let text = format!("{{\"name\": \"m\", \"entities\": [], \"x\": {deep}}}");
    assert!(Model::from_json("deep/model.json", text.as_bytes()).is_err());
}
