//! userql: a PostgreSQL-wire SQL server on Apache DataFusion that turns a business's
//! scattered customer data into one customer view, with customer operations (OneID,
//! RFM, LTV, lifecycle, funnels, privacy) as SQL functions.
//!
//! Embedding: build a [`config::Config`], open an [`engine::Engine`], then either serve
//! it ([`server::Server`]) or run statements on an [`engine::Session`].

pub mod cluster;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod functions;
pub mod logging;
pub mod security;
pub mod server;
pub mod threads;

pub use config::Config;
pub use engine::{Engine, Session};
pub use error::UserqlError;
