//! Who may connect and what they may do: users with SCRAM-SHA-256 verifiers, their roles,
//! and the masking of personal identifiers for role `read`.
//!
//! The rules live here as plain types; the wire glue (the SCRAM exchange in the startup
//! handler, TLS) is in `server/`, and the places that enforce a role (statements that
//! write, scans of masked columns) call in here.

pub mod masking;
pub mod scram;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::config::Config;
pub use masking::MaskPolicy;
pub use scram::Verifier;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// SELECT and the functions; temporary tables and session settings. Masked
    /// identifiers are masked.
    Read,
    /// Also creates and writes tables, schemas and views.
    Write,
    /// Also changes server-wide settings.
    Admin,
}

impl Role {
    /// The lower-case name used in the config and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }

    /// Whether the role may write stored objects (tables, schemas, views).
    pub fn can_write(self) -> bool {
        self >= Role::Write
    }
}

/// The configured users, looked up by name at startup.
#[derive(Debug, Clone, Default)]
pub struct Users {
    by_name: BTreeMap<String, (Role, Verifier)>,
    /// Derives stand-in verifiers for unknown names (fixed for the process's life).
    mock_secret: Vec<u8>,
}

impl Users {
    /// The users of a (validated) config.
    pub fn from_config(config: &Config) -> Self {
        let by_name = config
            .users
            .iter()
            .filter_map(|u| Some((u.name.clone(), (u.role, u.password.parse().ok()?))))
            .collect();
        let mut mock_secret = vec![0u8; 32];
        use ring::rand::SecureRandom;
        let _ = ring::rand::SystemRandom::new().fill(&mut mock_secret);
        Self {
            by_name,
            mock_secret,
        }
    }

    /// No users configured: trust authentication, loopback only.
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The verifier to run an exchange against, and the user's role when the name exists.
    /// An unknown name gets a stand-in verifier no password matches, so both cases do the
    /// same work and fail the same way.
    pub fn verifier_for(&self, name: &str) -> (Verifier, Option<Role>) {
        match self.by_name.get(name) {
            Some((role, verifier)) => (verifier.clone(), Some(*role)),
            None => (Verifier::mock(name, &self.mock_secret), None),
        }
    }

    /// `(name, role)` of every user, sorted by name (for `pg_roles`).
    pub fn list(&self) -> Vec<(String, Role)> {
        self.by_name
            .iter()
            .map(|(n, (r, _))| (n.clone(), *r))
            .collect()
    }
}

/// What a session may do and see: its role, and the masks applied to what it reads.
#[derive(Debug, Clone)]
pub struct Access {
    /// The session's role.
    pub role: Role,
    /// Masks applied to this session's reads (role `read` only; empty otherwise).
    pub mask: Arc<MaskPolicy>,
}

impl Access {
    /// Full access: trust authentication, or an admin.
    pub fn full() -> Self {
        Self {
            role: Role::Admin,
            mask: Arc::new(MaskPolicy::default()),
        }
    }

    /// Access for `role` under the config's privacy policy.
    pub fn for_role(role: Role, policy: &Arc<MaskPolicy>) -> Self {
        Self {
            role,
            mask: if role == Role::Read {
                policy.clone()
            } else {
                Arc::new(MaskPolicy::default())
            },
        }
    }
}
