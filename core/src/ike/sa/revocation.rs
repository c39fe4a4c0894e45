//! Online revocation checking of the gateway's certificate (RFC 5280 §4.2.1.13, §6.3): before an IKE_AUTH
//! response with the gateway's certificates is trusted, the CRLs its chain points to are fetched. Sans-IO: the
//! IKE SA asks with [`Event::FetchCrls`], keeps the response, and goes on when the driver hands the CRLs back
//! ([`IkeSa::handle_crls`]) or when [`CRL_FETCH_TIMEOUT`] has passed (then without them).

use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::{Event, IkeSa, State};
use crate::crypto::{self, FetchedCrl, Revocation};
use crate::ike::config::GatewayAuth;
use crate::wire::{cert_encoding, Payload};

/// How long the IKE SA waits for the driver's CRLs before it validates without them.
pub const CRL_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The state of the CRL fetch for this IKE SA's gateway certificate.
#[derive(Default)]
pub(super) struct CrlFetch {
    /// The IKE_AUTH response waiting for the CRLs.
    deferred: Option<Vec<Payload>>,
    deadline: Option<Instant>,
    /// What the driver fetched, once it has answered (or the wait timed out: all `None`).
    pub(super) fetched: Option<Vec<FetchedCrl>>,
    urls: Vec<String>,
}

impl IkeSa {
    /// If this IKE_AUTH response carries the gateway's certificates and the policy fetches CRLs for them, keep
    /// it and ask the driver for the CRLs ([`Event::FetchCrls`]); returns the payloads back if it can be
    /// handled now.
    pub(super) fn defer_for_crls(&mut self, now: Instant, payloads: Vec<Payload>) -> Option<Vec<Payload>> {
        let GatewayAuth::Certificate(policy) = &self.config.gateway_auth else { return Some(payloads) };
        if policy.revocation == Revocation::Offline || self.crl_fetch.fetched.is_some() {
            return Some(payloads);
        }
        let certs: Vec<&[u8]> = payloads
            .iter()
            .filter_map(|p| match p {
                Payload::Cert(c) if c.encoding == cert_encoding::X509_SIGNATURE => Some(c.data.as_slice()),
                _ => None,
            })
            .collect();
        let urls = crypto::crl_urls(&certs);
        if urls.is_empty() {
            return Some(payloads);
        }
        info!(?urls, "fetching the CRLs of the gateway's certificate chain");
        self.crl_fetch =
            CrlFetch { deferred: Some(payloads), deadline: Some(now + CRL_FETCH_TIMEOUT), fetched: None, urls };
        self.events.push_back(Event::FetchCrls(self.crl_fetch.urls.clone()));
        None
    }

    /// The CRLs the driver fetched for [`Event::FetchCrls`] (`crl: None` for those it could not get): the kept
    /// IKE_AUTH response is handled now. Ignored if nothing waits for them.
    pub fn handle_crls(&mut self, now: Instant, fetched: Vec<FetchedCrl>) {
        let Some(payloads) = self.crl_fetch.deferred.take() else { return };
        self.crl_fetch.deadline = None;
        // Only what was asked for counts; anything not answered counts as not fetched.
        let mut answered: Vec<FetchedCrl> = Vec::new();
        for url in &self.crl_fetch.urls {
            let crl = fetched.iter().find(|f| &f.url == url).and_then(|f| f.crl.clone());
            if crl.is_none() {
                warn!(%url, "no CRL from this distribution point");
            }
            answered.push(FetchedCrl { url: url.clone(), crl });
        }
        self.crl_fetch.fetched = Some(answered);
        self.resume_auth(now, payloads);
    }

    /// When the wait for CRLs ends.
    pub(super) fn crl_deadline(&self) -> Option<Instant> {
        self.crl_fetch.deadline.filter(|_| self.crl_fetch.deferred.is_some())
    }

    /// The wait for CRLs timed out: go on without them.
    pub(super) fn crl_timeout(&mut self, now: Instant) {
        if self.crl_deadline().is_some_and(|t| now >= t) {
            warn!("the CRLs did not arrive in time; validating without them");
            self.handle_crls(now, Vec::new());
        }
    }

    /// The fetched CRLs, for validation.
    pub(super) fn fetched_crls(&self) -> &[FetchedCrl] {
        self.crl_fetch.fetched.as_deref().unwrap_or(&[])
    }

    fn resume_auth(&mut self, now: Instant, payloads: Vec<Payload>) {
        if self.state != State::Authenticating {
            return;
        }
        match self.handle_auth_response(now, payloads) {
            Ok(()) => {
                self.send_next_queued(now);
            }
            Err(e) => {
                warn!(%e, "IKE SA failed");
                self.abandon(e);
            }
        }
    }
}
