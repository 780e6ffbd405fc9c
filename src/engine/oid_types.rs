//! Object identifiers (`oid`, `regclass`, `regtype`, ...) as PostgreSQL types on the wire.
//!
//! Arrow has no oid type: the catalog holds oids as `Int32` fields marked with arrow-pg's
//! `pg.oid_alias` metadata, which arrow-pg reports as `oid` (26) and kin. Two things lose
//! the mark, and clients notice: an `array_agg` of oids, which PostgreSQL types `oid[]`
//! (asyncpg's type introspection reads `array_agg(atttypid)` and can only decode it as
//! `oid[]`: an `int4[]` there sends it into introspecting `int4[]` with itself), and
//! columns the catalog computes. Here an `oid[]` column is found by following the plan
//! ([`is_oid_array_column`]), its description carries the mark on the list's element
//! field, and [`wire_array_type`] reports such a list as the matching array type.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_pg::datatypes::PG_OID_ALIAS_KEY;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema};
use datafusion::logical_expr::expr::{AggregateFunction, Cast};
use datafusion::logical_expr::{Expr, ExprSchemable, LogicalPlan};
use pgwire::api::Type;

/// An `Int32` field marked as the oid-alias type `kind` (`"oid"`, `"regtype"`, ...).
pub fn oid_field(kind: &str, nullable: bool) -> FieldRef {
    Arc::new(
        Field::new("", DataType::Int32, nullable).with_metadata(HashMap::from([(
            PG_OID_ALIAS_KEY.to_string(),
            kind.to_string(),
        )])),
    )
}

/// `expr` (an `Int32`) typed as `oid`. The cast's target must say whether `expr` can be
/// NULL: DataFusion's logical schema takes the source's nullability, its physical one
/// the target's as well, and the two must agree.
pub fn as_oid(expr: Expr, nullable: bool) -> Expr {
    Expr::Cast(Cast::new_from_field(
        Box::new(expr),
        oid_field("oid", nullable),
    ))
}

/// The oid-alias kind `field` is marked with.
fn alias_kind(field: &Field) -> Option<&str> {
    field.metadata().get(PG_OID_ALIAS_KEY).map(String::as_str)
}

/// A list of `element`, keeping its oid mark (`nullable`: see [`as_oid`]).
fn list_of(element: &Field, nullable: bool) -> FieldRef {
    let item =
        Field::new_list_field(DataType::Int32, true).with_metadata(element.metadata().clone());
    Arc::new(Field::new("", DataType::List(Arc::new(item)), nullable))
}

/// The PostgreSQL array type of a list whose elements are marked oids.
pub fn wire_array_type(data_type: &DataType) -> Option<Type> {
    let DataType::List(item) = data_type else {
        return None;
    };
    Some(match alias_kind(item)? {
        "oid" => Type::OID_ARRAY,
        "regclass" => Type::REGCLASS_ARRAY,
        "regtype" => Type::REGTYPE_ARRAY,
        "regproc" => Type::REGPROC_ARRAY,
        "regprocedure" => Type::REGPROCEDURE_ARRAY,
        "regnamespace" => Type::REGNAMESPACE_ARRAY,
        "regrole" => Type::REGROLE_ARRAY,
        _ => Type::OID_ARRAY,
    })
}

/// Whether output column `index` of `plan` is an `array_agg` of marked oids, followed
/// through the plan (projections, subquery aliases, `CASE`, scalar subqueries, unions,
/// recursive queries, joins): PostgreSQL types such a column `oid[]`. The plan itself
/// keeps the plain `int4` list (a marked list type would differ from the unmarked `NULL`
/// of a `CASE` or a union's other side); only the column's description says `oid[]`.
pub fn is_oid_array_column(plan: &LogicalPlan, index: usize) -> bool {
    match plan {
        LogicalPlan::Projection(p) => p
            .expr
            .get(index)
            .is_some_and(|e| is_oid_array_expr(e, &p.input)),
        LogicalPlan::Aggregate(a) => {
            let groups = a.schema.fields().len() - a.aggr_expr.len();
            match index.checked_sub(groups) {
                Some(j) => a
                    .aggr_expr
                    .get(j)
                    .is_some_and(|e| is_oid_array_expr(e, &a.input)),
                None => a
                    .group_expr
                    .get(index)
                    .is_some_and(|e| is_oid_array_expr(e, &a.input)),
            }
        }
        LogicalPlan::Union(u) => u.inputs.iter().any(|i| is_oid_array_column(i, index)),
        LogicalPlan::RecursiveQuery(r) => is_oid_array_column(&r.static_term, index),
        LogicalPlan::Join(j) => {
            let left = j.left.schema().fields().len();
            if index < left {
                is_oid_array_column(&j.left, index)
            } else {
                is_oid_array_column(&j.right, index - left)
            }
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Distinct(_)
        | LogicalPlan::Repartition(_) => plan
            .inputs()
            .first()
            .is_some_and(|i| is_oid_array_column(i, index)),
        _ => false,
    }
}

fn is_oid_array_expr(expr: &Expr, input: &LogicalPlan) -> bool {
    match expr {
        Expr::Alias(a) => is_oid_array_expr(&a.expr, input),
        Expr::Column(c) => input
            .schema()
            .maybe_index_of_column(c)
            .is_some_and(|i| is_oid_array_column(input, i)),
        Expr::Case(case) => {
            case.when_then_expr
                .iter()
                .any(|(_, then)| is_oid_array_expr(then, input))
                || case
                    .else_expr
                    .as_ref()
                    .is_some_and(|e| is_oid_array_expr(e, input))
        }
        Expr::ScalarSubquery(q) => is_oid_array_column(&q.subquery, 0),
        Expr::AggregateFunction(AggregateFunction { func, params }) => {
            func.name() == "array_agg"
                && params.args.first().is_some_and(|arg| {
                    arg.to_field(input.schema()).is_ok_and(|(_, f)| {
                        f.data_type() == &DataType::Int32 && alias_kind(&f).is_some()
                    })
                })
        }
        _ => false,
    }
}

/// `schema`, the output of `plan`, with each `oid[]` column (see
/// [`is_oid_array_column`]) described as a list of marked oids.
pub fn describe_oid_arrays(plan: &LogicalPlan, schema: Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if f.data_type() == &list_of_int4() && is_oid_array_column(plan, i) {
                let element = oid_field("oid", true);
                f.as_ref()
                    .clone()
                    .with_data_type(list_of(&element, true).data_type().clone())
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

fn list_of_int4() -> DataType {
    DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marked_lists_are_oid_arrays() {
        let oids = list_of(&oid_field("oid", true), true);
        assert_eq!(wire_array_type(oids.data_type()), Some(Type::OID_ARRAY));
        let types = list_of(&oid_field("regtype", false), false);
        assert_eq!(
            wire_array_type(types.data_type()),
            Some(Type::REGTYPE_ARRAY)
        );
        let plain = DataType::List(Arc::new(Field::new_list_field(DataType::Int32, true)));
        assert_eq!(wire_array_type(&plain), None);
        assert_eq!(wire_array_type(&DataType::Int32), None);
    }
}
