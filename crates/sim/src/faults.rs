//! Fault injection shared by both simulators.
//!
//! Faults exist so that tests can prove the clients' retry, backoff and timeout paths
//! against a real socket instead of a mock: a 503 with the vendor's error envelope, a 429
//! with or without `Retry-After`, a connection closed with no response at all, or a slow
//! answer. Whether a probabilistic fault fires is drawn from a seeded generator, so a test
//! that uses `probability < 1.0` is reproducible run after run.

use std::str::FromStr;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// One fault rule: which requests it matches, how often it fires, and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// HTTP method to match (case-insensitive); `None` matches every method.
    pub method: Option<String>,
    /// Substring of the request path (the full path, e.g. `/api/1.0/tasks/12`); `None` matches all.
    pub path_contains: Option<String>,
    /// Chance, in `0.0..=1.0`, that a matching request is hit. Drawn from the sim's seeded RNG.
    pub probability: f64,
    /// Fire at most this many times (counted from the last `set_faults`); `None` = unlimited.
    pub times: Option<u32>,
    /// What happens to a request the fault fires on.
    pub kind: FaultKind,
}

/// What a fired fault does to the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Answer with this status and the API's own error envelope, without running the handler.
    /// `retry_after` (seconds) adds a `Retry-After` header.
    Status {
        /// The HTTP status.
        code: u16,
        /// Seconds for the `Retry-After` header, if any.
        retry_after: Option<u64>,
    },
    /// Close the connection without writing any response, as a crashed proxy would.
    Drop,
    /// Wait this long before handling the request normally (on top of the sim's latency).
    Delay(Duration),
}

impl Fault {
    /// A fault that always answers `code` on every request; narrow it with the builder methods.
    pub fn status(code: u16) -> Self {
        Self::new(FaultKind::Status {
            code,
            retry_after: None,
        })
    }

    /// A 429 with an optional `Retry-After`, the shape of a vendor rate limit.
    pub fn rate_limited(retry_after: Option<u64>) -> Self {
        Self::new(FaultKind::Status {
            code: 429,
            retry_after,
        })
    }

    /// A fault that closes the connection without an answer.
    pub fn drop_connection() -> Self {
        Self::new(FaultKind::Drop)
    }

    /// A fault that delays the answer by `d`.
    pub fn delay(d: Duration) -> Self {
        Self::new(FaultKind::Delay(d))
    }

    /// A fault of any kind matching every request, always firing, without limit.
    pub fn new(kind: FaultKind) -> Self {
        Self {
            method: None,
            path_contains: None,
            probability: 1.0,
            times: None,
            kind,
        }
    }

    /// Only requests with this method.
    pub fn on_method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only requests whose path contains `fragment`.
    pub fn on_path(mut self, fragment: &str) -> Self {
        self.path_contains = Some(fragment.to_string());
        self
    }

    /// Fire with this probability (clamped to `0..=1`).
    pub fn with_probability(mut self, p: f64) -> Self {
        self.probability = p.clamp(0.0, 1.0);
        self
    }

    /// Fire at most `n` times.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|frag| path.contains(frag))
    }
}

/// Why a fault description given on a command line could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FaultParseError {
    /// No `kind=`: nothing says what the fault does.
    #[error("fault spec is missing `kind=` (e.g. `kind=503`, `kind=drop`, `kind=delay,ms=500`)")]
    MissingKind,
    /// A key the parser does not know (likely a typo).
    #[error("unknown fault key `{0}` (expected kind, retry_after, ms, method, path, p, times)")]
    UnknownKey(String),
    /// A known key with a value that does not parse.
    #[error("invalid value `{value}` for fault key `{key}`")]
    BadValue {
        /// The key.
        key: String,
        /// The value that did not parse.
        value: String,
    },
    /// `kind=delay` without how long.
    #[error("`kind=delay` needs `ms=<milliseconds>`")]
    MissingDelay,
}

/// Parses the compact form used by `asana-docspace sim --fault`:
/// `kind=503,method=GET,path=/tasks,p=0.5,times=3`, `kind=429,retry_after=2`, `kind=drop`,
/// `kind=delay,ms=1500`. A comma list keeps it one shell word.
impl FromStr for Fault {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut kind: Option<String> = None;
        let mut retry_after = None;
        let mut ms = None;
        let mut fault = Fault::new(FaultKind::Drop);
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part.split_once('=').unwrap_or((part, ""));
            let bad = || FaultParseError::BadValue {
                key: key.to_string(),
                value: value.to_string(),
            };
            match key {
                "kind" => kind = Some(value.to_ascii_lowercase()),
                "retry_after" => retry_after = Some(value.parse::<u64>().map_err(|_| bad())?),
                "ms" => ms = Some(value.parse::<u64>().map_err(|_| bad())?),
                "method" => fault.method = Some(value.to_ascii_uppercase()),
                "path" => fault.path_contains = Some(value.to_string()),
                "p" | "probability" => {
                    let p = value.parse::<f64>().map_err(|_| bad())?;
                    if !(0.0..=1.0).contains(&p) {
                        return Err(bad());
                    }
                    fault.probability = p;
                }
                "times" => fault.times = Some(value.parse::<u32>().map_err(|_| bad())?),
                other => return Err(FaultParseError::UnknownKey(other.to_string())),
            }
        }
        let kind = kind.ok_or(FaultParseError::MissingKind)?;
        fault.kind = match kind.as_str() {
            "drop" => FaultKind::Drop,
            "delay" => FaultKind::Delay(Duration::from_millis(
                ms.ok_or(FaultParseError::MissingDelay)?,
            )),
            code => {
                let code = code
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or_else(|| FaultParseError::BadValue {
                        key: "kind".into(),
                        value: code.into(),
                    })?;
                FaultKind::Status { code, retry_after }
            }
        };
        Ok(fault)
    }
}

/// What the fault engine decided for one request.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct FaultDecision {
    /// Extra delay from every fired `Delay` fault, summed.
    pub delay: Duration,
    /// A fault that replaces the answer (`Status` or `Drop`), if one fired.
    pub terminal: Option<FaultKind>,
}

/// The set of active faults with their fire counts and the seeded generator.
///
/// Every matching fault consumes exactly one draw per request, whether it fires or not, so
/// the sequence of outcomes depends only on the seed and the sequence of requests.
pub(crate) struct FaultEngine {
    seed: u64,
    rng: StdRng,
    faults: Vec<(Fault, u32)>,
}

impl FaultEngine {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rng: StdRng::seed_from_u64(seed),
            faults: Vec::new(),
        }
    }

    /// Replaces the faults and reseeds, so a test's outcome does not depend on earlier traffic.
    pub fn set(&mut self, faults: Vec<Fault>) {
        self.rng = StdRng::seed_from_u64(self.seed);
        self.faults = faults.into_iter().map(|f| (f, 0)).collect();
    }

    pub fn decide(&mut self, method: &str, path: &str) -> FaultDecision {
        let mut decision = FaultDecision::default();
        for (fault, fired) in &mut self.faults {
            if !fault.matches(method, path) {
                continue;
            }
            let draw: f64 = self.rng.random();
            if fault.times.is_some_and(|t| *fired >= t) || draw >= fault.probability {
                continue;
            }
            *fired += 1;
            match &fault.kind {
                FaultKind::Delay(d) => decision.delay += *d,
                terminal => {
                    decision.terminal = Some(terminal.clone());
                    break;
                }
            }
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compact_specs() {
        let f: Fault = "kind=503,method=get,path=/tasks,p=0.5,times=3"
            .parse()
            .unwrap();
        assert_eq!(f.method.as_deref(), Some("GET"));
        assert_eq!(f.path_contains.as_deref(), Some("/tasks"));
        assert_eq!(f.probability, 0.5);
        assert_eq!(f.times, Some(3));
        assert_eq!(
            f.kind,
            FaultKind::Status {
                code: 503,
                retry_after: None
            }
        );
        let f: Fault = "kind=delay,ms=20".parse().unwrap();
        assert_eq!(f.kind, FaultKind::Delay(Duration::from_millis(20)));
        assert_eq!("p=1".parse::<Fault>(), Err(FaultParseError::MissingKind));
        assert!("kind=teapot".parse::<Fault>().is_err());
        assert!("kind=503,p=2".parse::<Fault>().is_err());
    }

    #[test]
    fn probability_is_deterministic_per_seed() {
        let run = |seed| {
            let mut e = FaultEngine::new(seed);
            e.set(vec![Fault::status(500).with_probability(0.5)]);
            (0..64)
                .map(|_| e.decide("GET", "/x").terminal.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
        let fired = run(7).iter().filter(|b| **b).count();
        assert!((16..=48).contains(&fired), "{fired}");
    }

    #[test]
    fn times_limits_firing() {
        let mut e = FaultEngine::new(1);
        e.set(vec![Fault::status(503).times(2).on_method("POST")]);
        assert!(e.decide("GET", "/a").terminal.is_none());
        assert!(e.decide("POST", "/a").terminal.is_some());
        assert!(e.decide("post", "/a").terminal.is_some());
        assert!(e.decide("POST", "/a").terminal.is_none());
    }
}
