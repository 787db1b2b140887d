//! Fault injection: a key-value operation or an outbound HTTP request of a
//! request fails, or the instance dies, at a step the test chooses.
//!
//! The app's handlers must leave nothing behind that lasts whatever step a
//! request stops at, and survive a provider that acted on a request the app
//! never heard back from (ARCHITECTURE.md principles 5 and 7); that is only
//! believed once each step has been made to fail. So a test runs a request once
//! without faults to learn how many steps it has ([`crate::KvCounts::ops`]),
//! then once per step with a fault there, until no fault fires
//! ([`crate::Handled::faults_fired`]).
//!
//! The faults model what production can do to a request:
//!
//! - `store-error@N`: the N-th key-value operation fails with a store error
//!   (`error::other("injected fault: …")` on both key-value interfaces, a
//!   CAS `store-error` for `swap`) **without taking effect**, as when the
//!   store refuses or is unreachable; the guest sees the error and carries
//!   on as it chooses.
//! - `crash@N`: the instance dies right **after** the N-th key-value
//!   operation has taken effect in the store, before the guest sees its
//!   result (the host call traps), as when Spin's host is killed or an
//!   instance runs out of time: nothing after it runs, no guest cleanup
//!   either. The client gets the bare 500 a trapping guest gets. If the guest
//!   had already sent its response head (only a streaming guest can), the
//!   body stops where it was and then fails instead of ending, so the client
//!   sees a broken response (a truncated body and a cut connection; an error
//!   from [`crate::App::send`]), never a short one that looks complete. A
//!   crash in a service-chained sub-request kills that instance only: its
//!   caller gets the 500 (or the broken body) and carries on.
//! - `http-error@N`: the N-th outbound HTTP request fails as connection
//!   refused without reaching the server.
//! - `http-timeout@N`: the N-th outbound HTTP request is sent and answered,
//!   but the guest gets a read timeout instead of the answer: the provider
//!   has acted on it and the app does not know, the case retries must handle.
//!
//! Steps are counted per request, service-chained sub-requests included
//! (they share the request's counters): every key-value host call but
//! `open` and resource drops is one operation (`get`, `set`, `delete`,
//! `exists`, `get-keys`/`list-keys`, `get-many`, `set-many`, `delete-many`,
//! `increment`, and each of CAS `new`, `current` and `swap`, since each can
//! fail on its own); only outbound requests that leave the app count as HTTP
//! requests (not `*.spin.internal` chaining, nor requests
//! `allowed_outbound_hosts` refuses). At most one fault fires per step.
//!
//! A fault is armed either for the next request that reaches a component
//! ([`crate::App::inject`]) or for the next request a given component
//! handles ([`crate::App::inject_into`]), counting from that request's start
//! even when it is a service-chained one (the request's steps from then on,
//! a caller's included should it run any meanwhile). Library faults are one-shot (a test
//! sweeping steps wants exactly one request faulted, and one that is never
//! reached is disarmed with its request); the `--fault` faults of
//! `devhost up` ([`crate::Options::faults`]) apply to every matching request,
//! since by hand one wants to retry and watch the same failure again. Each
//! fault that fires is reported on stderr.

use crate::kv::KvResult;
use anyhow::{bail, Context, Result};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// One fault, at a 1-based step of a request (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The `at`-th key-value operation fails, without effect.
    StoreError { at: u64 },
    /// The instance dies right after the `at`-th key-value operation.
    Crash { at: u64 },
    /// The `at`-th outbound HTTP request is refused before it is sent.
    HttpError { at: u64 },
    /// The `at`-th outbound HTTP request is sent, answered and reported to
    /// the guest as a read timeout.
    HttpTimeout { at: u64 },
}

impl Fault {
    fn at(self) -> u64 {
        match self {
            Fault::StoreError { at }
            | Fault::Crash { at }
            | Fault::HttpError { at }
            | Fault::HttpTimeout { at } => at,
        }
    }

    fn on_key_value(self) -> bool {
        matches!(self, Fault::StoreError { .. } | Fault::Crash { .. })
    }

    /// What happened, for stderr and for the guest's error message.
    fn describe(self) -> String {
        match self {
            Fault::StoreError { at } => format!("store error at key-value op {at}"),
            Fault::Crash { at } => format!("crash after key-value op {at}"),
            Fault::HttpError { at } => {
                format!("connection refused for outbound HTTP request {at}")
            }
            Fault::HttpTimeout { at } => {
                format!("read timeout for outbound HTTP request {at} (sent and answered)")
            }
        }
    }

    fn message(self) -> String {
        format!("injected fault: {}", self.describe())
    }
}

/// `KIND@N`, the form `--fault` takes.
impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Fault::StoreError { .. } => "store-error",
            Fault::Crash { .. } => "crash",
            Fault::HttpError { .. } => "http-error",
            Fault::HttpTimeout { .. } => "http-timeout",
        };
        write!(f, "{kind}@{}", self.at())
    }
}

/// A fault and the component it is limited to: `KIND@N[:COMPONENT]`, as
/// `devhost up --fault` takes it (`crash@4:webhook-twilio`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultSpec {
    pub fault: Fault,
    /// `None`: the next request that reaches any component.
    pub component: Option<String>,
}

impl FromStr for FaultSpec {
    type Err = anyhow::Error;

    fn from_str(spec: &str) -> Result<FaultSpec> {
        let (fault, component) = match spec.split_once(':') {
            Some((fault, component)) => (fault, Some(component.to_owned())),
            None => (spec, None),
        };
        let (kind, at) = fault
            .split_once('@')
            .with_context(|| format!("fault {spec:?} is not KIND@N[:COMPONENT]"))?;
        let at: u64 = at
            .parse()
            .with_context(|| format!("fault {spec:?}: {at:?} is not a step number"))?;
        let fault = match kind {
            "store-error" => Fault::StoreError { at },
            "crash" => Fault::Crash { at },
            "http-error" => Fault::HttpError { at },
            "http-timeout" => Fault::HttpTimeout { at },
            _ => bail!(
                "fault {spec:?}: unknown kind {kind:?} (store-error, crash, http-error, http-timeout)"
            ),
        };
        check(fault)?;
        if component.as_deref() == Some("") {
            bail!("fault {spec:?}: empty component id");
        }
        Ok(FaultSpec { fault, component })
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.fault)?;
        match &self.component {
            Some(component) => write!(f, ":{component}"),
            None => Ok(()),
        }
    }
}

/// Steps count from 1; a fault at 0 could never fire.
pub(crate) fn check(fault: Fault) -> Result<()> {
    if fault.at() == 0 {
        bail!("fault {fault}: steps count from 1");
    }
    Ok(())
}

/// The faults armed in an app, waiting for their request.
#[derive(Default)]
pub(crate) struct Armed(Mutex<Vec<(FaultSpec, bool)>>);

impl Armed {
    /// `standing`: for every matching request, not just the next one.
    pub fn arm(&self, spec: FaultSpec, standing: bool) {
        self.lock().push((spec, standing));
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// The faults for a request starting now: `None` for the app-wide ones
    /// (asked once per top-level request), `Some(id)` for those limited to
    /// the component that runs it. One-shot faults are disarmed.
    pub fn take(&self, component: Option<&str>) -> Vec<Fault> {
        let mut taken = Vec::new();
        self.lock().retain(|(spec, standing)| {
            if spec.component.as_deref() != component {
                return true;
            }
            taken.push(spec.fault);
            *standing
        });
        taken
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(FaultSpec, bool)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The faults of one request in flight, shared with its service-chained
/// sub-requests like its [`crate::host::KvCounter`].
#[derive(Default)]
pub(crate) struct RequestFaults(Mutex<RequestState>);

#[derive(Default)]
struct RequestState {
    /// Each fault with the step count (key-value ops or HTTP requests) when
    /// it was armed, so it counts from its own request's start.
    pending: Vec<(Fault, u64)>,
    fired: Vec<Fault>,
    http_requests: u64,
}

impl RequestFaults {
    /// Arms faults for a (sub-)request that starts after `kv_ops` key-value
    /// operations of the whole request.
    pub fn schedule(&self, faults: Vec<Fault>, kv_ops: u64) {
        let mut state = self.lock();
        let http_requests = state.http_requests;
        state.pending.extend(faults.into_iter().map(|fault| {
            let base = if fault.on_key_value() {
                kv_ops
            } else {
                http_requests
            };
            (fault, base)
        }));
    }

    pub fn fired(&self) -> Vec<Fault> {
        self.lock().fired.clone()
    }

    /// The fault, if any, at step `step` of its kind.
    fn fire(&self, key_value: bool, step: u64, component: &str) -> Option<Fault> {
        let mut state = self.lock();
        let index = state.pending.iter().position(|(fault, base)| {
            fault.on_key_value() == key_value && base + fault.at() == step
        })?;
        let (fault, _) = state.pending.remove(index);
        state.fired.push(fault);
        eprintln!(
            "devhost: fault: {} of component {component:?}",
            fault.describe()
        );
        Some(fault)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RequestState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The faults as one component instance applies them.
#[derive(Clone)]
pub(crate) struct InstanceFaults {
    request: Arc<RequestFaults>,
    component: Arc<str>,
    /// Set before the trap of a crash, so the response body can tell a
    /// crash from an end.
    crashed: Arc<AtomicBool>,
}

impl InstanceFaults {
    pub fn new(request: Arc<RequestFaults>, component: &str) -> InstanceFaults {
        InstanceFaults {
            request,
            component: component.into(),
            crashed: Arc::default(),
        }
    }

    pub fn request(&self) -> &Arc<RequestFaults> {
        &self.request
    }

    /// Runs key-value operation number `op` of the request (`work` has not
    /// started: futures do nothing until awaited): instead of it, a store
    /// error; or after it, a trap.
    pub async fn kv_op<T>(
        &self,
        op: u64,
        work: impl Future<Output = KvResult<T>>,
    ) -> wasmtime::Result<KvResult<T>> {
        match self.request.fire(true, op, &self.component) {
            Some(fault @ Fault::StoreError { .. }) => Ok(Err(fault.message())),
            Some(fault) => {
                let _ = work.await;
                self.crashed.store(true, Ordering::SeqCst);
                Err(wasmtime::Error::msg(fault.message()))
            }
            None => Ok(work.await),
        }
    }

    /// Counts an outbound request that leaves the app; the fault to apply
    /// to it, if any.
    pub fn http_request(&self) -> Option<Fault> {
        let step = {
            let mut state = self.request.lock();
            state.http_requests += 1;
            state.http_requests
        };
        self.request.fire(false, step, &self.component)
    }

    /// The instance's response body, failing at its end if the instance
    /// crashed (wasmtime ends the body of a dropped instance as if the
    /// guest had finished it).
    pub fn response_body(&self, body: HyperOutgoingBody) -> HyperOutgoingBody {
        FailsOnCrash {
            body,
            crashed: self.crashed.clone(),
        }
        .boxed_unsync()
    }
}

struct FailsOnCrash {
    body: HyperOutgoingBody,
    crashed: Arc<AtomicBool>,
}

impl Body for FailsOnCrash {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(None) if self.crashed.load(Ordering::SeqCst) => {
                Poll::Ready(Some(Err(wasmtime_wasi_http::Error::InternalError(Some(
                    "injected fault: the instance crashed mid-response".into(),
                )))))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[test]
    fn specs_parse_and_print_as_the_cli_takes_them() {
        for (text, fault, component) in [
            ("store-error@5", Fault::StoreError { at: 5 }, None),
            ("crash@3", Fault::Crash { at: 3 }, None),
            ("http-error@1", Fault::HttpError { at: 1 }, None),
            (
                "http-timeout@2:webhook-twilio",
                Fault::HttpTimeout { at: 2 },
                Some("webhook-twilio"),
            ),
        ] {
            let spec: FaultSpec = text.parse().unwrap();
            assert_eq!(spec.fault, fault, "{text}");
            assert_eq!(spec.component.as_deref(), component, "{text}");
            assert_eq!(spec.to_string(), text);
        }
        for bad in ["crash", "crash@0", "crash@x", "boom@1", "crash@1:", "@1"] {
            assert!(bad.parse::<FaultSpec>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn one_shot_faults_are_taken_once_and_standing_ones_every_time() {
        let armed = Armed::default();
        let spec = |text: &str| text.parse::<FaultSpec>().unwrap();
        armed.arm(spec("crash@1"), false);
        armed.arm(spec("store-error@2:a"), false);
        armed.arm(spec("http-error@1:b"), true);
        assert_eq!(armed.take(Some("b")), [Fault::HttpError { at: 1 }]);
        assert_eq!(armed.take(Some("b")), [Fault::HttpError { at: 1 }]);
        assert_eq!(armed.take(None), [Fault::Crash { at: 1 }]);
        assert_eq!(armed.take(None), []);
        assert_eq!(armed.take(Some("a")), [Fault::StoreError { at: 2 }]);
        assert_eq!(armed.take(Some("a")), []);
        armed.clear();
        assert_eq!(armed.take(Some("b")), []);
    }

    #[test]
    fn faults_count_from_their_own_requests_start() {
        let request = Arc::new(RequestFaults::default());
        let instance = InstanceFaults::new(request.clone(), "x");
        request.schedule(vec![Fault::StoreError { at: 2 }], 0);
        request.schedule(vec![Fault::HttpTimeout { at: 1 }], 3);
        assert_eq!(request.fire(true, 1, "x"), None);
        assert_eq!(
            request.fire(true, 2, "x"),
            Some(Fault::StoreError { at: 2 })
        );
        assert_eq!(request.fire(true, 2, "x"), None, "fires once");
        assert_eq!(instance.http_request(), Some(Fault::HttpTimeout { at: 1 }));
        assert_eq!(instance.http_request(), None);
        request.schedule(vec![Fault::HttpError { at: 1 }], 5);
        assert_eq!(instance.http_request(), Some(Fault::HttpError { at: 1 }));
        assert_eq!(
            request.fired(),
            [
                Fault::StoreError { at: 2 },
                Fault::HttpTimeout { at: 1 },
                Fault::HttpError { at: 1 }
            ]
        );
    }

    #[tokio::test]
    async fn a_crash_mid_response_fails_the_body_after_what_was_sent() {
        let body = |text: &'static str| {
            Full::new(Bytes::from(text))
                .map_err(|never| match never {})
                .boxed_unsync()
        };
        let request = Arc::new(RequestFaults::default());
        request.schedule(vec![Fault::Crash { at: 1 }], 0);
        let crashing = InstanceFaults::new(request.clone(), "x");
        let mut response = crashing.response_body(body("{\"par"));
        let sent = response.frame().await.unwrap().unwrap();
        assert_eq!(sent.into_data().unwrap(), "{\"par");
        let trapped = crashing.kv_op(1, async { Ok(()) }).await;
        assert!(trapped.is_err(), "a crash traps");
        assert!(response.frame().await.unwrap().is_err());

        // Without a crash the same end is the body's end.
        let healthy = InstanceFaults::new(request, "x");
        let whole = healthy.response_body(body("{}")).collect().await.unwrap();
        assert_eq!(whole.to_bytes(), "{}");
    }
}
