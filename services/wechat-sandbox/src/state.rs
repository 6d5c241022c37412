//! The state shared by the API and admin listeners: config, clock, tokens, messages, faults
//! and counters behind one mutex (never held across an await).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::config::SandboxConfig;
use crate::faults::FaultSet;
use crate::listener::ListenerControl;
use crate::messages::MessageStore;
use crate::push::KeptPush;
use crate::tokens::TokenStore;

/// The first msgid handed out; msgids then increase by one per recorded message.
const FIRST_MSGID: u64 = 2_000_000_001;

/// Call counts, so tests can assert how often wxpush hit WeChat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Per appid: successful token calls (`/cgi-bin/token` and `/cgi-bin/stable_token`).
    pub token_fetches: HashMap<String, u64>,
    /// Per appid: calls that created a new token.
    pub new_tokens_issued: HashMap<String, u64>,
    /// Per API path: every request that reached a handler, faulted or not.
    pub api_calls: HashMap<String, u64>,
    /// Messages recorded (dedup repeats excluded).
    pub messages_sent: u64,
}

/// Everything that changes while the sandbox runs.
#[derive(Debug)]
pub struct Inner {
    /// Issued tokens and per-app token state.
    pub tokens: TokenStore,
    /// Recorded messages, dedup keys and consents.
    pub messages: MessageStore,
    /// Active faults.
    pub faults: FaultSet,
    /// Call counters.
    pub counters: Counters,
    /// Pushes made to callback URLs, oldest first (the newest [`PUSHES_KEPT`]).
    pub pushes: std::collections::VecDeque<KeptPush>,
    /// The id of the next push.
    pub next_push: u64,
}

/// Push records kept for the admin API.
pub const PUSHES_KEPT: usize = 10_000;

impl Inner {
    fn new(config: &SandboxConfig, first_msgid: u64) -> Self {
        Self {
            tokens: TokenStore::default(),
            messages: MessageStore::new(config, first_msgid),
            faults: FaultSet::default(),
            counters: Counters::default(),
            pushes: Default::default(),
            next_push: 1,
        }
    }
}

/// The state both routers share.
#[derive(Debug)]
pub struct AppState {
    /// The world being imitated (never changes).
    pub config: SandboxConfig,
    /// The sandbox clock.
    pub clock: Clock,
    /// Switches the API listener between serving and refusing.
    pub api_control: ListenerControl,
    /// Calls the apps' callback URLs.
    pub http: reqwest::Client,
    inner: Mutex<Inner>,
}

impl AppState {
    /// Fresh state for `config`.
    pub fn new(config: SandboxConfig, api_control: ListenerControl) -> Self {
        let inner = Inner::new(&config, FIRST_MSGID);
        Self {
            config,
            clock: Clock::default(),
            api_control,
            http: {
                crate::admin::install_crypto_provider();
                reqwest::Client::new()
            },
            inner: Mutex::new(inner),
        }
    }

    /// Locks the mutable state (a poisoned lock is still usable: the data stays consistent
    /// enough for a test double).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets messages, counters, faults, tokens, consents used and the clock offset; msgids keep
    /// increasing so they stay unique across resets.
    pub fn reset(&self) {
        let mut inner = self.lock();
        let next = inner.messages.next_msgid();
        *inner = Inner::new(&self.config, next);
        self.clock.reset();
    }
}
