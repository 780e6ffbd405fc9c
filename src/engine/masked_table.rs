//! A channel table whose identifier columns are masked for sessions of role `read`.
//!
//! The wrapper sits in the shared catalog for everyone; whether it masks is decided per
//! scan, from the [`MaskPolicy`] in the scanning session's config (set only for role
//! `read`). Views keep their plans over this provider, so `identities` and every view
//! over a channel are masked for a read session and raw for the others. Filters on a
//! masked column are never handed to the file scan in a masked session: they are
//! evaluated above the mask, on the masked values, so no query can probe raw values.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::{
    Cast, ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TableProviderFilterPushDown, Volatility, col, lit,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::projection::ProjectionExec;

use crate::security::MaskPolicy;
use crate::security::masking::MaskFn;

/// The masking policy of the session behind a scan, when it masks anything.
pub fn session_mask(state: &dyn Session) -> Option<Arc<MaskPolicy>> {
    state
        .config()
        .get_extension::<MaskPolicy>()
        .filter(|p| !p.is_empty())
}

/// A table provider with some columns masked for masked sessions.
#[derive(Debug)]
pub struct MaskedTable {
    inner: Arc<dyn TableProvider>,
    /// `(column index, mask)`, by the inner schema's indices.
    masked: Vec<(usize, MaskFn)>,
}

impl MaskedTable {
    /// The table whose columns are masked.
    pub fn inner(&self) -> &Arc<dyn TableProvider> {
        &self.inner
    }

    /// Wrap `inner`, masking the named columns; `inner` itself when none of them exist.
    pub fn wrap(
        inner: Arc<dyn TableProvider>,
        columns: &[(String, MaskFn)],
    ) -> Arc<dyn TableProvider> {
        let schema = inner.schema();
        let masked: Vec<(usize, MaskFn)> = columns
            .iter()
            .filter_map(|(name, f)| schema.index_of(name).ok().map(|i| (i, *f)))
            .collect();
        if masked.is_empty() {
            return inner;
        }
        Arc::new(Self { inner, masked })
    }

    fn mask_of(&self, index: usize) -> Option<MaskFn> {
        self.masked
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, f)| *f)
    }

    fn touches_masked(&self, expr: &Expr) -> bool {
        let schema = self.inner.schema();
        expr.column_refs().iter().any(|c| {
            schema
                .index_of(c.name())
                .is_ok_and(|i| self.mask_of(i).is_some())
        })
    }
}

#[async_trait]
impl TableProvider for MaskedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // A filter on a masked column must also be applied above the scan, where a masked
        // session sees masked values.
        let inner = self.inner.supports_filters_pushdown(filters)?;
        Ok(inner
            .into_iter()
            .zip(filters)
            .map(|(support, f)| match support {
                TableProviderFilterPushDown::Exact if self.touches_masked(f) => {
                    TableProviderFilterPushDown::Inexact
                }
                other => other,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if session_mask(state).is_none() {
            return self.inner.scan(state, projection, filters, limit).await;
        }
        let kept: Vec<Expr> = filters
            .iter()
            .filter(|f| !self.touches_masked(f))
            .cloned()
            .collect();
        let input = self.inner.scan(state, projection, &kept, limit).await?;
        let schema = self.inner.schema();
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..schema.fields().len()).collect(),
        };
        let input_schema = input.schema();
        let df_schema = DFSchema::try_from(input_schema.as_ref().clone())?;
        let mut exprs = Vec::with_capacity(indices.len());
        for (pos, &index) in indices.iter().enumerate() {
            let field = input_schema.field(pos);
            let column = col(format!("\"{}\"", field.name()));
            let expr = match self.mask_of(index) {
                None => column,
                Some(f) => masked(column, f, field.data_type())?,
            };
            let physical = state.create_physical_expr(expr, &df_schema)?;
            exprs.push((physical, field.name().clone()));
        }
        Ok(Arc::new(ProjectionExec::try_new(exprs, input)?))
    }
}

/// `mask(column)` keeping the column's type: text types are masked, anything else (a
/// number holding a phone) is hidden as NULL rather than shown.
fn masked(column: Expr, f: MaskFn, data_type: &DataType) -> Result<Expr> {
    let is_text = matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    );
    if !is_text {
        return Ok(lit(ScalarValue::try_from(data_type)?));
    }
    let as_text = |e: Expr, to: &DataType| Expr::Cast(Cast::new(Box::new(e), to.clone()));
    let udf = ScalarUDF::new_from_impl(MaskUdf::new(f));
    let out = udf.call(vec![as_text(column, &DataType::Utf8)]);
    Ok(if data_type == &DataType::Utf8 {
        out
    } else {
        as_text(out, data_type)
    })
}

/// The mask as a scalar over text.
#[derive(Debug, PartialEq, Eq, Hash)]
struct MaskUdf {
    f: MaskFn,
    signature: Signature,
}

impl MaskUdf {
    fn new(f: MaskFn) -> Self {
        Self {
            f,
            signature: Signature::exact(vec![DataType::Utf8], Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for MaskUdf {
    fn name(&self) -> &str {
        self.f.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let array = args.args[0].to_array(args.number_rows)?;
        let array = cast(&array, &DataType::Utf8)?;
        let strings = array
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| DataFusionError::Internal("mask: expected text".into()))?;
        let out: StringArray = strings
            .iter()
            .map(|v| v.and_then(|v| self.f.apply(v)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out) as ArrayRef))
    }
}
