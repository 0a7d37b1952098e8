//! The fake's state behind one mutex: the directory (users and their photos), issued tokens,
//! the records, counters and knobs in use; and [`Inner`], what every handler gets.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Instant, SystemTime};

use rsa::sha2::{Digest, Sha256};

use super::config::{Failure, GraphServerConfig, UserSeed};
use super::identity::IdentityState;
use super::images::{detect_image, image_size};
use super::recorder::RequestRecord;
use super::reply::{Corr, Op, Reply};

/// A snapshot of one directory user.
#[derive(Clone, Debug)]
pub struct UserSnapshot {
    /// Object id.
    pub id: String,
    /// `userPrincipalName`.
    pub user_principal_name: String,
    /// `employeeId`.
    pub employee_id: Option<String>,
    /// `mail`.
    pub mail: Option<String>,
    /// Stored photo bytes (exactly as uploaded).
    pub photo: Option<Vec<u8>>,
    /// Current `@odata.mediaEtag`.
    pub photo_etag: Option<String>,
    /// `@odata.mediaContentType` of the stored photo.
    pub photo_content_type: Option<String>,
    /// Pixel size of the stored photo, when it parses.
    pub photo_size: Option<(u32, u32)>,
    /// Successful uploads (PUT or PATCH, direct or batched).
    pub uploads: u64,
    /// Successful deletes.
    pub deletes: u64,
    /// `onPremisesSyncEnabled`: `Some(true)` for a user Entra Connect syncs from AD.
    pub on_premises_sync_enabled: Option<bool>,
}

#[derive(Clone, Debug)]
pub(super) struct Photo {
    pub(super) bytes: Arc<Vec<u8>>,
    pub(super) etag: String,
    pub(super) content_type: &'static str,
    pub(super) size: Option<(u32, u32)>,
}

#[derive(Debug)]
pub(super) struct UserEntry {
    pub(super) id: String,
    pub(super) upn: String,
    pub(super) employee_id: Option<String>,
    pub(super) mail: Option<String>,
    pub(super) display_name: Option<String>,
    pub(super) on_premises_sync_enabled: Option<bool>,
    pub(super) photo: Option<Photo>,
    /// What metadata reads still show, and for how many more reads.
    pub(super) stale: Option<(Option<Photo>, u32)>,
    pub(super) uploads: u64,
    pub(super) deletes: u64,
}

#[derive(Clone, Debug)]
pub(super) struct TokenInfo {
    pub(super) app_id: String,
    pub(super) roles: Vec<String>,
    pub(super) expires_at: Instant,
}

pub(super) struct ServerState {
    pub(super) cfg: GraphServerConfig,
    pub(super) users: Vec<UserEntry>,
    pub(super) tokens: HashMap<String, TokenInfo>,
    pub(super) records: Vec<RequestRecord>,
    pub(super) next_seq: u64,
    pub(super) ops: u64,
    pub(super) injected: VecDeque<Failure>,
    pub(super) in_flight: HashMap<String, usize>,
    pub(super) raw_in_flight: usize,
    pub(super) max_raw_in_flight: usize,
    pub(super) max_admitted: usize,
    pub(super) etag_counter: u64,
    pub(super) tokens_issued: u64,
    pub(super) assertion_jtis: Vec<String>,
    pub(super) identity: IdentityState,
}

impl ServerState {
    /// A fresh state for `cfg` (its `users` are added by the caller).
    pub(super) fn new(cfg: GraphServerConfig) -> Self {
        Self {
            cfg,
            users: Vec::new(),
            tokens: HashMap::new(),
            records: Vec::new(),
            next_seq: 0,
            ops: 0,
            injected: VecDeque::new(),
            in_flight: HashMap::new(),
            raw_in_flight: 0,
            max_raw_in_flight: 0,
            max_admitted: 0,
            etag_counter: 0,
            tokens_issued: 0,
            assertion_jtis: Vec::new(),
            identity: IdentityState::default(),
        }
    }

    pub(super) fn new_etag(&mut self, bytes: &[u8], previous: Option<&str>) -> String {
        loop {
            self.etag_counter += 1;
            let mut h = Sha256::new();
            h.update(self.etag_counter.to_le_bytes());
            h.update(bytes);
            let d = h.finalize();
            let etag = format!("\"{:02X}{:02X}{:02X}{:02X}\"", d[0], d[1], d[2], d[3]);
            if previous != Some(etag.as_str()) {
                return etag;
            }
        }
    }

    pub(super) fn find_user(&self, key: &str) -> Option<usize> {
        let lower = key.to_lowercase();
        self.users
            .iter()
            .position(|u| u.id.to_lowercase() == lower || u.upn.to_lowercase() == lower)
    }
}

pub(super) struct Inner {
    pub(super) base_url: String,
    pub(super) started: Instant,
    pub(super) state: Mutex<ServerState>,
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, ServerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn record(&self, op: &Op, corr: &Corr, reply: &Reply) {
        let answered_at = Instant::now();
        let answered_wall = SystemTime::now();
        let mut st = self.lock();
        st.next_seq += 1;
        let rec = RequestRecord {
            seq: st.next_seq,
            kind: op.kind.clone(),
            received_at: op.received_at,
            answered_at,
            received_wall: op.received_wall,
            answered_wall,
            method: op.method.clone(),
            path: op.path.clone(),
            query: op.query.clone(),
            headers: op.headers.clone(),
            authorization_present: op.authorization_present,
            client_request_id: corr.sent.clone(),
            request_id: corr.request_id.clone(),
            app_id: reply.app_id.clone(),
            user_id: reply.user_id.clone(),
            status: reply.status,
            error_code: reply.error_code.clone(),
            request_body_len: op.body.len(),
            response_body_len: reply.payload.len(),
            throttled: reply.throttled,
            retry_after: reply.retry_after.clone(),
            content_type: op.header("content-type").map(str::to_string),
            detected_image: reply.detected_image,
            in_flight_at_arrival: reply.in_flight_at_arrival,
        };
        st.records.push(rec);
    }
}

pub(super) fn add_user(st: &mut ServerState, seed: UserSeed) {
    let photo = seed.photo.map(|bytes| {
        let etag = match seed.photo_etag {
            Some(e) => e,
            None => st.new_etag(&bytes, None),
        };
        let content_type = detect_image(&bytes).unwrap_or("application/octet-stream");
        let size = image_size(&bytes);
        Photo {
            bytes: Arc::new(bytes),
            etag,
            content_type,
            size,
        }
    });
    st.users.push(UserEntry {
        id: seed.id,
        upn: seed.user_principal_name,
        employee_id: seed.employee_id,
        mail: seed.mail,
        display_name: seed.display_name,
        on_premises_sync_enabled: seed.on_premises_sync_enabled,
        photo,
        stale: None,
        uploads: 0,
        deletes: 0,
    });
}
