//! Deliveries received and rejected in the last hour, for the status page: sixty one-minute
//! buckets in a ring, so memory stays constant however busy the service is.

use std::sync::Mutex;
use std::time::{Duration, Instant};

const MINUTES: u64 = 60;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    minute: u64,
    received: u64,
    rejected: u64,
}

/// Counts per minute over the last 60 minutes.
#[derive(Debug)]
pub struct LastHour {
    start: Instant,
    buckets: Mutex<[Bucket; MINUTES as usize]>,
}

/// What [`LastHour::totals`] returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Deliveries (and handshakes) accepted.
    pub received: u64,
    /// Deliveries refused (bad signature, unknown id, too large, …).
    pub rejected: u64,
}

impl Default for LastHour {
    fn default() -> Self {
        LastHour::new(Instant::now())
    }
}

impl LastHour {
    fn new(start: Instant) -> LastHour {
        LastHour {
            start,
            buckets: Mutex::new([Bucket::default(); MINUTES as usize]),
        }
    }

    fn minute(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs() / 60
    }

    fn bump(&self, now: Instant, rejected: bool) {
        let minute = self.minute(now);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = &mut buckets[(minute % MINUTES) as usize];
        if b.minute != minute {
            *b = Bucket {
                minute,
                ..Bucket::default()
            };
        }
        if rejected {
            b.rejected += 1;
        } else {
            b.received += 1;
        }
    }

    fn totals_at(&self, now: Instant) -> Totals {
        let minute = self.minute(now);
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets
            .iter()
            .filter(|b| b.minute + MINUTES > minute && b.minute <= minute)
            .fold(Totals::default(), |t, b| Totals {
                received: t.received + b.received,
                rejected: t.rejected + b.rejected,
            })
    }

    /// Counts an accepted delivery now.
    pub fn received(&self) {
        self.bump(Instant::now(), false);
    }

    /// Counts a refused delivery now.
    pub fn rejected(&self) {
        self.bump(Instant::now(), true);
    }

    /// Received and rejected in the last 60 minutes.
    pub fn totals(&self) -> Totals {
        self.totals_at(Instant::now())
    }
}

/// How long the window is, for the page's wording.
pub const WINDOW: Duration = Duration::from_secs(MINUTES * 60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_fall_out_of_the_window_after_an_hour() {
        let t0 = Instant::now();
        let h = LastHour::new(t0);
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        h.bump(at(0), false);
        h.bump(at(30), true);
        h.bump(at(61), false);
        assert_eq!(
            h.totals_at(at(120)),
            Totals {
                received: 2,
                rejected: 1
            }
        );
        // 59 minutes after the first minute it still counts; at 60 it is gone.
        assert_eq!(h.totals_at(at(59 * 60 + 59)).received, 2);
        assert_eq!(
            h.totals_at(at(60 * 60)),
            Totals {
                received: 1,
                rejected: 0
            }
        );
        // A bucket reused an hour later starts from zero.
        h.bump(at(60 * 60 + 5), true);
        assert_eq!(
            h.totals_at(at(60 * 60 + 6)),
            Totals {
                received: 1,
                rejected: 1
            }
        );
        assert_eq!(h.totals_at(at(3 * 60 * 60)), Totals::default());
    }
}
