//! `pg_roles` and `pg_auth_members` from the configured users, so `\du` and tools that
//! list roles see who can log in and which of them is an admin.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int32Array, StringArray, new_null_array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::Result;
use datafusion::datasource::MemTable;

use crate::security::Role;

/// The first oid PostgreSQL gives user-created objects; users are numbered from it.
const FIRST_USER_OID: i32 = 16384;

/// `pg_roles` (in the crate's column layout `schema`) with one row per user.
pub fn pg_roles(schema: SchemaRef, users: &[(String, Role)]) -> Result<Arc<dyn TableProvider>> {
    let n = users.len();
    let flag = |f: &dyn Fn(Role) -> bool| -> ArrayRef {
        Arc::new(
            users
                .iter()
                .map(|(_, r)| Some(f(*r)))
                .collect::<BooleanArray>(),
        )
    };
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|field| -> Result<ArrayRef> {
            Ok(match field.name().as_str() {
                "rolname" => Arc::new(StringArray::from_iter_values(
                    users.iter().map(|(name, _)| name.as_str()),
                )),
                "rolsuper" | "rolcreaterole" | "rolcreatedb" => flag(&|r| r == Role::Admin),
                "rolinherit" | "rolcanlogin" => flag(&|_| true),
                "rolreplication" | "rolbypassrls" => flag(&|_| false),
                "rolconnlimit" => Arc::new(Int32Array::from(vec![-1; n])),
                "rolpassword" => Arc::new(StringArray::from(vec!["********"; n])),
                "oid" if field.data_type() == &DataType::Int32 => Arc::new(
                    Int32Array::from_iter_values((0..n as i32).map(|i| FIRST_USER_OID + i)),
                ),
                _ => new_null_array(field.data_type(), n),
            })
        })
        .collect::<Result<_>>()?;
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// `pg_auth_members`: no role is a member of another (roles here are not nested).
pub fn pg_auth_members() -> Result<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("oid", DataType::Int32, false),
        Field::new("roleid", DataType::Int32, false),
        Field::new("member", DataType::Int32, false),
        Field::new("grantor", DataType::Int32, false),
        Field::new("admin_option", DataType::Boolean, false),
    ]));
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![]])?))
}
