//! lakecdp's functions in plans: unification's normalisations and comparators as scalar
//! functions. Every session registers them ([`register`]), and so do a cluster's
//! scheduler and executors ([`crate::cluster`]), so a plan that calls them runs the same
//! on one machine and on a cluster.
//!
//! - `lakecdp_normalize(value, steps)`: `value` normalised by `steps`, the project
//!   file's names of normalisations separated by commas (`'unicode_to_ascii,lowercase,
//!   whitespace'`), exactly as unification normalises it.
//! - `lakecdp_similarity(a, b, comparator)`: the similarity (0 to 1) of two normalised
//!   values by `exact`, `jaro_winkler`, `levenshtein`, `numeric` or `date`.
//!
//! A null argument gives null. `steps` and `comparator` are read once per batch when
//! they are constants.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Float64Builder, StringArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{exec_err, Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use lakecdp_core::unify::Normalization;
use lakecdp_match::compare::{similarity, Comparator};
use lakecdp_match::normalize::Normalizer;

/// The name of the normalising function.
pub const NORMALIZE: &str = "lakecdp_normalize";
/// The name of the comparing function.
pub const SIMILARITY: &str = "lakecdp_similarity";

/// Every function of lakecdp.
pub fn all() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::new_from_impl(Normalize::new())),
        Arc::new(ScalarUDF::new_from_impl(Similarity::new())),
    ]
}

/// Register every function of lakecdp in `ctx`.
pub fn register(ctx: &SessionContext) {
    for f in all() {
        ctx.register_udf((*f).clone());
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Normalize {
    signature: Signature,
}

impl Normalize {
    fn new() -> Self {
        Self {
            signature: Signature::string(2, Volatility::Immutable),
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Similarity {
    signature: Signature,
}

impl Similarity {
    fn new() -> Self {
        Self {
            signature: Signature::string(3, Volatility::Immutable),
        }
    }
}

/// The steps a `steps` argument names.
fn steps_of(text: &str) -> DfResult<Vec<Normalization>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|step| {
            serde_json::from_value::<Normalization>(serde_json::Value::String(step.into()))
                .or_else(|_| {
                    exec_err!("{NORMALIZE}: `{step}` is not a normalisation (e.g. `lowercase`, `unicode_to_ascii`, `whitespace`, `phone`, `name`)")
                })
        })
        .collect()
}

/// The name plans give comparator `c` (what [`comparator_of`] reads).
pub(crate) fn comparator_name(c: Comparator) -> &'static str {
    match c {
        Comparator::Exact => "exact",
        Comparator::JaroWinkler => "jaro_winkler",
        Comparator::Levenshtein => "levenshtein",
        Comparator::Numeric => "numeric",
        Comparator::Date => "date",
    }
}

pub(crate) fn comparator_of(name: &str) -> DfResult<Comparator> {
    Ok(match name.trim() {
        "exact" => Comparator::Exact,
        "jaro_winkler" => Comparator::JaroWinkler,
        "levenshtein" => Comparator::Levenshtein,
        "numeric" => Comparator::Numeric,
        "date" => Comparator::Date,
        other => {
            return exec_err!(
                "{SIMILARITY}: `{other}` is not a comparator: use exact, jaro_winkler, levenshtein, numeric or date"
            )
        }
    })
}

/// An argument as a text array of `rows` values.
fn text(arg: &ColumnarValue, rows: usize) -> DfResult<StringArray> {
    let array: ArrayRef = arg.to_array(rows)?;
    let array = arrow::compute::cast(&array, &DataType::Utf8)?;
    match array.as_any().downcast_ref::<StringArray>() {
        Some(a) => Ok(a.clone()),
        None => exec_err!("a text argument did not become text"),
    }
}

/// A constant text argument, if it is one.
fn constant(arg: &ColumnarValue) -> Option<Option<String>> {
    match arg {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(v) | ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v),
        ) => Some(v.clone()),
        _ => None,
    }
}

impl ScalarUDFImpl for Normalize {
    fn name(&self) -> &str {
        NORMALIZE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [value, steps] = args.args.as_slice() else {
            return exec_err!("{NORMALIZE} takes a value and its steps");
        };
        let rows = args.number_rows;
        let values = text(value, rows)?;
        let mut out = StringBuilder::with_capacity(rows, values.value_data().len());
        let (mut buffer, mut scratch) = (String::new(), String::new());
        match constant(steps) {
            Some(None) => return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None))),
            Some(Some(steps)) => {
                let normalizer = Normalizer::new(&steps_of(&steps)?);
                for v in values.iter() {
                    match v {
                        Some(v) => {
                            normalizer.apply_into(v, &mut buffer, &mut scratch);
                            out.append_value(&buffer);
                        }
                        None => out.append_null(),
                    }
                }
            }
            None => {
                let steps = text(steps, rows)?;
                for (v, s) in values.iter().zip(steps.iter()) {
                    match (v, s) {
                        (Some(v), Some(s)) => {
                            let normalizer = Normalizer::new(&steps_of(s)?);
                            normalizer.apply_into(v, &mut buffer, &mut scratch);
                            out.append_value(&buffer);
                        }
                        _ => out.append_null(),
                    }
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

impl ScalarUDFImpl for Similarity {
    fn name(&self) -> &str {
        SIMILARITY
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let [a, b, comparator] = args.args.as_slice() else {
            return exec_err!("{SIMILARITY} takes two values and a comparator");
        };
        let rows = args.number_rows;
        let (a, b) = (text(a, rows)?, text(b, rows)?);
        let mut out = Float64Builder::with_capacity(rows);
        match constant(comparator) {
            Some(None) => return Ok(ColumnarValue::Scalar(ScalarValue::Float64(None))),
            Some(Some(name)) => {
                let c = comparator_of(&name)?;
                for (x, y) in a.iter().zip(b.iter()) {
                    match (x, y) {
                        (Some(x), Some(y)) => out.append_value(similarity(c, x, y)),
                        _ => out.append_null(),
                    }
                }
            }
            None => {
                let names = text(comparator, rows)?;
                for ((x, y), name) in a.iter().zip(b.iter()).zip(names.iter()) {
                    match (x, y, name) {
                        (Some(x), Some(y), Some(name)) => {
                            out.append_value(similarity(comparator_of(name)?, x, y))
                        }
                        _ => out.append_null(),
                    }
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::util::pretty::pretty_format_batches;

    #[tokio::test]
    async fn the_functions_normalise_and_compare_as_unification_does() {
        let ctx = SessionContext::new();
        register(&ctx);
        let batches = ctx
            .sql(
                "SELECT lakecdp_normalize('  Bob  ÉLAN ', 'name,unicode_to_ascii,lowercase,whitespace') AS n, \
                 lakecdp_similarity('martha', 'marhta', 'jaro_winkler') AS jw, \
                 lakecdp_similarity('2024-03-01', '2024-01-03', 'date') AS d, \
                 lakecdp_similarity(NULL, 'x', 'exact') AS missing",
            )
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = pretty_format_batches(&batches).unwrap().to_string();
        let expected_name = lakecdp_match::normalize::normalize(
            "  Bob  ÉLAN ",
            &steps_of("name,unicode_to_ascii,lowercase,whitespace").unwrap(),
        );
        assert!(text.contains(&format!("| {expected_name} ")), "{text}");
        let jw = similarity(Comparator::JaroWinkler, "martha", "marhta");
        assert!(text.contains(&jw.to_string()), "{text}");
        assert!(text.contains("| 0.9 "), "day and month swapped: {text}");
    }

    #[tokio::test]
    async fn unknown_steps_and_comparators_are_named() {
        let ctx = SessionContext::new();
        register(&ctx);
        for (sql, says) in [
            (
                "SELECT lakecdp_normalize('a', 'lowercase,shout')",
                "`shout` is not a normalisation",
            ),
            (
                "SELECT lakecdp_similarity('a', 'b', 'soundex')",
                "`soundex` is not a comparator",
            ),
        ] {
            let err = ctx.sql(sql).await.unwrap().collect().await.unwrap_err();
            assert!(err.to_string().contains(says), "{err}");
        }
    }
}
