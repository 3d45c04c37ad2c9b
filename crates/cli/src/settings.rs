//! Resolve settings: flags over environment over the config file (clap already put the
//! environment behind each flag). Secrets become `SecretString` here and stay so.

use std::sync::Arc;

use crate::config::FileConfig;
use anyhow::Context;
use bridge_core::record::{self, Store};
use bridge_core::Services;
use secrecy::SecretString;

use crate::args::Global;
use crate::usage;

pub const DEFAULT_ASANA_BASE_URL: &str = "https://app.asana.com/api/1.0";

/// A non-empty environment variable: `FOO=` counts as unset, as users expect.
pub(crate) fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub fn file_config(g: &Global) -> anyhow::Result<FileConfig> {
    match &g.config {
        Some(path) => FileConfig::load(path).map_err(crate::from_core),
        None => Ok(FileConfig::default()),
    }
}

/// `--asana-base-url` / `ASANA_BASE_URL`, else `[asana] base_url`, else Asana's.
pub fn asana_base_url(g: &Global, file: &FileConfig) -> String {
    g.asana_base_url
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| file.asana.base_url.clone())
        .unwrap_or_else(|| DEFAULT_ASANA_BASE_URL.to_string())
}

pub fn asana(g: &Global, file: &FileConfig) -> anyhow::Result<asana_api::Client> {
    let token = env("ASANA_TOKEN")
        .or_else(|| file.asana.token.clone())
        .ok_or_else(|| {
            usage(
            "ASANA_TOKEN is not set. Create a personal access token in Asana (My settings → Apps → \
             Developer apps) and export ASANA_TOKEN=…, or set [asana] token in the config file",
        )
        })?;
    let base = asana_base_url(g, file);
    let mut cfg = asana_api::Config::new(&base, SecretString::from(token))
        .map_err(|e| usage(format!("ASANA_BASE_URL: {e}")))?;
    if let Some(rpm) = g.asana_rpm.or(file.asana.requests_per_minute) {
        if rpm == 0 {
            return Err(usage("Asana requests per minute must be at least 1"));
        }
        cfg.requests_per_minute = rpm;
    }
    if let Some(n) = file.asana.max_concurrent_reads {
        cfg.max_concurrent_reads = n.max(1);
    }
    if let Some(n) = file.asana.max_concurrent_writes {
        cfg.max_concurrent_writes = n.max(1);
    }
    apply_test_backoff_asana(&mut cfg);
    asana_api::Client::new(cfg).map_err(|e| usage(e.to_string()))
}

pub fn docspace(g: &Global, file: &FileConfig) -> anyhow::Result<docspace_api::Client> {
    let url = g
        .docspace_url
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| env("ONLYOFFICE_API_HOST"))
        .or_else(|| file.docspace.url.clone())
        .ok_or_else(|| {
            usage("DOCSPACE_URL is not set. Export DOCSPACE_URL=https://your-portal.example.com (or ONLYOFFICE_API_HOST), or set [docspace] url in the config file")
        })?;
    let key = env("DOCSPACE_API_KEY")
        .or_else(|| env("ONLYOFFICE_API_KEY"))
        .or_else(|| file.docspace.api_key.clone())
        .ok_or_else(|| {
            usage("DOCSPACE_API_KEY is not set. Create an API key in DocSpace (Settings → Developer Tools → API keys) and export DOCSPACE_API_KEY=sk-… (or ONLYOFFICE_API_KEY)")
        })?;
    let mut cfg = docspace_api::Config::new(&url, SecretString::from(key))
        .map_err(|e| usage(format!("DOCSPACE_URL: {e}")))?;
    if let Some(rpm) = file.docspace.requests_per_minute {
        cfg.requests_per_minute = Some(rpm.max(1));
    }
    if let Some(n) = file.docspace.max_concurrent_reads {
        cfg.max_concurrent_reads = n.max(1);
    }
    if let Some(n) = file.docspace.max_concurrent_writes {
        cfg.max_concurrent_writes = n.max(1);
    }
    apply_test_backoff_docspace(&mut cfg);
    docspace_api::Client::new(cfg).map_err(|e| usage(e.to_string()))
}

/// The status page's credentials: `ASANA_DOCSPACE_ADMIN_PASSWORD` and
/// `ASANA_DOCSPACE_VIEWER_PASSWORD` over `[admin]`. A bad value is a configuration error.
pub fn admin_auth(file: &FileConfig) -> anyhow::Result<bridge_service::config::AdminAuth> {
    bridge_service::config::AdminAuth::from_section(
        &file.admin,
        env("ASANA_DOCSPACE_ADMIN_PASSWORD").map(SecretString::from),
        env("ASANA_DOCSPACE_VIEWER_PASSWORD").map(SecretString::from),
    )
    .map_err(|e| usage(e.to_string()))
}

/// `ASANA_DOCSPACE_BACKOFF_MS` shortens retry backoff. Tests use it so that a 5xx storm
/// costs milliseconds instead of seconds; `Retry-After` is still honoured.
pub fn test_backoff() -> Option<std::time::Duration> {
    env("ASANA_DOCSPACE_BACKOFF_MS")
        .and_then(|v| v.parse().ok())
        .map(std::time::Duration::from_millis)
}

fn apply_test_backoff_asana(cfg: &mut asana_api::Config) {
    if let Some(d) = test_backoff() {
        cfg.backoff_base = d;
    }
}

fn apply_test_backoff_docspace(cfg: &mut docspace_api::Config) {
    if let Some(d) = test_backoff() {
        cfg.backoff_base = d;
    }
}

/// `--state` / `ASANA_DOCSPACE_STATE`, else `state` in the file, else the default.
pub fn state_location(g: &Global, file: &FileConfig) -> String {
    g.state
        .clone()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| file.state.clone())
        .unwrap_or_else(|| record::default_location().to_string_lossy().into_owned())
}

pub async fn store(g: &Global, file: &FileConfig) -> anyhow::Result<Arc<dyn Store>> {
    let location = state_location(g, file);
    record::open(&location).await.map_err(|e| {
        usage(format!(
            "state database {}: {e} (set ASANA_DOCSPACE_STATE to a writable path or a reachable postgres://… URL)",
            record::display_location(&location)
        ))
    })
}

pub async fn services(g: &Global, file: &FileConfig) -> anyhow::Result<Services> {
    // Credentials first: a missing token is the most common mistake and needs no I/O.
    let asana = asana(g, file)?;
    let docspace = docspace(g, file)?;
    let store = store(g, file).await.context("opening the state database")?;
    Ok(Services::new(asana, docspace, store))
}
