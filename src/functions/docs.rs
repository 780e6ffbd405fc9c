//! How each userql SQL function describes itself: its arguments, result and one-line
//! description, kept beside its code (each family's `DOCS`) and shown to clients through
//! `pg_proc` / `pg_description` — what psql's `\df` and `\df+` list.

/// What kind of function, as `pg_proc.prokind` / `proretset` tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionKind {
    /// One value per row.
    Scalar,
    /// One value per group.
    Aggregate,
    /// A set of rows (`FROM f(...)`).
    Table,
}

/// One SQL function's documentation.
#[derive(Debug, Clone, Copy)]
pub struct FunctionDoc {
    /// The SQL name.
    pub name: &'static str,
    /// Scalar, aggregate or table function.
    pub kind: FunctionKind,
    /// PostgreSQL-style argument list: `input text, as_of timestamp DEFAULT NULL`;
    /// `VARIADIC conds boolean[]` for a variable number of trailing arguments.
    pub arguments: &'static str,
    /// The result type (`text`), or for a table function its columns
    /// (`TABLE(record_id text, one_id bigint)`).
    pub result: &'static str,
    /// One line saying what it is for.
    pub description: &'static str,
    /// Same arguments, same result, whatever the session (`i`), or dependent on session
    /// settings or data (`s`).
    pub volatility: char,
}

/// One argument of a [`FunctionDoc`], read from its argument list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Argument {
    pub name: String,
    pub pg_type: String,
    pub has_default: bool,
    pub variadic: bool,
}

impl FunctionDoc {
    /// The arguments, parsed from [`FunctionDoc::arguments`].
    pub fn parsed_arguments(&self) -> Vec<Argument> {
        self.arguments
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| {
                let (variadic, a) = match a.strip_prefix("VARIADIC ") {
                    Some(rest) => (true, rest),
                    None => (false, a),
                };
                let (decl, has_default) = match a.find(" DEFAULT ") {
                    Some(i) => (&a[..i], true),
                    None => (a, false),
                };
                let (name, pg_type) = decl.split_once(' ').unwrap_or(("", decl));
                Argument {
                    name: name.to_string(),
                    pg_type: pg_type.trim().to_string(),
                    has_default,
                    variadic,
                }
            })
            .collect()
    }
}

/// Every userql function's documentation, family by family.
pub fn all() -> Vec<FunctionDoc> {
    let mut docs = Vec::new();
    docs.extend_from_slice(super::identity::DOCS);
    docs.extend_from_slice(super::rfm::DOCS);
    docs.extend_from_slice(super::lifecycle::DOCS);
    docs.extend_from_slice(super::behavior::DOCS);
    docs.extend_from_slice(super::ltv::DOCS);
    docs
}

/// The OID PostgreSQL gives a type name, for `pg_proc.prorettype` / `proargtypes`
/// (`2276`, "any", for names it has none for).
pub fn type_oid(pg_type: &str) -> i32 {
    match pg_type.trim() {
        "boolean" => 16,
        "bytea" => 17,
        "bigint" => 20,
        "smallint" => 21,
        "integer" => 23,
        "text" => 25,
        "real" => 700,
        "double precision" => 701,
        "boolean[]" => 1000,
        "smallint[]" => 1005,
        "integer[]" => 1007,
        "text[]" => 1009,
        "bigint[]" => 1016,
        "double precision[]" => 1022,
        "date" => 1082,
        "timestamp" | "timestamp without time zone" => 1114,
        "timestamptz" | "timestamp with time zone" => 1184,
        "interval" => 1186,
        "numeric" => 1700,
        "record" => 2249,
        "anyelement" => 2283,
        _ => 2276,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_doc_is_complete_and_parses() {
        let docs = all();
        assert!(!docs.is_empty());
        let mut names = std::collections::HashSet::new();
        for d in &docs {
            // Overloads share a name, never an argument list.
            assert!(
                names.insert((d.name, d.arguments)),
                "{} documented twice",
                d.name
            );
            assert!(!d.description.is_empty() && !d.description.contains('\n'));
            assert!(matches!(d.volatility, 'i' | 's' | 'v'));
            for a in d.parsed_arguments() {
                assert!(!a.name.is_empty(), "{}: unnamed argument", d.name);
                assert_ne!(type_oid(&a.pg_type), 2276, "{}: type {}", d.name, a.pg_type);
            }
            if d.kind == FunctionKind::Table {
                assert!(d.result.starts_with("TABLE("), "{}", d.name);
            } else {
                assert_ne!(type_oid(d.result), 2276, "{}: result {}", d.name, d.result);
            }
        }
    }

    #[test]
    fn arguments_parse_with_defaults_and_variadics() {
        let doc = FunctionDoc {
            name: "f",
            kind: FunctionKind::Aggregate,
            arguments: "window_seconds bigint, mode text DEFAULT '', VARIADIC conds boolean[]",
            result: "integer",
            description: "x",
            volatility: 'i',
        };
        let args = doc.parsed_arguments();
        assert_eq!(args.len(), 3);
        assert_eq!(args[1].pg_type, "text");
        assert!(args[1].has_default);
        assert!(args[2].variadic && args[2].pg_type == "boolean[]");
    }
}
