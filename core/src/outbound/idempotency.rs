//! `Idempotency-Key` (R-OUT-6): a flow that retries a send call — after a
//! timeout, a crash, a deploy — gets the first call's answer, and nobody gets
//! a message twice.
//!
//! The first call with a key takes the key's lease ([`crate::lease`]) and
//! stores its answer when done. A retry that finds the answer replays it. A
//! retry that arrives while the first call holds the lease waits for its
//! answer (up to [`WAIT_MILLIS`]), then replays it, or answers 409 if it is
//! still not done. A call that died leaves its lease to expire; the next
//! retry then takes the key over and resumes the call from the batch records
//! the first one left ([`crate::outbound::send::Progress`]): what was sent,
//! or handed to the provider without an answer, is not sent again. An
//! answer that sent nothing — every batch over the hour's budget — is not
//! kept, so retrying it later with the same key does send.
//!
//! Keys are per organisation and configuration, and bound to the body they
//! came with: the same key with another body is refused, since replaying an
//! answer to a different list would hide that the new list was not sent.

use crate::api::Response;
use crate::error::Error;
use crate::lease::{self, Lease};
use crate::outbound::send::Progress;
use crate::ports::Ports;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;

pub const HEADER: &str = "idempotency-key";
/// How long a retry waits for the first call's answer.
pub const WAIT_MILLIS: u64 = 10_000;
const MAX_KEY_LENGTH: usize = 255;

/// The request's `Idempotency-Key`, if it has one.
pub fn key_of(header: Option<&str>) -> Result<Option<String>, Error> {
    let Some(key) = header else {
        return Ok(None);
    };
    let key = key.trim();
    if key.is_empty() || key.len() > MAX_KEY_LENGTH || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::Malformed {
            field: Some("Idempotency-Key".into()),
            code: "invalid_idempotency_key",
            message: format!("Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters without spaces, e.g. a UUID"),
        });
    }
    Ok(Some(key.to_owned()))
}

/// The right to run a call, held by one caller with its key at a time.
#[derive(Debug)]
pub struct Claimed {
    base: String,
    fingerprint: String,
    lease: RefCell<Lease>,
}

#[derive(Debug)]
pub enum Begun {
    /// Run (or resume) the call, then [`Claimed::finish`].
    First(Claimed),
    /// The first call's answer.
    Replay(Response),
}

#[derive(Serialize, Deserialize)]
struct Stored {
    fingerprint: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// Claims `key` for this call, or finds (or waits for) the answer of the
/// call that holds it.
pub fn begin(
    ports: &Ports<'_>,
    org: &str,
    config_id: &str,
    key: &str,
    body: &[u8],
) -> Result<Begun, Error> {
    let kv = ports.kv;
    let base = format!(
        "org/{org}/outbound/idempotency/{}",
        crate::auth::sha256_hex(&format!("{config_id}\n{key}"))
    );
    let fingerprint = crate::encoding::hex(&<sha2::Sha256 as sha2::Digest>::digest(body));
    let result_key = format!("{base}/result");
    let claim = format!("{base}/claim");
    let mut waited = 0;
    let mut step = 50;
    loop {
        if let Some(bytes) = kv.get(&result_key)? {
            return replay(&result_key, &fingerprint, &bytes);
        }
        if let Some(lease) = lease::acquire(kv, &claim, ports.clock.now_millis())? {
            return Ok(Begun::First(Claimed {
                base,
                fingerprint,
                lease: RefCell::new(lease),
            }));
        }
        if waited >= WAIT_MILLIS {
            return Err(Error::conflict(
                "request_in_progress",
                format!("a call with this Idempotency-Key started earlier and has not finished after {} more seconds; retry later with the same key to get its result (a call that was cut off is resumed by a retry after {} seconds)", WAIT_MILLIS / 1000, lease::retry_after_seconds()),
            ));
        }
        ports.clock.sleep_millis(step);
        waited += step;
        step = (step * 2).min(1_000);
    }
}

fn replay(key: &str, fingerprint: &str, bytes: &[u8]) -> Result<Begun, Error> {
    let stored: Stored = crate::store::decode(key, bytes)?;
    if stored.fingerprint != fingerprint {
        return Err(Error::Invalid {
            field: Some("Idempotency-Key".into()),
            code: "idempotency_key_reused",
            message:
                "this Idempotency-Key was used with a different body; use a new key for a new list"
                    .into(),
        });
    }
    let mut response = Response {
        status: stored.status,
        headers: stored.headers,
        body: stored.body.into_bytes(),
    };
    response
        .headers
        .push(("idempotent-replayed".into(), "true".into()));
    Ok(Begun::Replay(response))
}

impl Claimed {
    fn result_key(&self) -> String {
        format!("{}/result", self.base)
    }

    /// Where the call records its batches, so a retry that takes the key
    /// over resumes it.
    pub fn progress(&self) -> Progress<'_> {
        Progress {
            prefix: format!("{}/batch", self.base),
            lease: &self.lease,
        }
    }

    /// A stable 128-bit id for what the call creates (a scheduled job), so
    /// a resumed call finds it instead of creating another.
    pub fn derived_id(&self) -> String {
        crate::auth::sha256_hex(&format!("{}\njob", self.base))[..32].to_owned()
    }

    /// Gives the key back without an answer, so that a retry runs the call
    /// (resuming it from its batch records) at once.
    pub fn give_back(self, ports: &Ports<'_>) {
        self.lease.into_inner().release(ports.kv);
    }

    /// Keeps `response`, the call's final answer, for retries.
    pub fn keep(self, ports: &Ports<'_>, response: &Response) {
        let stored = Stored {
            fingerprint: self.fingerprint.clone(),
            status: response.status,
            headers: response.headers.clone(),
            body: String::from_utf8_lossy(&response.body).into_owned(),
        };
        // Best effort: without it, a retry takes the key over after the
        // lease and answers from the batch records, sending nothing again.
        let _ = ports
            .kv
            .set(&self.result_key(), &crate::store::encode(&stored));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryPorts;
    use crate::ports::Clock;

    fn first(ports: &Ports<'_>, key: &str, body: &[u8]) -> Claimed {
        match begin(ports, "o", "c", key, body).unwrap() {
            Begun::First(claimed) => claimed,
            Begun::Replay(_) => panic!("expected to run first"),
        }
    }

    #[test]
    fn a_retry_replays_the_first_answer_and_refuses_another_body() {
        let memory = MemoryPorts::default();
        let ports = memory.ports();
        let claimed = first(&ports, "k1", b"list");
        let answer = Response::json(200, &serde_json::json!({"sent": 1}));
        claimed.keep(&ports, &answer);
        let Begun::Replay(replayed) = begin(&ports, "o", "c", "k1", b"list").unwrap() else {
            panic!("expected a replay");
        };
        assert_eq!((replayed.status, &replayed.body), (200, &answer.body));
        assert!(replayed
            .headers
            .contains(&("idempotent-replayed".into(), "true".into())));
        let reused = begin(&ports, "o", "c", "k1", b"other list").unwrap_err();
        assert_eq!(
            (reused.status(), reused.code()),
            (422, "idempotency_key_reused")
        );
        // Another configuration's key space is its own.
        assert!(matches!(
            begin(&ports, "o", "c2", "k1", b"list").unwrap(),
            Begun::First(_)
        ));
    }

    #[test]
    fn a_retry_during_the_first_call_waits_then_gives_up_with_409_and_takes_over_later() {
        let memory = MemoryPorts::default();
        let ports = memory.ports();
        let _died = first(&ports, "k2", b"list");
        let before = memory.clock.now_millis();
        let waiting = begin(&ports, "o", "c", "k2", b"list").unwrap_err();
        assert_eq!(
            (waiting.status(), waiting.code()),
            (409, "request_in_progress")
        );
        let waited = memory.clock.now_millis() - before;
        assert!(
            (WAIT_MILLIS as i64..WAIT_MILLIS as i64 + 1_000).contains(&waited),
            "{waited}"
        );
        // The first call died: after its lease, a retry runs it.
        memory.clock.advance_millis(2 * crate::lease::LEASE_MILLIS);
        assert!(matches!(
            begin(&ports, "o", "c", "k2", b"list").unwrap(),
            Begun::First(_)
        ));
    }

    #[test]
    fn a_call_that_sent_nothing_gives_its_key_back() {
        let memory = MemoryPorts::default();
        let ports = memory.ports();
        let refused = first(&ports, "k3", b"list");
        refused.give_back(&ports);
        assert!(matches!(
            begin(&ports, "o", "c", "k3", b"list").unwrap(),
            Begun::First(_)
        ));
    }

    #[test]
    fn keys_are_printable_ascii() {
        assert_eq!(key_of(None).unwrap(), None);
        assert_eq!(key_of(Some(" a-1 ")).unwrap().as_deref(), Some("a-1"));
        for bad in ["", "with space", "ø", &"k".repeat(256)] {
            assert_eq!(key_of(Some(bad)).unwrap_err().status(), 400, "{bad}");
        }
    }
}
