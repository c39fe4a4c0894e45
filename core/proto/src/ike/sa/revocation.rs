//! Online revocation checking of the gateway's certificate (RFC 5280 §4.2.1.13, §6.3; OCSP, RFC 6960): before
//! an IKE_AUTH response with the gateway's certificates is trusted, the CRLs its chain points to are fetched and
//! the OCSP responder its end-entity certificate names is asked. Sans-IO: the IKE SA asks with
//! [`Event::FetchRevocation`], keeps the response, and goes on when the driver hands the answers back
//! ([`IkeSa::handle_revocation`]) or when [`REVOCATION_FETCH_TIMEOUT`] has passed (then without them).

use std::time::{Duration, Instant};

use rand_core::RngCore;
use tracing::{info, warn};

use super::{Event, IkeSa, State};
use crate::crypto::{self, OcspQuery, Revocation, RevocationRequest, RevocationResponse};
use crate::ike::config::GatewayAuth;
use crate::wire::{cert_encoding, Payload};

/// How long the IKE SA waits for the driver's answers before it validates without them.
pub const REVOCATION_FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// The state of the revocation fetches for this IKE SA's gateway certificate.
#[derive(Default)]
pub(super) struct RevocationFetch {
    /// The IKE_AUTH response waiting for the answers.
    deferred: Option<Vec<Payload>>,
    deadline: Option<Instant>,
    /// The CRLs fetched, once the driver has answered (or the wait timed out: all `None`).
    pub(super) crls: Option<Vec<RevocationResponse>>,
    crl_urls: Vec<String>,
    /// The OCSP query for the end-entity certificate and the responder's answer.
    ocsp: Option<(OcspQuery, Option<Vec<u8>>)>,
}

impl IkeSa {
    /// If this IKE_AUTH response carries the gateway's certificates and the policy checks them online, keep it
    /// and ask the driver for CRLs and OCSP ([`Event::FetchRevocation`]); returns the payloads back if it can be
    /// handled now.
    pub(super) fn defer_for_revocation(&mut self, now: Instant, payloads: Vec<Payload>) -> Option<Vec<Payload>> {
        let GatewayAuth::Certificate(policy) = &self.config.gateway_auth else { return Some(payloads) };
        if policy.revocation == Revocation::Offline || self.revocation.crls.is_some() {
            return Some(payloads);
        }
        let sent: Vec<&[u8]> = payloads
            .iter()
            .filter_map(|p| match p {
                Payload::Cert(c) if c.encoding == cert_encoding::X509_SIGNATURE => Some(c.data.as_slice()),
                _ => None,
            })
            .collect();
        // Only the URLs of certificates that chain to our trust anchors are contacted (a chain that does not
        // verify is refused anyway, by the validation that follows).
        let verified = crypto::verified_chain(&sent, policy, self.unix_time(now));
        let certs: Vec<&[u8]> = verified.iter().map(Vec::as_slice).collect();
        let crl_urls = crypto::crl_urls(&certs);
        let mut nonce = [0u8; 16];
        self.rng.fill_bytes(&mut nonce);
        let ocsp = crypto::ocsp_query(&certs, &policy.anchors, nonce);
        if crl_urls.is_empty() && ocsp.is_none() {
            return Some(payloads);
        }
        let mut requests: Vec<RevocationRequest> =
            crl_urls.iter().map(|u| RevocationRequest { url: u.clone(), ocsp_request: None }).collect();
        if let Some(q) = &ocsp {
            requests.push(RevocationRequest { url: q.url.clone(), ocsp_request: Some(q.request.clone()) });
        }
        info!(crls = ?crl_urls, ocsp = ?ocsp.as_ref().map(|q| &q.url), "checking the gateway's certificate online");
        self.revocation = RevocationFetch {
            deferred: Some(payloads),
            deadline: Some(now + REVOCATION_FETCH_TIMEOUT),
            crls: None,
            crl_urls,
            ocsp: ocsp.map(|q| (q, None)),
        };
        self.events.push_back(Event::FetchRevocation(requests));
        None
    }

    /// The answers the driver got for [`Event::FetchRevocation`] (`data: None` for those it could not get): the
    /// kept IKE_AUTH response is handled now. Ignored if nothing waits for them.
    pub fn handle_revocation(&mut self, now: Instant, fetched: Vec<RevocationResponse>) {
        let Some(payloads) = self.revocation.deferred.take() else { return };
        self.revocation.deadline = None;
        // Only what was asked for counts; anything not answered counts as not fetched.
        let mut crls: Vec<RevocationResponse> = Vec::new();
        for url in &self.revocation.crl_urls {
            let data = fetched.iter().find(|f| &f.url == url).and_then(|f| f.data.clone());
            if data.is_none() {
                warn!(%url, "no CRL from this distribution point");
            }
            crls.push(RevocationResponse { url: url.clone(), data });
        }
        if let Some((query, answer)) = &mut self.revocation.ocsp {
            *answer = fetched.iter().rev().find(|f| f.url == query.url).and_then(|f| f.data.clone());
            if answer.is_none() {
                warn!(url = %query.url, "no answer from the OCSP responder");
            }
        }
        self.revocation.crls = Some(crls);
        self.resume_auth(now, payloads);
    }

    /// When the wait for the answers ends.
    pub(super) fn revocation_deadline(&self) -> Option<Instant> {
        self.revocation.deadline.filter(|_| self.revocation.deferred.is_some())
    }

    /// The wait for the answers timed out: go on without them.
    pub(super) fn revocation_timeout(&mut self, now: Instant) {
        if self.revocation_deadline().is_some_and(|t| now >= t) {
            warn!("the revocation answers did not arrive in time; validating without them");
            self.handle_revocation(now, Vec::new());
        }
    }

    /// The fetched CRLs, for validation.
    pub(super) fn fetched_crls(&self) -> &[RevocationResponse] {
        self.revocation.crls.as_deref().unwrap_or(&[])
    }

    /// The OCSP query and its answer, for validation.
    pub(super) fn ocsp_answer(&self) -> Option<crypto::OcspAnswer<'_>> {
        self.revocation.ocsp.as_ref().map(|(q, a)| (q, a.as_deref()))
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
                self.abandon(crate::ike::error::CloseReason::Error(e));
            }
        }
    }
}
