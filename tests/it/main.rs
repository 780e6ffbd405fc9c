//! The integration-test binary: everything that goes through the wire protocol against a
//! real server, plus the sqllogictest files under `tests/slt/`.

mod support;

mod clients;
mod cluster;
mod config_errors;
mod crash;
mod fuzz;
mod limits;
mod ltv;
mod oneid;
mod protocol;
mod security;
mod slt;
mod small_statements;
mod tables;
mod write_paths;
