//! Role checks before a statement runs: role `read` may query, call functions, use
//! temporary tables and change its session settings; anything that writes a stored
//! object (table, schema, view) or the server's files needs `write` (42501 otherwise).

use datafusion::common::TableReference;
use datafusion::logical_expr::{DdlStatement, LogicalPlan};

use super::copy::CopyStatement;
use super::session::{Planned, Session};
use crate::error::{UserqlError, sqlstate};

impl Session {
    /// Refuse a statement the session's role may not run.
    pub(super) fn check_privileges(&self, planned: &Planned) -> Result<(), UserqlError> {
        if self.access().role.can_write() {
            return Ok(());
        }
        let refused = match planned {
            Planned::Utility(_) => None,
            Planned::Rename { from, .. } => Some(format!("rename \"{from}\"")),
            Planned::Copy(CopyStatement::From(copy)) => {
                (!self.is_temporary(&copy.table)).then(|| format!("COPY into \"{}\"", copy.table))
            }
            Planned::Copy(CopyStatement::To { .. }) => None,
            Planned::Query { plan, .. } => match plan {
                LogicalPlan::Dml(dml) => (!self.is_temporary(&dml.table_name))
                    .then(|| format!("{} \"{}\"", dml.op, dml.table_name)),
                LogicalPlan::Ddl(ddl) => self.refused_ddl(ddl),
                LogicalPlan::Copy(_) => Some("COPY ... TO a server file".to_string()),
                _ => None,
            },
        };
        match refused {
            None => Ok(()),
            Some(what) => Err(UserqlError::new(
                sqlstate::INSUFFICIENT_PRIVILEGE,
                format!(
                    "permission denied to {what}: user \"{}\" has role read",
                    self.user()
                ),
            )
            .with_hint(
                "role read may run SELECT and the functions, use temporary tables and SET; \
                 writing tables, schemas and views needs role write",
            )),
        }
    }

    fn refused_ddl(&self, ddl: &DdlStatement) -> Option<String> {
        match ddl {
            DdlStatement::CreateMemoryTable(create) if create.temporary => None,
            DdlStatement::DropTable(drop) if self.is_temporary(&drop.name) => None,
            DdlStatement::CreateMemoryTable(c) => Some(format!("create table \"{}\"", c.name)),
            DdlStatement::CreateView(v) => Some(format!("create view \"{}\"", v.name)),
            DdlStatement::CreateCatalogSchema(s) => {
                Some(format!("create schema \"{}\"", s.schema_name))
            }
            DdlStatement::DropTable(d) => Some(format!("drop table \"{}\"", d.name)),
            DdlStatement::DropView(d) => Some(format!("drop view \"{}\"", d.name)),
            DdlStatement::DropCatalogSchema(d) => Some(format!("drop schema \"{}\"", d.name)),
            DdlStatement::CreateExternalTable(c) => {
                Some(format!("create external table \"{}\"", c.name))
            }
            other => Some(other.name().to_lowercase()),
        }
    }

    /// With users configured, `SET SESSION AUTHORIZATION` / `SET ROLE` to another user
    /// would make `current_user` lie about who is connected: only the session's own name
    /// (or a reset) is accepted, whatever the role.
    pub(super) fn check_identity_setting(
        &self,
        canonical: &str,
        value: Option<&str>,
    ) -> Result<(), UserqlError> {
        if self.engine().users().is_empty()
            || !matches!(canonical, "session_authorization" | "role")
        {
            return Ok(());
        }
        let wanted = value.map(|v| v.trim().trim_matches('\'').to_string());
        match wanted.as_deref() {
            None | Some("") => Ok(()),
            Some(v)
                if v == self.user()
                    || v.eq_ignore_ascii_case("default")
                    || v.eq_ignore_ascii_case("none") =>
            {
                Ok(())
            }
            Some(v) => Err(UserqlError::new(
                sqlstate::INSUFFICIENT_PRIVILEGE,
                format!(
                    "permission denied to set {canonical} \"{v}\": this session is user \"{}\"",
                    self.user()
                ),
            )),
        }
    }

    fn is_temporary(&self, table: &TableReference) -> bool {
        self.rel_name(table)
            .is_ok_and(|rel| self.temp_tables.contains(&rel))
    }
}
