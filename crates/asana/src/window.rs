//! [`RateWindow`]: Asana's per-minute budget as Asana counts it — at most `limit` requests
//! in any rolling window (one minute in production) — shared by every clone of a client.
//!
//! Hand-written (about 100 lines) rather than taken from a crate: `governor`, which this
//! client used before, implements GCRA, a token bucket. With a burst of `limit` it lets a
//! second `limit` through during the first minute as the bucket refills, so Asana's window
//! would answer 429; with a small burst (the old setting, rpm/15) it paces a job that fits
//! in one minute's budget over most of that minute. What Asana counts is a sliding log of
//! arrivals, which a bucket cannot express, and this client also needs two things no
//! generic limiter offers: a slot counts from the moment its *response* arrived (the latest
//! instant Asana can have counted the request, so the client's window never ends before
//! Asana's does, whatever the network delay), and a `Retry-After` pauses every caller.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// At most `limit` requests in any `window`, counted from when each one finished.
/// Uses tokio's clock, so tests can run it under paused time.
#[derive(Debug)]
pub struct RateWindow {
    limit: usize,
    window: Duration,
    state: Mutex<State>,
    freed: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Slots handed out and not yet finished.
    in_flight: usize,
    /// When each finished slot finished, oldest first (pushed in clock order).
    finished: VecDeque<Instant>,
    /// No slot is handed out before this (a `Retry-After`).
    paused_until: Option<Instant>,
}

/// One request's place in the window; it starts to count down when dropped.
#[derive(Debug)]
pub struct Slot<'a> {
    window: &'a RateWindow,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut s = self.window.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
        s.finished.push_back(Instant::now());
        drop(s);
        self.window.freed.notify_waiters();
    }
}

impl RateWindow {
    /// `limit` requests (at least 1) per rolling `window`.
    pub fn new(limit: u32, window: Duration) -> RateWindow {
        RateWindow {
            limit: limit.max(1) as usize,
            window,
            state: Mutex::new(State::default()),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the window has room (and no pause is in force), then takes a slot.
    /// Without waiting while fewer than `limit` requests were sent in the last window.
    pub async fn acquire(&self) -> Slot<'_> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the state is read, so a slot finishing in between wakes us.
            freed.as_mut().enable();
            let wait_until = {
                let mut s = self.lock();
                let now = Instant::now();
                while s.finished.front().is_some_and(|t| *t + self.window <= now) {
                    s.finished.pop_front();
                }
                match s.paused_until {
                    Some(until) if until > now => Some(until),
                    _ if s.in_flight + s.finished.len() < self.limit => {
                        s.in_flight += 1;
                        return Slot { window: self };
                    }
                    // Every slot is in flight: the first to finish starts the clock.
                    _ if s.finished.is_empty() => None,
                    _ => s.finished.front().map(|t| *t + self.window),
                }
            };
            match wait_until {
                Some(at) => tokio::time::sleep_until(at).await,
                None => freed.await,
            }
        }
    }

    /// Hands out no slot for `wait` from now (a 429's `Retry-After`); a longer pause
    /// already in force stays.
    pub fn pause_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut s = self.lock();
        if s.paused_until.is_none_or(|p| p < until) {
            s.paused_until = Some(until);
        }
    }

    /// Slots in flight plus those finished within the window: how much of the budget is
    /// spent right now.
    pub fn used(&self) -> usize {
        let mut s = self.lock();
        let now = Instant::now();
        while s.finished.front().is_some_and(|t| *t + self.window <= now) {
            s.finished.pop_front();
        }
        s.in_flight + s.finished.len()
    }
}
