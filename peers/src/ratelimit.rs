//! Rate limiters (28.1.C §6 anti-abuse). Pure: every call takes `now` as a
//! [`std::time::Instant`]; memory is bounded.
//!
//! * [`InboundRateLimiter`] — "Spam Connection: rate limit inbound connections per IP, at most
//!   N attempts per IP per minute" (default 10/min), over a sliding 60 s window;
//! * [`AddrTokenBucket`] — "Sybil via PEX: rate limit PEX": Bitcoin Core's per-peer token
//!   bucket for received addresses (`net_processing.cpp`, `m_addr_token_bucket`), applied to
//!   the entries of PEX responses.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Most IP addresses an [`InboundRateLimiter`] tracks at once (4096).
pub const MAX_TRACKED_IPS: usize = 4096;

/// Length of the [`InboundRateLimiter`] window (60 s).
const WINDOW: Duration = Duration::from_secs(60);

/// Limits accepted inbound connection attempts per IP: at most `per_minute` in any sliding
/// 60-second window (28.1.C §6 "Spam Connection"; the default is 10 per minute).
///
/// Only accepted attempts count: a refused attempt does not extend the wait. IPv4-mapped
/// IPv6 addresses count as their IPv4 address. At most [`MAX_TRACKED_IPS`] IPs are tracked,
/// each with at most `per_minute` timestamps; when a new IP comes in while the table is full,
/// the IPs whose window has expired are dropped first, then the one whose last accepted
/// attempt is the oldest (which may let that IP in early: memory is bounded first).
#[derive(Clone, Debug)]
pub struct InboundRateLimiter {
    per_minute: u32,
    /// IP → times of its accepted attempts within the window, oldest first.
    seen: HashMap<IpAddr, VecDeque<Instant>>,
}

impl InboundRateLimiter {
    /// A limiter allowing `per_minute` accepted attempts per IP per sliding minute (0 refuses
    /// everything).
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            seen: HashMap::new(),
        }
    }

    /// The configured limit, in attempts per IP per 60 s.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Number of IPs currently tracked (at most [`MAX_TRACKED_IPS`]).
    pub fn tracked(&self) -> usize {
        self.seen.len()
    }

    /// Whether a connection attempt from `ip` at `now` is accepted; an accepted attempt is
    /// counted. `now` should not go backwards (an earlier `now` is treated as "no time
    /// passed").
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.per_minute == 0 {
            return false;
        }
        let ip = ip.to_canonical();
        let limit = usize::try_from(self.per_minute).unwrap_or(usize::MAX);
        if let Some(times) = self.seen.get_mut(&ip) {
            expire(times, now);
            if times.len() >= limit {
                return false;
            }
            times.push_back(now);
            return true;
        }
        if self.seen.len() >= MAX_TRACKED_IPS {
            self.prune(now);
        }
        if self.seen.len() >= MAX_TRACKED_IPS {
            let oldest = self
                .seen
                .iter()
                .min_by_key(|(_, t)| t.back().copied())
                .map(|(ip, _)| *ip);
            if let Some(oldest) = oldest {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(ip, VecDeque::from([now]));
        true
    }

    /// Forgets every attempt older than 60 s before `now`, and the IPs left with none.
    pub fn prune(&mut self, now: Instant) {
        self.seen.retain(|_, times| {
            expire(times, now);
            !times.is_empty()
        });
    }
}

/// Drops the attempts outside the window ending at `now`.
fn expire(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
    {
        times.pop_front();
    }
}

/// Addresses a peer may send per second, on average (0.1, Bitcoin Core's
/// `MAX_ADDR_RATE_PER_SECOND`).
pub const MAX_ADDR_RATE_PER_SECOND: f64 = 0.1;

/// Cap of the time-based refill (1000 tokens, Bitcoin Core's
/// `MAX_ADDR_PROCESSING_TOKEN_BUCKET`); also the bonus for each request we send.
pub const MAX_ADDR_PROCESSING_TOKEN_BUCKET: f64 = 1000.0;

/// Bitcoin Core's per-peer token bucket for received addresses, applied to the entries of
/// the PEX responses a peer sends (28.1.C §6 "Sybil via PEX": do not trust, nor even process,
/// unlimited peer lists).
///
/// One token is one address processed. A bucket starts with 1 token; each PEX request we
/// send to the peer adds [`MAX_ADDR_PROCESSING_TOKEN_BUCKET`] (1000) tokens, uncapped (so
/// one full answer to our own request is always processed); time adds
/// [`MAX_ADDR_RATE_PER_SECOND`] (0.1) token per second, but only while the bucket is below
/// 1000 and never beyond it. Addresses beyond the tokens are dropped, not queued.
#[derive(Clone, Debug, PartialEq)]
pub struct AddrTokenBucket {
    tokens: f64,
    /// When the tokens were last brought up to date.
    updated: Instant,
}

impl AddrTokenBucket {
    /// A bucket for a peer connected at `now`, holding 1 token.
    pub fn new(now: Instant) -> Self {
        Self {
            tokens: 1.0,
            updated: now,
        }
    }

    /// A full bucket (1000 tokens) for a peer connected at `now`: used for the addresses we
    /// *serve* a requester, so its first PEX answer is complete and later ones are paced at
    /// 0.1 address per second.
    pub fn full(now: Instant) -> Self {
        Self {
            tokens: MAX_ADDR_PROCESSING_TOKEN_BUCKET,
            updated: now,
        }
    }

    /// We sent the peer a PEX request: adds 1000 tokens, beyond the cap (Bitcoin Core does
    /// this when it sends GETADDR).
    pub fn on_request_sent(&mut self) {
        self.tokens += MAX_ADDR_PROCESSING_TOKEN_BUCKET;
    }

    /// The peer sent `n` addresses at `now`: returns how many of them (the first ones) may be
    /// processed, and spends that many tokens; the other `n - returned` are to be dropped.
    pub fn take(&mut self, n: usize, now: Instant) -> usize {
        self.tokens = self.tokens(now);
        self.updated = self.updated.max(now);
        // `tokens` is finite and at most 1000 + 1000 × requests sent; the cast saturates.
        let whole = self.tokens.floor();
        let allowed = if whole >= n as f64 { n } else { whole as usize };
        self.tokens -= allowed as f64;
        allowed
    }

    /// The tokens available at `now`, refill included (at least 0).
    pub fn tokens(&self, now: Instant) -> f64 {
        if self.tokens >= MAX_ADDR_PROCESSING_TOKEN_BUCKET {
            return self.tokens;
        }
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        (self.tokens + elapsed * MAX_ADDR_RATE_PER_SECOND).min(MAX_ADDR_PROCESSING_TOKEN_BUCKET)
    }
}

#[cfg(test)]
#[path = "ratelimit_tests.rs"]
mod tests;
