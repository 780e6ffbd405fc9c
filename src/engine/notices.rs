//! NOTICE messages a statement raises for its client while it runs (`ltv` reports the
//! parameters it fitted). Kept in the session's DataFusion config, so a table function
//! deep in a plan can add one; the server sends them before the statement's result.

use std::any::Any;
use std::sync::{Arc, Mutex};

use datafusion::common::config::{ConfigEntry, ConfigExtension, ExtensionOptions};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};

/// One session's pending notices. Clones share the queue (a session's config is cloned
/// for every statement).
#[derive(Debug, Clone, Default)]
pub struct Notices(Arc<Mutex<Vec<String>>>);

impl Notices {
    /// Queue a notice.
    pub fn push(&self, message: String) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message);
    }

    /// Take every queued notice.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ConfigExtension for Notices {
    const PREFIX: &'static str = "userql_notices";
}

impl ExtensionOptions for Notices {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn cloned(&self) -> Box<dyn ExtensionOptions> {
        Box::new(self.clone())
    }

    fn set(&mut self, key: &str, _value: &str) -> Result<()> {
        Err(DataFusionError::Configuration(format!(
            "unrecognized configuration parameter \"{key}\""
        )))
    }

    fn entries(&self) -> Vec<ConfigEntry> {
        vec![]
    }
}

/// Queue `message` for the client of the session `options` belong to (nothing when the
/// statement runs outside a session, as in the CLI's planning of views).
pub fn notify(options: &ConfigOptions, message: String) {
    if let Some(notices) = options.extensions.get::<Notices>() {
        notices.push(message);
    }
}
