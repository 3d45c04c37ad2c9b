//! One error type for the flow, so the binary can map every failure to the documented
//! exit code without knowing which layer produced it.

use crate::record::StoreError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The user asked for something that cannot work (bad gid, unknown access level,
    /// a room that does not allow the level): exit 2, nothing was written.
    #[error("{0}")]
    Input(String),
    /// The configuration is incomplete or contradictory: exit 2.
    #[error("configuration: {0}")]
    Config(String),
    #[error("Asana: {0}")]
    Asana(#[from] asana_api::Error),
    #[error("DocSpace: {0}")]
    DocSpace(#[from] docspace_api::Error),
    #[error("state database: {0}")]
    Store(#[from] StoreError),
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
}
