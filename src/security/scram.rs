//! SCRAM-SHA-256 (RFC 5802 / RFC 7677) on the server side, from PostgreSQL's stored
//! verifier rather than the password or the salted password.
//!
//! PostgreSQL stores `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` and never
//! the password; a client proves it knows the password by sending
//! `ClientKey XOR HMAC(StoredKey, AuthMessage)`, which the server checks by hashing the
//! recovered `ClientKey` and comparing it with `StoredKey`. Keeping exactly that format
//! means verifiers copied from `pg_authid.rolpassword` work unchanged, and ours work in
//! PostgreSQL. (pgwire's SCRAM needs the salted password itself, which a PostgreSQL
//! verifier does not hold, so only the wire messages are pgwire's.)

use std::borrow::Cow;
use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac, pbkdf2};

/// The mechanism name in AuthenticationSASL.
pub const MECHANISM: &str = "SCRAM-SHA-256";
/// PostgreSQL's default iteration count (`scram_iterations`).
pub const DEFAULT_ITERATIONS: u32 = 4096;
const SALT_LEN: usize = 16;
const KEY_LEN: usize = 32;

/// What can be wrong with a verifier or an exchange.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    /// The stored verifier is not `SCRAM-SHA-256$<i>:<salt>$<StoredKey>:<ServerKey>`.
    #[error("not a SCRAM-SHA-256 verifier ({0})")]
    BadVerifier(&'static str),
    /// A client message does not follow RFC 5802.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The client asked for channel binding, which this server does not offer.
    #[error("channel binding is not supported; connect with channel_binding=disable or prefer")]
    ChannelBinding,
    /// The proof does not match: wrong password (or unknown user).
    #[error("password authentication failed")]
    BadProof,
}

/// A SCRAM-SHA-256 verifier in PostgreSQL's format.
#[derive(Clone, PartialEq, Eq)]
pub struct Verifier {
    iterations: u32,
    salt: Vec<u8>,
    stored_key: [u8; KEY_LEN],
    server_key: [u8; KEY_LEN],
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material, not even in debug output.
        f.debug_struct("Verifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for `password` with a fresh random salt, as `userql passwd` prints.
    pub fn new(password: &str) -> Self {
        let mut salt = [0u8; SALT_LEN];
        SystemRandom::new()
            .fill(&mut salt)
            .expect("the system random source works");
        Self::with_salt(password, &salt, DEFAULT_ITERATIONS)
    }

    /// A verifier for `password` with a given salt and iteration count.
    pub fn with_salt(password: &str, salt: &[u8], iterations: u32) -> Self {
        // PostgreSQL uses the password as is when SASLprep rejects it.
        let prepared = stringprep::saslprep(password).unwrap_or(Cow::Borrowed(password));
        let mut salted = [0u8; KEY_LEN];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(iterations.max(1)).expect("at least one iteration"),
            salt,
            prepared.as_bytes(),
            &mut salted,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        Self {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// A stand-in verifier for a user that does not exist: its salt is derived from the
    /// name and a per-process secret (so it is stable for a name and unguessable), and no
    /// password matches it. The exchange runs exactly as for a real user, so a client
    /// cannot tell an unknown name from a wrong password.
    pub fn mock(user: &str, secret: &[u8]) -> Self {
        let salt = hmac_sha256(secret, user.as_bytes());
        let stored_key = hmac_sha256(secret, &salt);
        Self {
            iterations: DEFAULT_ITERATIONS,
            salt: salt[..SALT_LEN].to_vec(),
            stored_key,
            server_key: sha256(&stored_key),
        }
    }

    /// Whether `text` looks like a verifier at all (versus a plain-text password).
    pub fn looks_like_one(text: &str) -> bool {
        text.starts_with("SCRAM-SHA-256$")
    }
}

impl FromStr for Verifier {
    type Err = ScramError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or(ScramError::BadVerifier("it must start with SCRAM-SHA-256$"))?;
        let (params, keys) = rest
            .split_once('$')
            .ok_or(ScramError::BadVerifier("missing '$' before the keys"))?;
        let (iterations, salt) = params.split_once(':').ok_or(ScramError::BadVerifier(
            "missing ':' between iterations and salt",
        ))?;
        let (stored, server) = keys
            .split_once(':')
            .ok_or(ScramError::BadVerifier("missing ':' between the keys"))?;
        let iterations: u32 =
            iterations
                .parse()
                .ok()
                .filter(|&i| i > 0)
                .ok_or(ScramError::BadVerifier(
                    "the iteration count is not a positive number",
                ))?;
        let salt = B64
            .decode(salt)
            .map_err(|_| ScramError::BadVerifier("the salt is not base64"))?;
        if salt.is_empty() {
            return Err(ScramError::BadVerifier("the salt is empty"));
        }
        let key = |s: &str| -> Result<[u8; KEY_LEN], ScramError> {
            B64.decode(s)
                .ok()
                .and_then(|k| <[u8; KEY_LEN]>::try_from(k).ok())
                .ok_or(ScramError::BadVerifier("a key is not 32 bytes of base64"))
        };
        Ok(Self {
            iterations,
            salt,
            stored_key: key(stored)?,
            server_key: key(server)?,
        })
    }
}

impl fmt::Display for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

/// The server's half of one exchange, between server-first and client-final.
#[derive(Debug)]
pub struct Exchange {
    verifier: Verifier,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
}

impl Exchange {
    /// Answer the client-first message: returns the exchange and the server-first message.
    pub fn start(verifier: Verifier, client_first: &[u8]) -> Result<(Self, String), ScramError> {
        let mut nonce = [0u8; 18];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| ScramError::Malformed("no random source"))?;
        Self::start_with_nonce(verifier, client_first, &B64.encode(nonce))
    }

    fn start_with_nonce(
        verifier: Verifier,
        client_first: &[u8],
        server_nonce: &str,
    ) -> Result<(Self, String), ScramError> {
        let text = std::str::from_utf8(client_first)
            .map_err(|_| ScramError::Malformed("client-first is not UTF-8"))?;
        // gs2-header: cbind-flag "," [authzid] ","
        let mut parts = text.splitn(3, ',');
        let flag = parts.next().unwrap_or_default();
        let authzid = parts
            .next()
            .ok_or(ScramError::Malformed("client-first has no gs2 header"))?;
        let bare = parts
            .next()
            .ok_or(ScramError::Malformed("client-first has no bare part"))?;
        match flag {
            "n" | "y" => {}
            f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed("unknown channel-binding flag")),
        }
        if !authzid.is_empty() && !authzid.starts_with("a=") {
            return Err(ScramError::Malformed("bad authzid"));
        }
        // client-first-bare: n=<user>,r=<nonce>[,ext]; PostgreSQL ignores the name here
        // (the startup message's user is the one that counts), and so do we.
        let mut attrs = bare.split(',');
        let _user =
            attrs
                .next()
                .and_then(|a| a.strip_prefix("n="))
                .ok_or(ScramError::Malformed(
                    "client-first-bare must start with n=",
                ))?;
        let client_nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| (0x21..=0x7e).contains(&b)))
            .ok_or(ScramError::Malformed(
                "client-first-bare has no valid r= nonce",
            ))?;
        let nonce = format!("{client_nonce}{server_nonce}");
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&verifier.salt),
            verifier.iterations
        );
        let gs2_header = format!("{flag},{authzid},");
        Ok((
            Self {
                verifier,
                gs2_header,
                client_first_bare: bare.to_string(),
                server_first: server_first.clone(),
                nonce,
            },
            server_first,
        ))
    }

    /// Check the client-final message; on success returns the server-final message
    /// (`v=<ServerSignature>`).
    pub fn finish(&self, client_final: &[u8]) -> Result<String, ScramError> {
        let text = std::str::from_utf8(client_final)
            .map_err(|_| ScramError::Malformed("client-final is not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("client-final has no proof"))?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or(ScramError::Malformed("client-final must start with c="))?;
        if B64.decode(binding).ok().as_deref() != Some(self.gs2_header.as_bytes()) {
            return Err(ScramError::Malformed("channel-binding data does not match"));
        }
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or(ScramError::Malformed("client-final has no r= nonce"))?;
        if nonce != self.nonce {
            return Err(ScramError::Malformed("nonce does not match"));
        }
        let proof = B64
            .decode(proof)
            .ok()
            .filter(|p| p.len() == KEY_LEN)
            .ok_or(ScramError::Malformed("the proof is not 32 bytes of base64"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let client_signature = hmac_sha256(&self.verifier.stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof
            .iter()
            .zip(client_signature.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        if !same_bytes(&sha256(&client_key), &self.verifier.stored_key) {
            return Err(ScramError::BadProof);
        }
        let server_signature = hmac_sha256(&self.verifier.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)))
    }
}

/// Compare without stopping at the first difference.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; KEY_LEN] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, message);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677, section 3: user "user", password "pencil".
    const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc_verifier() -> Verifier {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        Verifier::with_salt("pencil", &salt, 4096)
    }

    #[test]
    fn rfc7677_exchange() {
        let (exchange, server_first) =
            Exchange::start_with_nonce(rfc_verifier(), CLIENT_FIRST.as_bytes(), SERVER_NONCE)
                .unwrap();
        assert_eq!(server_first, SERVER_FIRST);
        assert_eq!(
            exchange.finish(CLIENT_FINAL.as_bytes()).unwrap(),
            SERVER_FINAL
        );
    }

    #[test]
    fn wrong_password_fails_with_bad_proof() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let wrong = Verifier::with_salt("pencil2", &salt, 4096);
        let (exchange, _) =
            Exchange::start_with_nonce(wrong, CLIENT_FIRST.as_bytes(), SERVER_NONCE).unwrap();
        assert_eq!(
            exchange.finish(CLIENT_FINAL.as_bytes()),
            Err(ScramError::BadProof)
        );
        let (mock, _) = Exchange::start_with_nonce(
            Verifier::mock("user", b"secret"),
            CLIENT_FIRST.as_bytes(),
            SERVER_NONCE,
        )
        .unwrap();
        assert_eq!(
            mock.finish(CLIENT_FINAL.as_bytes()),
            Err(ScramError::BadProof)
        );
    }

    #[test]
    fn verifier_text_round_trips_in_postgresql_format() {
        let v = rfc_verifier();
        let text = v.to_string();
        assert!(text.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
        assert_eq!(text.parse::<Verifier>().unwrap(), v);
        // What PostgreSQL 15 stored in pg_authid for `CREATE ROLE ana PASSWORD 'secret'`.
        let pg = "SCRAM-SHA-256$4096:lD+r9DjUigjSUCaHZ+bipQ==$flclDkJdyWVurcIJnVwABPLPFqY+W/ddaLZ6AVe6bPI=:ZsLB7ZlZ52Ty/8mHWinfR2bSsxQwhaX8ENWuV0w/zPk=";
        let parsed: Verifier = pg.parse().unwrap();
        assert_eq!(parsed.to_string(), pg);
        let salt = B64.decode("lD+r9DjUigjSUCaHZ+bipQ==").unwrap();
        assert_eq!(parsed, Verifier::with_salt("secret", &salt, 4096));
    }

    #[test]
    fn bad_verifiers_and_messages_are_refused() {
        for bad in [
            "secret",
            "md5abcdef",
            "SCRAM-SHA-256$x:AA==$AA==:AA==",
            "SCRAM-SHA-256$4096:AA==$AA==:AA==",
            "SCRAM-SHA-256$4096:$k:k",
        ] {
            assert!(bad.parse::<Verifier>().is_err(), "{bad}");
        }
        for bad in ["", "n", "x,,n=u,r=abc", "n,,r=abc", "n,,n=u", "n,,n=u,r="] {
            assert!(
                Exchange::start(rfc_verifier(), bad.as_bytes()).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(
            Exchange::start(rfc_verifier(), b"p=tls-server-end-point,,n=,r=abc").unwrap_err(),
            ScramError::ChannelBinding
        );
        let (exchange, _) =
            Exchange::start_with_nonce(rfc_verifier(), CLIENT_FIRST.as_bytes(), SERVER_NONCE)
                .unwrap();
        for bad in [
            "c=biws,r=other,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=AAAA",
        ] {
            assert!(exchange.finish(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
