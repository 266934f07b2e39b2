//! Reading declared source tables: finding their files (local paths and globs, or
//! remote objects streamed into a spool folder), turning CDM folder tables into plain
//! ones, and inferring schemas from a sample.

mod cdm;
mod confine;
pub mod delta;
mod fetch;
pub mod incremental;
mod infer;

pub use cdm::prepare;
pub use fetch::{fetch, is_remote, list, local_files, Fetched, SourceFile};
pub use infer::{column_type_of, declarations, effective_columns, infer_schema, SAMPLE_RECORDS};

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::DataType;
    use lakecdp_core::{ColumnSpec, ColumnType, SourceFormat, TableSpec};

    fn table(location: &str, format: SourceFormat) -> TableSpec {
        TableSpec {
            name: "T".into(),
            location: location.into(),
            format,
            primary_key: None,
            last_updated: None,
            csv: None,
            entity: None,
            schema: vec![],
            incremental: false,
        }
    }

    /// The inferred schema of a table, as `name:type` items.
    async fn inferred(dir: &std::path::Path, location: &str, format: SourceFormat) -> Vec<String> {
        let t = table(location, format);
        let files = fetch(&t, None, dir)
            .await
            .unwrap()
            .download()
            .await
            .unwrap();
        let schema = infer_schema(&t, &files).await.unwrap();
        declarations(&schema)
            .iter()
            .map(|c| format!("{}:{}", c.name, c.column_type))
            .collect()
    }

    #[tokio::test]
    async fn schemas_are_inferred_for_csv_jsonl_and_parquet() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.csv"),
            "Id,Name,Score,Joined,Active,Seen\n1,Ann,1.5,2024-01-02,true,2024-01-02T10:00:00Z\n2,\"Smith, Bob\",2,2024-02-03,false,\n",
        )
        .unwrap();
        assert_eq!(
            inferred(dir.path(), "*.csv", SourceFormat::Csv).await,
            [
                "Id:int64",
                "Name:string",
                "Score:double",
                "Joined:date",
                "Active:boolean",
                "Seen:datetime"
            ]
        );

        std::fs::write(
            dir.path().join("m.jsonl"),
            "{\"id\": 1, \"tier\": \"Gold\"}\n{\"id\": 2, \"tier\": null}\n",
        )
        .unwrap();
        assert_eq!(
            inferred(dir.path(), "m.jsonl", SourceFormat::Jsonl).await,
            ["id:int64", "tier:string"]
        );

        let err = fetch(&table("none-*.csv", SourceFormat::Csv), None, dir.path())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("no file matches `none-*.csv`"),
            "{err}"
        );
        let err = fetch(
            &table("s3://bucket/x.csv", SourceFormat::Csv),
            None,
            dir.path(),
        )
        .await
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("needs the source's `access` settings"),
            "{err}"
        );
    }

    #[test]
    fn declared_types_win() {
        let mut t = table("x", SourceFormat::Csv);
        t.schema = vec![ColumnSpec {
            name: "Id".into(),
            column_type: ColumnType::String,
        }];
        let inferred = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("Id", DataType::Int64, true),
            arrow::datatypes::Field::new("N", DataType::Float64, true),
        ]));
        let cols = effective_columns(&t, &inferred);
        assert_eq!(cols[0].column_type, ColumnType::String);
        assert_eq!(cols[1].column_type, ColumnType::Double);
    }
}
