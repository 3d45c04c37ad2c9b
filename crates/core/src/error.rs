//! One error type for the flow, so the binary can map every failure to the documented
//! exit code without knowing which layer produced it, and one answer to "is it worth
//! trying again later?" ([`Transience`]) decided from typed errors, never from text.

use crate::record::StoreError;

/// Why a reconcile stopped before it had a per-person answer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The user asked for something that cannot work (bad gid, unknown task, a room that
    /// does not allow the level): exit 2, nothing was written.
    #[error("{0}")]
    Input(String),
    /// The configuration is incomplete or contradictory: exit 2.
    #[error("configuration: {0}")]
    Config(String),
    /// Asana failed after the client's retries.
    #[error("Asana: {0}")]
    Asana(#[from] asana_api::Error),
    /// DocSpace failed after the client's retries.
    #[error("DocSpace: {0}")]
    DocSpace(#[from] docspace_api::Error),
    /// The state database failed.
    #[error("state database: {0}")]
    Store(#[from] StoreError),
}

/// Whether a failure may go away by itself, so a queue worker should try again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transience {
    /// Retrying would only repeat the answer (a disabled account, an invalid address,
    /// a task that is gone).
    #[default]
    Permanent,
    /// A 5xx, a dropped connection, a 401 (a rotated credential an operator will fix), or
    /// the state database: try again on the backoff schedule.
    Transient,
    /// A 429 that outlived the client's own retries: the budget is spent, so wait at
    /// least the rate-limit floor.
    RateLimited,
}

impl Transience {
    /// Whether to try again.
    pub fn is_retryable(self) -> bool {
        self != Transience::Permanent
    }

    /// The stronger of two: rate-limited over transient over permanent.
    pub fn worst(self, other: Transience) -> Transience {
        use Transience::*;
        match (self, other) {
            (RateLimited, _) | (_, RateLimited) => RateLimited,
            (Transient, _) | (_, Transient) => Transient,
            _ => Permanent,
        }
    }

    fn of(status: Option<u16>, retryable: bool) -> Transience {
        match status {
            Some(429) => Transience::RateLimited,
            // A rejected credential: an operator fixes that, and the work must still be
            // there (in the queue, then as a dead letter) when they have.
            Some(401) => Transience::Transient,
            _ if retryable => Transience::Transient,
            _ => Transience::Permanent,
        }
    }
}

impl From<&docspace_api::Error> for Transience {
    fn from(e: &docspace_api::Error) -> Transience {
        Transience::of(e.status(), e.is_retryable())
    }
}

impl From<&asana_api::Error> for Transience {
    fn from(e: &asana_api::Error) -> Transience {
        Transience::of(e.status(), e.is_retryable())
    }
}

impl CoreError {
    /// The brief's exit codes: 2 for anything the user must fix in what they typed or
    /// configured, 1 for a remote failure that outlived the retries.
    pub fn exit_code(&self) -> i32 {
        match self {
            CoreError::Input(_) | CoreError::Config(_) => 2,
            CoreError::Asana(asana_api::Error::InvalidInput(_))
            | CoreError::DocSpace(docspace_api::Error::InvalidInput(_)) => 2,
            // 401 means the credential is wrong: a configuration problem, not an outage.
            CoreError::Asana(e) if e.status() == Some(401) => 2,
            CoreError::DocSpace(e) if e.status() == Some(401) => 2,
            CoreError::Store(_) => 2,
            _ => 1,
        }
    }

    /// Whether a job that stopped with this error should be tried again. The state
    /// database counts as transient (a lock held by another process, a full disk).
    pub fn transience(&self) -> Transience {
        match self {
            CoreError::Asana(e) => e.into(),
            CoreError::DocSpace(e) => e.into(),
            CoreError::Store(_) => Transience::Transient,
            CoreError::Input(_) | CoreError::Config(_) => Transience::Permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transience_comes_from_the_status_not_the_text() {
        let api = |status: u16| asana_api::Error::Api {
            status,
            message: "the message mentions 429 but the status is what counts".into(),
            help: None,
        };
        assert_eq!(
            CoreError::Asana(api(429)).transience(),
            Transience::RateLimited
        );
        assert_eq!(
            CoreError::Asana(api(503)).transience(),
            Transience::Transient
        );
        assert_eq!(
            CoreError::Asana(api(401)).transience(),
            Transience::Transient
        );
        assert_eq!(
            CoreError::Asana(api(403)).transience(),
            Transience::Permanent
        );
        assert_eq!(
            CoreError::Input("x".into()).transience(),
            Transience::Permanent
        );
        assert_eq!(
            Transience::Transient.worst(Transience::RateLimited),
            Transience::RateLimited
        );
        assert_eq!(
            Transience::Permanent.worst(Transience::Permanent),
            Transience::Permanent
        );
    }
}
