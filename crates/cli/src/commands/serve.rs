//! `serve`: the webhook service. Everything lives in `bridge-service`; this turns flags
//! and the `[serve]` section into a `ServeConfig`, binds the port and wires SIGTERM.

use std::time::Duration;

use bridge_core::config::Rule;
use bridge_service::config::DEFAULT_LISTEN;
use bridge_service::ServeConfig;
use tokio_util::sync::CancellationToken;

use crate::args::{Global, ServeArgs};
use crate::config::FileConfig;
use crate::{settings, usage};

/// The rules of the config file; `serve` and `watch` cannot do anything without them.
pub fn rules(g: &Global, file: &FileConfig, command: &str) -> anyhow::Result<Vec<Rule>> {
    if g.config.is_none() {
        return Err(usage(format!(
            "{command} needs rules: pass --config FILE or set ASANA_DOCSPACE_CONFIG (see docs/config.example.toml)"
        )));
    }
    let rules = file.rules().map_err(crate::from_core)?;
    if rules.is_empty() {
        return Err(usage(format!(
            "the config file has no [[rules]]: {command} would have nothing to do"
        )));
    }
    Ok(rules)
}

/// `[serve]` and `[sync]` of the file (`ServeConfig::from_section` owns their defaults and
/// checks). `ASANA_DOCSPACE_BACKOFF_MS` (a test knob) also shrinks the job retry
/// schedule, the 429 floor and the idle poll, so tests of retries take milliseconds.
pub fn serve_config(file: &FileConfig, rules: Vec<Rule>) -> anyhow::Result<ServeConfig> {
    let sync = file.sync().map_err(crate::from_core)?;
    let mut cfg =
        ServeConfig::from_section(&file.serve, rules, sync).map_err(|e| usage(e.to_string()))?;
    cfg.admin = settings::admin_auth(file)?;
    cfg.revocation = file.revocation(&cfg.rules).map_err(crate::from_core)?;
    if let Some(d) = settings::test_backoff() {
        cfg.retry_schedule = vec![d];
        cfg.rate_limit_floor = d;
        cfg.poll_interval = cfg.poll_interval.min(Duration::from_millis(50).max(d));
    }
    Ok(cfg)
}

/// A token cancelled on SIGTERM (what service managers send) or Ctrl-C.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        eprintln!("asana-docspace: shutting down (finishing or releasing jobs in flight)");
        cancel.cancel();
    });
    token
}

pub async fn run(g: &Global, a: ServeArgs) -> anyhow::Result<u8> {
    let file = settings::file_config(g)?;
    let rules = rules(g, &file, "serve")?;
    let cfg = serve_config(&file, rules)?;
    let listen = a
        .listen
        .filter(|s| !s.trim().is_empty())
        .or_else(|| file.serve.listen.clone())
        .unwrap_or_else(|| DEFAULT_LISTEN.to_string());
    if !listen.contains(':') {
        return Err(usage(format!(
            "--listen {listen:?}: expected HOST:PORT, e.g. 0.0.0.0:8080"
        )));
    }
    let svc = settings::services(g, &file).await?;
    let listener = tokio::net::TcpListener::bind(listen.as_str())
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let local = listener.local_addr()?;
    let admin = if cfg.admin.enabled() {
        ", status page at /admin"
    } else {
        ""
    };
    eprintln!(
        "asana-docspace serve: listening on http://{local} (deliveries at /webhooks/asana/{{id}}, /healthz, /metrics{admin})"
    );
    let shutdown = shutdown_on_signals();
    let result = bridge_service::serve(cfg, svc.clone(), listener, shutdown).await;
    svc.store.close().await;
    result.map_err(|e| match e {
        bridge_service::ServiceError::Config(m) => usage(m),
        other => anyhow::Error::new(other),
    })?;
    Ok(crate::exit::OK)
}
