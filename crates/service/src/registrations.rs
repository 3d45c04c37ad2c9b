//! Webhook registrations as the HTTP side sees them: who may handshake, and each
//! registration's secret for verifying deliveries.
//!
//! **Handshake.** Asana proves a target by POSTing `X-Hook-Secret` and expecting it echoed.
//! An endpoint that echoes any secret lets anyone who can reach it register a webhook and
//! then sign deliveries of their choosing with a secret they picked (n8n's lesson, PR
//! #37311). So we echo only for a registration we are *expecting*: one that
//! `webhooks create` wrote to the state database moments ago (within the handshake
//! window), or one listed in the config file whose `handshake_until` has not passed; and
//! only once, while it has no secret yet. The secret is stored durably before the echo, so
//! a restart cannot lose it.
//!
//! A hand-listed id has no `webhooks create` moment to count from, and accepting its
//! first handshake whenever it comes would hand it to whoever guesses or reads the URL
//! first (they register their secret, Asana's real handshake is refused, their signed
//! deliveries are accepted). Its secret cannot be written into the config instead: Asana
//! generates it and sends it only in the handshake. So the admin opens the window
//! explicitly, with an expiry, right before creating the webhook.
//!
//! **Secrets.** Every delivery needs its registration's secret. Reading the database per
//! request would put a query on the hot path, so secrets are cached in memory once read;
//! a handshake drops the cache entry, and entries expire after a while so a registration
//! deleted by another process (`webhooks delete`) stops being accepted.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bridge_core::record::{Store, StoreError};
use chrono::{DateTime, Utc};

use crate::intake::webhook::WebhookSecret;

/// How long a cached secret is trusted before the database is asked again.
const CACHE_TTL: Duration = Duration::from_secs(60);

/// A registration that can take deliveries.
#[derive(Debug)]
pub struct ActiveReg {
    /// Our id (the path segment).
    pub id: String,
    /// The project whose rule applies to its events.
    pub project_gid: String,
    /// Verifies its signatures.
    pub secret: WebhookSecret,
}

/// What a delivery's id refers to.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// No such registration.
    Unknown,
    /// Registered, but the handshake has not happened: nothing can be verified.
    NoSecret,
    /// Ready to verify.
    Ready(Arc<ActiveReg>),
}

/// Why a handshake was not answered.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeRefused {
    /// No registration with this id.
    #[error("no webhook registration with this id")]
    Unknown,
    /// The registration already has its secret (or is active): a second handshake would
    /// let someone replace the secret.
    #[error("this registration is not expecting a handshake")]
    NotExpecting,
    /// `webhooks create` registered the id too long ago.
    #[error("the handshake window for this registration has passed")]
    Expired,
    /// A hand-listed id whose `handshake_until` is unset or has passed.
    #[error("no handshake window is open for this hand-listed registration (set [[serve.webhooks]] handshake_until and restart)")]
    Closed,
    /// The header value cannot be a secret.
    #[error("X-Hook-Secret is empty, too long or not printable ASCII")]
    InvalidSecret,
    /// The database could not be asked.
    #[error("state database: {0}")]
    Store(#[from] StoreError),
}

impl HandshakeRefused {
    /// The `reason` label of the rejection metric.
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeRefused::Unknown => "handshake_unknown",
            HandshakeRefused::NotExpecting => "handshake_not_expecting",
            HandshakeRefused::Expired => "handshake_expired",
            HandshakeRefused::Closed => "handshake_closed",
            HandshakeRefused::InvalidSecret => "handshake_invalid",
            HandshakeRefused::Store(_) => "store_error",
        }
    }
}

struct Cached {
    reg: Arc<ActiveReg>,
    at: Instant,
}

/// Registrations, their cached secrets and the handshake rules.
pub struct Registrations {
    store: Arc<dyn Store>,
    cache: RwLock<HashMap<String, Cached>>,
    window: Duration,
    configured: HashMap<String, Option<DateTime<Utc>>>,
}

impl std::fmt::Debug for Registrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrations")
            .field("window", &self.window)
            .field("configured", &self.configured)
            .finish_non_exhaustive()
    }
}

impl Registrations {
    /// `window`: how long after `webhooks create` wrote an id its handshake is accepted.
    /// `configured`: ids from the config file with the end of their handshake window
    /// (`None`: closed), which replaces the age check for them.
    pub fn new(
        store: Arc<dyn Store>,
        window: Duration,
        configured: HashMap<String, Option<DateTime<Utc>>>,
    ) -> Registrations {
        Registrations {
            store,
            cache: RwLock::new(HashMap::new()),
            window,
            configured,
        }
    }

    /// The registration behind a delivery path, from the cache or the database.
    pub async fn lookup(&self, id: &str) -> Result<Lookup, StoreError> {
        {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = cache.get(id) {
                if c.at.elapsed() < CACHE_TTL {
                    return Ok(Lookup::Ready(c.reg.clone()));
                }
            }
        }
        let Some(reg) = self.store.webhook(id).await? else {
            self.forget(id);
            return Ok(Lookup::Unknown);
        };
        let Some(secret) = reg.secret.as_deref() else {
            return Ok(Lookup::NoSecret);
        };
        let active = Arc::new(ActiveReg {
            id: reg.id.clone(),
            project_gid: reg.project_gid.clone(),
            secret: WebhookSecret::new(secret),
        });
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                id.to_string(),
                Cached {
                    reg: active.clone(),
                    at: Instant::now(),
                },
            );
        Ok(Lookup::Ready(active))
    }

    /// Handles `X-Hook-Secret` for `id`: stores the secret if the registration expects it.
    /// `Ok` means: echo the secret.
    pub async fn handshake(&self, id: &str, secret: &str) -> Result<(), HandshakeRefused> {
        if secret.is_empty() || secret.len() > 512 || !secret.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(HandshakeRefused::InvalidSecret);
        }
        let reg = self
            .store
            .webhook(id)
            .await?
            .ok_or(HandshakeRefused::Unknown)?;
        if reg.state != "expecting" || reg.secret.is_some() {
            return Err(HandshakeRefused::NotExpecting);
        }
        match self.configured.get(id) {
            Some(until) => {
                if !until.is_some_and(|until| Utc::now() <= until) {
                    return Err(HandshakeRefused::Closed);
                }
            }
            None => {
                let age = Utc::now().signed_duration_since(reg.created_at);
                let window =
                    chrono::Duration::from_std(self.window).unwrap_or(chrono::Duration::MAX);
                if age > window {
                    return Err(HandshakeRefused::Expired);
                }
            }
        }
        if !self.store.store_webhook_secret(id, secret).await? {
            // Another handshake won the race for this id.
            return Err(HandshakeRefused::NotExpecting);
        }
        self.forget(id);
        Ok(())
    }

    /// Drops a cached secret.
    pub fn forget(&self, id: &str) {
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}
