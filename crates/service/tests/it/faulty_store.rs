//! A fault hook in the store: a [`Store`] that forwards everything to the real one, and
//! fails every write while its switch is on (as a full disk or a locked database would),
//! so the service's answers to a store that cannot write are tested deterministically.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bridge_core::domain::RoomId;
use bridge_core::record::{
    ClaimEpoch, Fence, Granted, HistoryFilter, Holder, Job, JobLease, LedgerEntry, NewJob,
    NewLedgerEntry, PendingRemoval, QueueDepth, Replica, ReplicaId, Result, RoomGrant, Store,
    StoreError, SyncMark, WebhookReg,
};
use chrono::{DateTime, Utc};
use tokio::sync::Notify;

use crate::support::WrapStore;

/// The switch, shared by the test and the store it wraps.
#[derive(Debug, Clone, Default)]
pub struct WriteFaults {
    failing: Arc<AtomicBool>,
    refused: Arc<AtomicU64>,
}

impl WriteFaults {
    /// While `on`, every write fails.
    pub fn fail_writes(&self, on: bool) {
        self.failing.store(on, Ordering::SeqCst);
    }

    /// Writes refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// Wraps the service's store with this switch.
    pub fn wrapper(&self) -> WrapStore {
        let faults = self.clone();
        Box::new(move |inner| Arc::new(FaultyStore { inner, faults }) as Arc<dyn Store>)
    }
}

#[derive(Debug)]
struct FaultyStore {
    inner: Arc<dyn Store>,
    faults: WriteFaults,
}

impl FaultyStore {
    fn write(&self) -> Result<()> {
        if self.faults.failing.load(Ordering::SeqCst) {
            self.faults.refused.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Io {
                what: "write",
                path: "(fault hook)".into(),
                source: std::io::Error::other("database or disk is full (fault hook)"),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Store for FaultyStore {
    async fn record(&self, e: &NewLedgerEntry) -> Result<i64> {
        self.write()?;
        self.inner.record(e).await
    }
    async fn record_many(&self, es: &[NewLedgerEntry]) -> Result<()> {
        self.write()?;
        self.inner.record_many(es).await
    }
    async fn history(&self, f: &HistoryFilter) -> Result<Vec<LedgerEntry>> {
        self.inner.history(f).await
    }
    async fn enqueue(&self, jobs: &[NewJob]) -> Result<Vec<bool>> {
        self.write()?;
        self.inner.enqueue(jobs).await
    }
    async fn claim(&self, max: usize, lease: Duration, holder: &ReplicaId) -> Result<Vec<Job>> {
        self.write()?;
        self.inner.claim(max, lease, holder).await
    }
    async fn extend_lease(&self, lease: JobLease, duration: Duration) -> Result<Fence> {
        self.write()?;
        self.inner.extend_lease(lease, duration).await
    }
    async fn complete(&self, lease: JobLease) -> Result<Fence> {
        self.write()?;
        self.inner.complete(lease).await
    }
    async fn retry_later(&self, lease: JobLease, error: &str, at: DateTime<Utc>) -> Result<Fence> {
        self.write()?;
        self.inner.retry_later(lease, error, at).await
    }
    async fn bury(&self, lease: JobLease, error: &str) -> Result<Fence> {
        self.write()?;
        self.inner.bury(lease, error).await
    }
    async fn release(&self, lease: JobLease) -> Result<Fence> {
        self.write()?;
        self.inner.release(lease).await
    }
    async fn replay_dead(&self) -> Result<u64> {
        self.write()?;
        self.inner.replay_dead().await
    }
    async fn replay_job(&self, id: i64) -> Result<bool> {
        self.write()?;
        self.inner.replay_job(id).await
    }
    async fn oldest_queued_at(&self) -> Result<Option<DateTime<Utc>>> {
        self.inner.oldest_queued_at().await
    }
    async fn dead_jobs(&self, limit: u32) -> Result<Vec<Job>> {
        self.inner.dead_jobs(limit).await
    }
    async fn queue_depth(&self) -> Result<QueueDepth> {
        self.inner.queue_depth().await
    }
    async fn prune_done(&self, older_than: Duration) -> Result<u64> {
        self.write()?;
        self.inner.prune_done(older_than).await
    }
    fn wakeup(&self) -> Arc<Notify> {
        self.inner.wakeup()
    }
    async fn register_replica(&self, id: &ReplicaId, info: &str, ttl: Duration) -> Result<()> {
        self.write()?;
        self.inner.register_replica(id, info, ttl).await
    }
    async fn beat_replica(&self, id: &ReplicaId, ttl: Duration) -> Result<bool> {
        self.write()?;
        self.inner.beat_replica(id, ttl).await
    }
    async fn retire_replica(&self, id: &ReplicaId) -> Result<()> {
        self.write()?;
        self.inner.retire_replica(id).await
    }
    async fn replicas(&self) -> Result<Vec<Replica>> {
        self.inner.replicas().await
    }
    async fn claim_epoch(&self) -> Result<ClaimEpoch> {
        self.inner.claim_epoch().await
    }
    async fn claim_keys(
        &self,
        keys: &[String],
        holder: &Holder,
        since: ClaimEpoch,
        lease: Duration,
    ) -> Result<Vec<Granted>> {
        self.write()?;
        self.inner.claim_keys(keys, holder, since, lease).await
    }
    async fn extend_claims(&self, holder: &Holder, lease: Duration) -> Result<u64> {
        self.write()?;
        self.inner.extend_claims(holder, lease).await
    }
    async fn release_claims(&self, keys: &[String], holder: &Holder) -> Result<()> {
        self.write()?;
        self.inner.release_claims(keys, holder).await
    }
    async fn expect_webhook(&self, id: &str, project_gid: &str, target: &str) -> Result<()> {
        self.write()?;
        self.inner.expect_webhook(id, project_gid, target).await
    }
    async fn store_webhook_secret(&self, id: &str, secret: &str) -> Result<bool> {
        self.write()?;
        self.inner.store_webhook_secret(id, secret).await
    }
    async fn activate_webhook(&self, id: &str, asana_gid: &str) -> Result<()> {
        self.write()?;
        self.inner.activate_webhook(id, asana_gid).await
    }
    async fn webhook(&self, id: &str) -> Result<Option<WebhookReg>> {
        self.inner.webhook(id).await
    }
    async fn webhooks(&self) -> Result<Vec<WebhookReg>> {
        self.inner.webhooks().await
    }
    async fn delete_webhook(&self, id: &str) -> Result<bool> {
        self.write()?;
        self.inner.delete_webhook(id).await
    }
    async fn delete_webhook_by_asana_gid(&self, asana_gid: &str) -> Result<bool> {
        self.write()?;
        self.inner.delete_webhook_by_asana_gid(asana_gid).await
    }
    async fn sync_token(&self, resource_gid: &str) -> Result<Option<String>> {
        self.inner.sync_token(resource_gid).await
    }
    async fn set_sync_token(&self, resource_gid: &str, token: &str) -> Result<()> {
        self.write()?;
        self.inner.set_sync_token(resource_gid, token).await
    }
    async fn sync_mark(&self, rule_key: &str) -> Result<Option<SyncMark>> {
        self.inner.sync_mark(rule_key).await
    }
    async fn record_full_sync(
        &self,
        rule_key: &str,
        project_gid: &str,
        fingerprint: &str,
        started_at: DateTime<Utc>,
    ) -> Result<()> {
        self.write()?;
        self.inner
            .record_full_sync(rule_key, project_gid, fingerprint, started_at)
            .await
    }
    async fn record_incremental_sync(
        &self,
        rule_key: &str,
        fingerprint: &str,
        started_at: DateTime<Utc>,
    ) -> Result<bool> {
        self.write()?;
        self.inner
            .record_incremental_sync(rule_key, fingerprint, started_at)
            .await
    }
    async fn record_grants(&self, grants: &[RoomGrant]) -> Result<()> {
        self.write()?;
        self.inner.record_grants(grants).await
    }
    async fn room_grants(&self, room: &RoomId) -> Result<Vec<RoomGrant>> {
        self.inner.room_grants(room).await
    }
    async fn pending_removals(&self, room: &RoomId) -> Result<Vec<PendingRemoval>> {
        self.inner.pending_removals(room).await
    }
    async fn note_removal(&self, p: &PendingRemoval) -> Result<PendingRemoval> {
        self.write()?;
        self.inner.note_removal(p).await
    }
    async fn cancel_removals(&self, keys: &[(RoomId, String)]) -> Result<Vec<PendingRemoval>> {
        self.write()?;
        self.inner.cancel_removals(keys).await
    }
    async fn finish_removal(&self, room: &RoomId, email: &str) -> Result<()> {
        self.write()?;
        self.inner.finish_removal(room, email).await
    }
    async fn schedule_job(&self, job: &NewJob, due: DateTime<Utc>) -> Result<bool> {
        self.write()?;
        self.inner.schedule_job(job, due).await
    }
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }
    async fn probe_write(&self) -> Result<()> {
        self.write()?;
        self.inner.probe_write().await
    }
    async fn close(&self) {
        self.inner.close().await
    }
}
