//! IKE and ESP proposals (RFC 7296 §2.7, §3.3): what we offer, and the check that the peer's choice is one of them.
//!
//! Proposals are written the way strongSwan writes them (`aes256gcm16-prfsha256-x25519`,
//! `aes256-sha256-modp2048`, `chacha20poly1305`), so gateway admins' documentation applies as is.
//!
//! Legacy algorithms that corporate gateways still default to (issue 11) parse too, so a profile can name
//! them (`3des-sha1-modp1024`, `aes128gcm8`, `aes192-sha1-modp1536`, `aes256-sha256-ecp256bp`...), but they
//! are never in [`IkeProposal::defaults`] / [`EspProposal::defaults`], and [`select_ike`] / [`select_esp`] log
//! a warning whenever the gateway picks one.

use crate::crypto::{Encr, Group, Integ, Prf};
use crate::wire::{self, ProtocolId, Transform, TransformType};

/// Errors in a proposal string or in the peer's choice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    #[error("unknown algorithm `{0}` in proposal")]
    UnknownAlgorithm(String),
    #[error("proposal `{0}` has no encryption algorithm")]
    NoEncryption(String),
    #[error("proposal `{0}` has no key exchange group")]
    NoGroup(String),
    #[error("proposal `{0}` mixes AEAD and integrity algorithms")]
    AeadWithInteg(String),
    #[error("proposal `{0}` needs an integrity algorithm for its non-AEAD cipher")]
    NoInteg(String),
    #[error("proposal `{0}` has no PRF")]
    NoPrf(String),
    #[error("the peer chose a proposal we did not offer: {0}")]
    NotOffered(&'static str),
    #[error("additional key exchange `{0}` in proposal `{1}`: expected ke1_ .. ke7_ followed by a group or `none`")]
    BadAdditionalKe(String, String),
}

/// The key exchange methods of the additional key exchanges ADDKE1..ADDKE7 (RFC 9370 §2.2.1) a peer chose:
/// `None` where it chose NONE or the type is not negotiated.
pub type AddKe = [Option<Group>; 7];

/// The methods of ADDKE1..ADDKE7 one proposal offers (RFC 9370 §2.2.1): per type the acceptable groups,
/// `None` standing for NONE (transform ID 0: the exchange is optional). An empty list: the type is not offered.
pub type AddKeOffer = [Vec<Option<Group>>; 7];

/// Whether a proposal's additional key exchange offer contains at least one required (non-optional) exchange.
pub fn addke_required(offer: &AddKeOffer) -> bool {
    offer.iter().any(|o| !o.is_empty() && !o.contains(&None))
}

/// The groups of the additional key exchanges a peer chose, in order (RFC 9370 §2.2.2: ADDKE1 first).
pub fn addke_groups(chosen: &AddKe) -> Vec<Group> {
    chosen.iter().flatten().copied().collect()
}

/// strongSwan's names of the chosen additional key exchanges: `ke1_mlkem768-ke2_ecp384`.
pub fn addke_names(chosen: &AddKe) -> String {
    chosen
        .iter()
        .enumerate()
        .filter_map(|(i, g)| g.map(|g| format!("ke{}_{}", i + 1, group_name(g))))
        .collect::<Vec<_>>()
        .join("-")
}

/// One IKE SA proposal: every listed algorithm is acceptable with every other (§3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeProposal {
    pub encr: Vec<Encr>,
    pub integ: Vec<Integ>,
    pub prf: Vec<Prf>,
    pub groups: Vec<Group>,
    /// Additional key exchanges (RFC 9370), `ke1_mlkem768` in strongSwan's syntax.
    pub addke: AddKeOffer,
}

/// One ESP proposal for a Child SA. `groups` is only used for PFS in CREATE_CHILD_SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EspProposal {
    pub encr: Vec<Encr>,
    pub integ: Vec<Integ>,
    pub groups: Vec<Group>,
    pub esn: Vec<bool>,
    /// Additional key exchanges for Child SA rekeys with PFS (RFC 9370 §2.2.4).
    pub addke: AddKeOffer,
}

/// The suite the gateway picked for the IKE SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IkeSuite {
    pub encr: Encr,
    pub integ: Option<Integ>,
    pub prf: Prf,
    pub group: Group,
    /// The additional key exchanges (RFC 9370), in the order they run.
    pub addke: AddKe,
}

/// The suite the gateway picked for a Child SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspSuite {
    pub encr: Encr,
    pub integ: Option<Integ>,
    pub group: Option<Group>,
    pub esn: bool,
    /// The additional key exchanges of a rekey with PFS (RFC 9370 §2.2.4).
    pub addke: AddKe,
}

#[derive(Default)]
struct Tokens {
    encr: Vec<Encr>,
    integ: Vec<Integ>,
    prf: Vec<Prf>,
    groups: Vec<Group>,
    esn: Vec<bool>,
    addke: AddKeOffer,
}

/// A key exchange method by strongSwan's name (not the legacy ones, which [`parse_tokens`] knows).
fn group_by_name(name: &str) -> Option<Group> {
    Some(match name {
        "modp2048" => Group::Modp2048,
        "modp3072" => Group::Modp3072,
        "modp4096" => Group::Modp4096,
        "ecp256" => Group::Ecp256,
        "ecp384" => Group::Ecp384,
        "ecp521" => Group::Ecp521,
        "x25519" | "curve25519" => Group::Curve25519,
        "mlkem512" => Group::MlKem512,
        "mlkem768" => Group::MlKem768,
        "mlkem1024" => Group::MlKem1024,
        "modp1024" => Group::Modp1024,
        "modp1536" => Group::Modp1536,
        "ecp256bp" => Group::EcpBp256,
        "ecp384bp" => Group::EcpBp384,
        "x448" | "curve448" => Group::Curve448,
        _ => return None,
    })
}

/// `keN_method` (strongSwan's syntax for RFC 9370's ADDKEn, N = 1..7; `none` makes it optional).
fn parse_addke(s: &str, tok: &str, t: &mut Tokens) -> Result<(), ProposalError> {
    let bad = || ProposalError::BadAdditionalKe(tok.to_string(), s.to_string());
    let rest = tok.strip_prefix("ke").ok_or_else(bad)?;
    let (n, method) = rest.split_once('_').ok_or_else(bad)?;
    let n: usize = n.parse().map_err(|_| bad())?;
    if !(1..=7).contains(&n) {
        return Err(bad());
    }
    let g = match method {
        "none" => None,
        m => Some(group_by_name(m).ok_or_else(bad)?),
    };
    if !t.addke[n - 1].contains(&g) {
        t.addke[n - 1].push(g);
    }
    Ok(())
}

fn parse_tokens(s: &str) -> Result<Tokens, ProposalError> {
    let mut t = Tokens::default();
    for tok in s.split('-').map(str::trim).filter(|t| !t.is_empty()) {
        let tok = tok.to_ascii_lowercase();
        if tok.starts_with("ke") && tok.contains('_') {
            parse_addke(s, &tok, &mut t)?;
            continue;
        }
        match tok.as_str() {
            "mlkem512" => t.groups.push(Group::MlKem512),
            "mlkem768" => t.groups.push(Group::MlKem768),
            "mlkem1024" => t.groups.push(Group::MlKem1024),
            "aes128" => t.encr.push(Encr::AesCbc { key_len: 16 }),
            "aes256" => t.encr.push(Encr::AesCbc { key_len: 32 }),
            "aes128gcm16" | "aes128gcm128" | "aes128gcm" => t.encr.push(Encr::AesGcm16 { key_len: 16 }),
            "aes256gcm16" | "aes256gcm128" | "aes256gcm" => t.encr.push(Encr::AesGcm16 { key_len: 32 }),
            "chacha20poly1305" => t.encr.push(Encr::ChaCha20Poly1305),
            "sha256" | "sha2_256" => t.integ.push(Integ::HmacSha256_128),
            "sha384" | "sha2_384" => t.integ.push(Integ::HmacSha384_192),
            "sha512" | "sha2_512" => t.integ.push(Integ::HmacSha512_256),
            "prfsha256" => t.prf.push(Prf::HmacSha256),
            "prfsha384" => t.prf.push(Prf::HmacSha384),
            "prfsha512" => t.prf.push(Prf::HmacSha512),
            "modp2048" => t.groups.push(Group::Modp2048),
            "modp3072" => t.groups.push(Group::Modp3072),
            "modp4096" => t.groups.push(Group::Modp4096),
            "ecp256" => t.groups.push(Group::Ecp256),
            "ecp384" => t.groups.push(Group::Ecp384),
            "ecp521" => t.groups.push(Group::Ecp521),
            "x25519" | "curve25519" => t.groups.push(Group::Curve25519),
            // Legacy, opt-in (issue 11): strongSwan's names.
            "3des" => t.encr.push(Encr::TripleDes),
            "aes192" => t.encr.push(Encr::AesCbc { key_len: 24 }),
            "aes192gcm16" | "aes192gcm128" | "aes192gcm" => t.encr.push(Encr::AesGcm16 { key_len: 24 }),
            "aes128gcm12" | "aes128gcm96" => t.encr.push(Encr::AesGcm12 { key_len: 16 }),
            "aes192gcm12" | "aes192gcm96" => t.encr.push(Encr::AesGcm12 { key_len: 24 }),
            "aes256gcm12" | "aes256gcm96" => t.encr.push(Encr::AesGcm12 { key_len: 32 }),
            "aes128gcm8" | "aes128gcm64" => t.encr.push(Encr::AesGcm8 { key_len: 16 }),
            "aes192gcm8" | "aes192gcm64" => t.encr.push(Encr::AesGcm8 { key_len: 24 }),
            "aes256gcm8" | "aes256gcm64" => t.encr.push(Encr::AesGcm8 { key_len: 32 }),
            "sha1" | "sha" => t.integ.push(Integ::HmacSha1_96),
            "prfsha1" => t.prf.push(Prf::HmacSha1),
            "modp1024" => t.groups.push(Group::Modp1024),
            "modp1536" => t.groups.push(Group::Modp1536),
            "ecp256bp" => t.groups.push(Group::EcpBp256),
            "ecp384bp" => t.groups.push(Group::EcpBp384),
            "x448" | "curve448" => t.groups.push(Group::Curve448),
            "esn" => t.esn.push(true),
            "noesn" => t.esn.push(false),
            _ => return Err(ProposalError::UnknownAlgorithm(tok)),
        }
    }
    Ok(t)
}

fn integ_prf(i: Integ) -> Prf {
    match i {
        Integ::HmacSha1_96 => Prf::HmacSha1,
        Integ::HmacSha256_128 => Prf::HmacSha256,
        Integ::HmacSha384_192 => Prf::HmacSha384,
        Integ::HmacSha512_256 => Prf::HmacSha512,
    }
}

fn check_aead_mix(s: &str, encr: &[Encr], integ: &[Integ]) -> Result<(), ProposalError> {
    let aead = encr.iter().filter(|e| e.is_aead()).count();
    if aead > 0 && aead < encr.len() {
        return Err(ProposalError::AeadWithInteg(s.into()));
    }
    if aead > 0 && !integ.is_empty() {
        return Err(ProposalError::AeadWithInteg(s.into()));
    }
    if aead == 0 && integ.is_empty() {
        return Err(ProposalError::NoInteg(s.into()));
    }
    Ok(())
}

impl IkeProposal {
    /// Parse a strongSwan-style IKE proposal. For non-AEAD ciphers without an explicit `prf...`, the PRFs follow
    /// the integrity algorithms, as in strongSwan.
    pub fn parse(s: &str) -> Result<IkeProposal, ProposalError> {
        let mut t = parse_tokens(s)?;
        if t.encr.is_empty() {
            return Err(ProposalError::NoEncryption(s.into()));
        }
        if t.groups.is_empty() {
            return Err(ProposalError::NoGroup(s.into()));
        }
        let all_aead = t.encr.iter().all(|e| e.is_aead());
        if all_aead && !t.integ.is_empty() && t.prf.is_empty() {
            // "aes256gcm16-sha256-x25519" means PRF SHA-256 in strongSwan.
            t.prf = t.integ.drain(..).map(integ_prf).collect();
        }
        check_aead_mix(s, &t.encr, &t.integ)?;
        if t.prf.is_empty() {
            t.prf = t.integ.iter().copied().map(integ_prf).collect();
        }
        if t.prf.is_empty() {
            return Err(ProposalError::NoPrf(s.into()));
        }
        Ok(IkeProposal { encr: t.encr, integ: t.integ, prf: t.prf, groups: t.groups, addke: t.addke })
    }

    /// A modern default list like strongSwan's: one AEAD and one non-AEAD proposal.
    pub fn defaults() -> Vec<IkeProposal> {
        let groups = vec![Group::Curve25519, Group::Ecp256, Group::Ecp384, Group::Modp3072, Group::Modp2048];
        vec![
            IkeProposal {
                encr: vec![Encr::AesGcm16 { key_len: 32 }, Encr::AesGcm16 { key_len: 16 }, Encr::ChaCha20Poly1305],
                integ: vec![],
                prf: vec![Prf::HmacSha256, Prf::HmacSha384, Prf::HmacSha512],
                groups: groups.clone(),
                addke: Default::default(),
            },
            IkeProposal {
                encr: vec![Encr::AesCbc { key_len: 32 }, Encr::AesCbc { key_len: 16 }],
                integ: vec![Integ::HmacSha256_128, Integ::HmacSha384_192, Integ::HmacSha512_256],
                prf: vec![Prf::HmacSha256, Prf::HmacSha384, Prf::HmacSha512],
                groups,
                addke: Default::default(),
            },
        ]
    }

    /// The SA payload proposal with number `number` (1-based). `spi` is empty for IKE_SA_INIT.
    pub fn to_wire(&self, number: u8, spi: Vec<u8>) -> wire::Proposal {
        let mut transforms = Vec::new();
        push_encr(&mut transforms, &self.encr);
        transforms.extend(self.prf.iter().map(|p| tf(TransformType::PRF, p.id())));
        transforms.extend(self.integ.iter().map(|i| tf(TransformType::INTEG, i.id())));
        transforms.extend(self.groups.iter().map(|g| tf(TransformType::DH, g.id())));
        push_addke(&mut transforms, &self.addke);
        wire::Proposal { number, protocol: ProtocolId::IKE, spi, transforms }
    }

    /// This proposal without its additional key exchanges (the classical fallback, RFC 9370 §2.2.1).
    pub fn classical(&self) -> IkeProposal {
        IkeProposal { addke: Default::default(), ..self.clone() }
    }
}

fn push_addke(out: &mut Vec<Transform>, addke: &AddKeOffer) {
    for (i, offer) in addke.iter().enumerate() {
        out.extend(offer.iter().map(|g| tf(TransformType::addke(i + 1), g.map_or(wire::dh::NONE, |g| g.id()))));
    }
}

/// The peer's choice of ADDKE1..ADDKE7 (RFC 9370 §2.2.1) from our `offer`: one transform per offered type,
/// among ours; an omitted type counts as NONE only where we offered NONE.
fn addke_choice(p: &wire::Proposal, offer: &AddKeOffer) -> Result<AddKe, ProposalError> {
    let mut chosen: AddKe = [None; 7];
    for (i, ours) in offer.iter().enumerate() {
        let g = match single(p, TransformType::addke(i + 1))? {
            None if ours.is_empty() || ours.contains(&None) => None,
            None => return Err(ProposalError::NotOffered("a required additional key exchange is missing")),
            Some(_) if ours.is_empty() => return Err(ProposalError::NotOffered("additional key exchange")),
            Some(t) if t.id == wire::dh::NONE && ours.contains(&None) => None,
            Some(t) => Some(
                Group::from_id(t.id)
                    .filter(|g| ours.contains(&Some(*g)))
                    .ok_or(ProposalError::NotOffered("additional key exchange method"))?,
            ),
        };
        chosen[i] = g;
    }
    Ok(chosen)
}

impl EspProposal {
    /// Parse a strongSwan-style ESP proposal (`aes256gcm16`, `aes256-sha256`, `aes128gcm16-ecp256` for PFS).
    pub fn parse(s: &str) -> Result<EspProposal, ProposalError> {
        let t = parse_tokens(s)?;
        if t.encr.is_empty() {
            return Err(ProposalError::NoEncryption(s.into()));
        }
        if !t.prf.is_empty() {
            return Err(ProposalError::UnknownAlgorithm("prf in ESP proposal".into()));
        }
        check_aead_mix(s, &t.encr, &t.integ)?;
        let esn = if t.esn.is_empty() { vec![false] } else { t.esn };
        Ok(EspProposal { encr: t.encr, integ: t.integ, groups: t.groups, esn, addke: t.addke })
    }

    /// strongSwan-like defaults: AEAD first, then AES-CBC with HMAC-SHA2.
    pub fn defaults() -> Vec<EspProposal> {
        vec![
            EspProposal {
                encr: vec![Encr::AesGcm16 { key_len: 32 }, Encr::AesGcm16 { key_len: 16 }, Encr::ChaCha20Poly1305],
                integ: vec![],
                groups: vec![],
                esn: vec![false, true],
                addke: Default::default(),
            },
            EspProposal {
                encr: vec![Encr::AesCbc { key_len: 32 }, Encr::AesCbc { key_len: 16 }],
                integ: vec![Integ::HmacSha256_128, Integ::HmacSha384_192, Integ::HmacSha512_256],
                groups: vec![],
                esn: vec![false, true],
                addke: Default::default(),
            },
        ]
    }

    /// The SA payload proposal. Key exchange transforms are included only when `with_groups` (CREATE_CHILD_SA
    /// with PFS); the Child SA of IKE_AUTH carries none (§1.2).
    pub fn to_wire(&self, number: u8, spi: u32, with_groups: bool) -> wire::Proposal {
        let mut transforms = Vec::new();
        push_encr(&mut transforms, &self.encr);
        transforms.extend(self.integ.iter().map(|i| tf(TransformType::INTEG, i.id())));
        if with_groups {
            transforms.extend(self.groups.iter().map(|g| tf(TransformType::DH, g.id())));
            push_addke(&mut transforms, &self.addke);
        }
        for &e in &self.esn {
            transforms.push(tf(TransformType::ESN, if e { wire::esn::YES } else { wire::esn::NO }));
        }
        wire::Proposal { number, protocol: ProtocolId::ESP, spi: spi.to_be_bytes().to_vec(), transforms }
    }
}

fn tf(kind: TransformType, id: u16) -> Transform {
    Transform { kind, id, key_len: None }
}

fn push_encr(out: &mut Vec<Transform>, encr: &[Encr]) {
    out.extend(encr.iter().map(|e| Transform { kind: TransformType::ENCR, id: e.id(), key_len: e.key_len_bits() }));
}

/// Pick the single transform of `kind` from a chosen proposal; more than one is a protocol violation (§3.3.6).
fn single(p: &wire::Proposal, kind: TransformType) -> Result<Option<Transform>, ProposalError> {
    let mut it = p.transforms.iter().filter(|t| t.kind == kind);
    let first = it.next().copied();
    if it.next().is_some() {
        return Err(ProposalError::NotOffered("more than one transform of a type"));
    }
    Ok(first)
}

/// The chosen cipher and integrity algorithm, both among ours, and consistent (no integrity with an AEAD).
fn cipher_choice(p: &wire::Proposal, encrs: &[Encr], integs: &[Integ]) -> Result<(Encr, Option<Integ>), ProposalError> {
    let e = single(p, TransformType::ENCR)?.ok_or(ProposalError::NotOffered("no encryption transform"))?;
    let encr = Encr::from_transform(e.id, e.key_len)
        .filter(|e| encrs.contains(e))
        .ok_or(ProposalError::NotOffered("encryption algorithm"))?;
    let integ = match single(p, TransformType::INTEG)? {
        None => None,
        Some(t) if t.id == wire::integ::NONE => None,
        Some(t) => Some(
            Integ::from_id(t.id)
                .filter(|i| integs.contains(i))
                .ok_or(ProposalError::NotOffered("integrity algorithm"))?,
        ),
    };
    if encr.is_aead() != integ.is_none() {
        return Err(ProposalError::NotOffered("integrity algorithm does not fit the cipher"));
    }
    Ok((encr, integ))
}

/// The gateway's SA payload must hold exactly one proposal (§3.3.6).
fn only_proposal(sa: &[wire::Proposal]) -> Result<&wire::Proposal, ProposalError> {
    match sa {
        [p] => Ok(p),
        _ => Err(ProposalError::NotOffered("SA payload must hold exactly one proposal")),
    }
}

/// Check the gateway's IKE SA choice against what we offered (§2.7) and return the suite.
pub fn select_ike(offered: &[IkeProposal], sa: &[wire::Proposal]) -> Result<IkeSuite, ProposalError> {
    let p = only_proposal(sa)?;
    if p.protocol != ProtocolId::IKE {
        return Err(ProposalError::NotOffered("protocol is not IKE"));
    }
    let ours = offered
        .get(usize::from(p.number).wrapping_sub(1))
        .ok_or(ProposalError::NotOffered("unknown proposal number"))?;
    let (encr, integ) = cipher_choice(p, &ours.encr, &ours.integ)?;
    let prf_t = single(p, TransformType::PRF)?.ok_or(ProposalError::NotOffered("no PRF"))?;
    let prf = Prf::from_id(prf_t.id).filter(|p| ours.prf.contains(p)).ok_or(ProposalError::NotOffered("PRF"))?;
    let g = single(p, TransformType::DH)?.ok_or(ProposalError::NotOffered("no key exchange group"))?;
    let group = Group::from_id(g.id)
        .filter(|g| ours.groups.contains(g))
        .ok_or(ProposalError::NotOffered("key exchange group"))?;
    if single(p, TransformType::ESN)?.is_some() {
        return Err(ProposalError::NotOffered("ESN transform in an IKE proposal"));
    }
    let addke = addke_choice(p, &ours.addke)?;
    let suite = IkeSuite { encr, integ, prf, group, addke };
    suite.warn_if_legacy();
    Ok(suite)
}

/// Check the gateway's Child SA choice against what we offered and return the suite and the gateway's SPI.
pub fn select_esp(offered: &[EspProposal], sa: &[wire::Proposal], pfs: bool) -> Result<(EspSuite, u32), ProposalError> {
    let p = only_proposal(sa)?;
    if p.protocol != ProtocolId::ESP {
        return Err(ProposalError::NotOffered("protocol is not ESP"));
    }
    let spi: [u8; 4] = p.spi.as_slice().try_into().map_err(|_| ProposalError::NotOffered("ESP SPI must be 4 bytes"))?;
    let spi = u32::from_be_bytes(spi);
    if spi < 256 {
        // SPIs 1-255 are reserved by IANA, 0 is invalid (RFC 4303 §2.1).
        return Err(ProposalError::NotOffered("reserved ESP SPI"));
    }
    let ours = offered
        .get(usize::from(p.number).wrapping_sub(1))
        .ok_or(ProposalError::NotOffered("unknown proposal number"))?;
    let (encr, integ) = cipher_choice(p, &ours.encr, &ours.integ)?;
    let group = match single(p, TransformType::DH)? {
        None => None,
        Some(t) if t.id == wire::dh::NONE => None,
        Some(t) if pfs => Some(
            Group::from_id(t.id).filter(|g| ours.groups.contains(g)).ok_or(ProposalError::NotOffered("PFS group"))?,
        ),
        Some(_) => return Err(ProposalError::NotOffered("key exchange group in a Child SA without PFS")),
    };
    let esn = match single(p, TransformType::ESN)? {
        None => false,
        Some(t) => {
            let e = t.id == wire::esn::YES;
            if (t.id != wire::esn::YES && t.id != wire::esn::NO) || !ours.esn.contains(&e) {
                return Err(ProposalError::NotOffered("ESN"));
            }
            e
        }
    };
    let addke = if pfs && group.is_some() {
        addke_choice(p, &ours.addke)?
    } else {
        if (1..=7).any(|n| p.transforms.iter().any(|t| t.kind == TransformType::addke(n) && t.id != 0)) {
            return Err(ProposalError::NotOffered("additional key exchange without PFS"));
        }
        [None; 7]
    };
    let suite = EspSuite { encr, integ, group, esn, addke };
    suite.warn_if_legacy();
    Ok((suite, spi))
}

/// The strongSwan names of the legacy algorithms among `encr`, `integ`, `prf` and `group`.
fn legacy_names(encr: Encr, integ: Option<Integ>, prf: Option<Prf>, group: Option<Group>) -> Vec<&'static str> {
    let mut names = Vec::new();
    if encr.is_legacy() {
        names.push(encr_name(encr));
    }
    names.extend(integ.filter(|i| i.is_legacy()).map(integ_name));
    names.extend(prf.filter(|p| p.is_legacy()).map(prf_name));
    names.extend(group.filter(|g| g.is_legacy()).map(group_name));
    names
}

impl IkeSuite {
    /// The strongSwan names of the legacy (opt-in, issue 11) algorithms in this suite; empty for a modern one.
    pub fn legacy_algorithms(&self) -> Vec<&'static str> {
        legacy_names(self.encr, self.integ, Some(self.prf), Some(self.group))
    }

    /// Logs a warning if the suite has legacy algorithms (the gateway chose one a profile opted into).
    pub fn warn_if_legacy(&self) {
        let legacy = self.legacy_algorithms();
        if !legacy.is_empty() {
            tracing::warn!(
                suite = %self,
                legacy = %legacy.join(","),
                "IKE SA negotiated with legacy algorithms (opted into by the profile, never in the defaults)"
            );
        }
    }
}

impl EspSuite {
    /// The strongSwan names of the legacy (opt-in, issue 11) algorithms in this suite; empty for a modern one.
    pub fn legacy_algorithms(&self) -> Vec<&'static str> {
        legacy_names(self.encr, self.integ, None, self.group)
    }

    /// Logs a warning if the suite has legacy algorithms (the gateway chose one a profile opted into).
    pub fn warn_if_legacy(&self) {
        let legacy = self.legacy_algorithms();
        if !legacy.is_empty() {
            tracing::warn!(
                suite = %self,
                legacy = %legacy.join(","),
                "Child SA negotiated with legacy algorithms (opted into by the profile, never in the defaults)"
            );
        }
    }
}

impl std::fmt::Display for IkeSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", encr_name(self.encr))?;
        if let Some(i) = self.integ {
            write!(f, "-{}", integ_name(i))?;
        }
        write!(f, "-{}-{}", prf_name(self.prf), group_name(self.group))?;
        if self.addke.iter().any(Option::is_some) {
            write!(f, "-{}", addke_names(&self.addke))?;
        }
        Ok(())
    }
}

impl std::fmt::Display for EspSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", encr_name(self.encr))?;
        if let Some(i) = self.integ {
            write!(f, "-{}", integ_name(i))?;
        }
        if let Some(g) = self.group {
            write!(f, "-{}", group_name(g))?;
        }
        if self.addke.iter().any(Option::is_some) {
            write!(f, "-{}", addke_names(&self.addke))?;
        }
        if self.esn {
            write!(f, "-esn")?;
        }
        Ok(())
    }
}

/// strongSwan's name for a cipher.
pub fn encr_name(e: Encr) -> &'static str {
    match e {
        Encr::AesCbc { key_len: 16 } => "aes128",
        Encr::AesCbc { key_len: 24 } => "aes192",
        Encr::AesCbc { .. } => "aes256",
        Encr::AesGcm16 { key_len: 16 } => "aes128gcm16",
        Encr::AesGcm16 { key_len: 24 } => "aes192gcm16",
        Encr::AesGcm16 { .. } => "aes256gcm16",
        Encr::AesGcm12 { key_len: 16 } => "aes128gcm12",
        Encr::AesGcm12 { key_len: 24 } => "aes192gcm12",
        Encr::AesGcm12 { .. } => "aes256gcm12",
        Encr::AesGcm8 { key_len: 16 } => "aes128gcm8",
        Encr::AesGcm8 { key_len: 24 } => "aes192gcm8",
        Encr::AesGcm8 { .. } => "aes256gcm8",
        Encr::ChaCha20Poly1305 => "chacha20poly1305",
        Encr::TripleDes => "3des",
    }
}

/// strongSwan's name for an integrity algorithm.
pub fn integ_name(i: Integ) -> &'static str {
    match i {
        Integ::HmacSha1_96 => "sha1",
        Integ::HmacSha256_128 => "sha256",
        Integ::HmacSha384_192 => "sha384",
        Integ::HmacSha512_256 => "sha512",
    }
}

/// strongSwan's name for a PRF.
pub fn prf_name(p: Prf) -> &'static str {
    match p {
        Prf::HmacSha1 => "prfsha1",
        Prf::HmacSha256 => "prfsha256",
        Prf::HmacSha384 => "prfsha384",
        Prf::HmacSha512 => "prfsha512",
    }
}

/// strongSwan's name for a key exchange group.
pub fn group_name(g: Group) -> &'static str {
    match g {
        Group::Modp1024 => "modp1024",
        Group::Modp1536 => "modp1536",
        Group::Modp2048 => "modp2048",
        Group::Modp3072 => "modp3072",
        Group::Modp4096 => "modp4096",
        Group::Ecp256 => "ecp256",
        Group::Ecp384 => "ecp384",
        Group::Ecp521 => "ecp521",
        Group::EcpBp256 => "ecp256bp",
        Group::EcpBp384 => "ecp384bp",
        Group::Curve25519 => "x25519",
        Group::Curve448 => "x448",
        Group::MlKem512 => "mlkem512",
        Group::MlKem768 => "mlkem768",
        Group::MlKem1024 => "mlkem1024",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strongswan_strings() {
        let p = IkeProposal::parse("aes256gcm16-prfsha256-x25519").unwrap();
        assert_eq!(p.encr, vec![Encr::AesGcm16 { key_len: 32 }]);
        assert_eq!(p.prf, vec![Prf::HmacSha256]);
        assert!(p.integ.is_empty());
        assert_eq!(p.groups, vec![Group::Curve25519]);

        let p = IkeProposal::parse("aes256-sha256-modp2048").unwrap();
        assert_eq!(p.integ, vec![Integ::HmacSha256_128]);
        assert_eq!(p.prf, vec![Prf::HmacSha256]);

        let e = EspProposal::parse("aes256-sha256").unwrap();
        assert_eq!(e.esn, vec![false]);
        assert!(EspProposal::parse("chacha20poly1305").is_ok());
    }

    #[test]
    fn rejects_bad_strings() {
        assert!(matches!(IkeProposal::parse("aes256gcm16-prfsha256"), Err(ProposalError::NoGroup(_))));
        assert!(matches!(IkeProposal::parse("aes256-prfsha256-x25519"), Err(ProposalError::NoInteg(_))));
        assert!(matches!(IkeProposal::parse("des-sha1-modp1024"), Err(ProposalError::UnknownAlgorithm(_))));
        assert!(matches!(EspProposal::parse("aes256gcm16-aes256-sha256"), Err(ProposalError::AeadWithInteg(_))));
    }

    #[test]
    fn selection_accepts_only_what_was_offered() {
        let offered = vec![IkeProposal::parse("aes256gcm16-prfsha256-x25519-ecp256").unwrap()];
        let mut chosen = offered[0].to_wire(1, vec![]);
        chosen.transforms.retain(|t| t.kind != TransformType::DH || t.id == wire::dh::ECP_256);
        let s = select_ike(&offered, &[chosen.clone()]).unwrap();
        assert_eq!(s.group, Group::Ecp256);
        assert_eq!(s.to_string(), "aes256gcm16-prfsha256-ecp256");

        // Two groups: not a single choice.
        let two = offered[0].to_wire(1, vec![]);
        assert!(select_ike(&offered, &[two]).is_err());
        // A group we did not offer.
        let mut bad = chosen.clone();
        for t in &mut bad.transforms {
            if t.kind == TransformType::DH {
                t.id = wire::dh::MODP_2048;
            }
        }
        assert!(select_ike(&offered, &[bad]).is_err());
        // Wrong proposal number.
        let mut bad = chosen;
        bad.number = 2;
        assert!(select_ike(&offered, &[bad]).is_err());
    }

    #[test]
    fn esp_selection() {
        let offered = vec![EspProposal::parse("aes256-sha256").unwrap()];
        let mut w = offered[0].to_wire(1, 0xc000_0001, false);
        let (s, spi) = select_esp(&offered, &[w.clone()], false).unwrap();
        assert_eq!(spi, 0xc000_0001);
        assert_eq!(s.to_string(), "aes256-sha256");
        w.spi = vec![0, 0, 0, 1];
        assert!(select_esp(&offered, &[w], false).is_err());
    }

    /// Every legacy name parses to its IANA transform (RFC 7296 §3.3.2, IKEv2 registry), with strongSwan's
    /// aliases, and prints back under its canonical name.
    #[test]
    fn legacy_names_and_transforms() {
        // (name, aliases, transform type, id, key length attribute)
        let encrs: [(&str, &[&str], u16, Option<u16>); 10] = [
            ("3des", &[], 3, None),
            ("aes192", &[], 12, Some(192)),
            ("aes192gcm16", &["aes192gcm128", "aes192gcm"], 20, Some(192)),
            ("aes128gcm12", &["aes128gcm96"], 19, Some(128)),
            ("aes192gcm12", &["aes192gcm96"], 19, Some(192)),
            ("aes256gcm12", &["aes256gcm96"], 19, Some(256)),
            ("aes128gcm8", &["aes128gcm64"], 18, Some(128)),
            ("aes192gcm8", &["aes192gcm64"], 18, Some(192)),
            ("aes256gcm8", &["aes256gcm64"], 18, Some(256)),
            ("aes128gcm16", &["aes128gcm128", "AES128GCM"], 20, Some(128)),
        ];
        for (name, aliases, id, bits) in encrs {
            for n in std::iter::once(&name).chain(aliases) {
                let e = EspProposal::parse(&format!("{n}-sha1")).or_else(|_| EspProposal::parse(n)).unwrap();
                assert_eq!(e.encr.len(), 1);
                assert_eq!((e.encr[0].id(), e.encr[0].key_len_bits()), (id, bits), "{n}");
                assert_eq!(encr_name(e.encr[0]), name);
                let w = e.to_wire(1, 0x1000, false);
                let t = w.transforms.iter().find(|t| t.kind == TransformType::ENCR).unwrap();
                assert_eq!((t.id, t.key_len), (id, bits), "{n}");
            }
        }
        for (n, id) in [("sha1", 2), ("sha", 2)] {
            let e = EspProposal::parse(&format!("3des-{n}")).unwrap();
            assert_eq!(e.integ, vec![Integ::HmacSha1_96]);
            assert_eq!(integ_name(e.integ[0]), "sha1");
            let w = e.to_wire(1, 0x1000, false);
            assert!(w.transforms.iter().any(|t| t.kind == TransformType::INTEG && t.id == id));
        }
        // (name, aliases, group id)
        let groups: [(&str, &[&str], u16); 5] = [
            ("modp1024", &[], 2),
            ("modp1536", &[], 5),
            ("ecp256bp", &[], 28),
            ("ecp384bp", &[], 29),
            ("x448", &["curve448"], 32),
        ];
        for (name, aliases, id) in groups {
            for n in std::iter::once(&name).chain(aliases) {
                let p = IkeProposal::parse(&format!("aes128-sha256-{n}")).unwrap();
                assert_eq!(p.groups.len(), 1);
                assert_eq!(p.groups[0].id(), id);
                assert_eq!(group_name(p.groups[0]), name);
                let w = p.to_wire(1, vec![]);
                assert!(w.transforms.iter().any(|t| t.kind == TransformType::DH && t.id == id));
            }
        }
        // The classic corporate default: 3DES, SHA-1 (integrity and PRF), MODP-1024.
        let p = IkeProposal::parse("3des-sha1-modp1024").unwrap();
        assert_eq!(p.encr, vec![Encr::TripleDes]);
        assert_eq!(p.integ, vec![Integ::HmacSha1_96]);
        assert_eq!(p.prf, vec![Prf::HmacSha1]);
        assert_eq!(p.groups, vec![Group::Modp1024]);
        let w = p.to_wire(1, vec![]);
        let ids: Vec<(TransformType, u16, Option<u16>)> =
            w.transforms.iter().map(|t| (t.kind, t.id, t.key_len)).collect();
        assert_eq!(
            ids,
            vec![
                (TransformType::ENCR, 3, None),
                (TransformType::PRF, 2, None),
                (TransformType::INTEG, 2, None),
                (TransformType::DH, 2, None)
            ]
        );
        let p = IkeProposal::parse("aes256gcm12-prfsha1-ecp384bp").unwrap();
        assert_eq!(
            (p.encr[0], p.prf[0], p.groups[0]),
            (Encr::AesGcm12 { key_len: 32 }, Prf::HmacSha1, Group::EcpBp384)
        );
        // An AEAD with `sha1` means PRF SHA-1, as in strongSwan.
        let p = IkeProposal::parse("aes128gcm8-sha1-x448").unwrap();
        assert!(p.integ.is_empty());
        assert_eq!(p.prf, vec![Prf::HmacSha1]);
        // Not supported: brainpoolP512r1 (no maintained crate), single DES, MD5.
        for bad in ["aes256-sha256-ecp512bp", "des-sha1-modp1024", "3des-md5-modp1024"] {
            assert!(matches!(IkeProposal::parse(bad), Err(ProposalError::UnknownAlgorithm(_))), "{bad}");
        }
        assert!(matches!(EspProposal::parse("3des"), Err(ProposalError::NoInteg(_))));
        assert!(matches!(EspProposal::parse("aes128gcm8-sha1"), Err(ProposalError::AeadWithInteg(_))));
    }

    /// Legacy algorithms are opt-in: none is in the default proposals.
    #[test]
    fn defaults_have_no_legacy_algorithm() {
        for p in IkeProposal::defaults() {
            assert!(p.encr.iter().all(|e| !e.is_legacy()), "{p:?}");
            assert!(p.integ.iter().all(|i| !i.is_legacy()), "{p:?}");
            assert!(p.prf.iter().all(|x| !x.is_legacy()), "{p:?}");
            assert!(p.groups.iter().all(|g| !g.is_legacy()), "{p:?}");
        }
        for p in EspProposal::defaults() {
            assert!(p.encr.iter().all(|e| !e.is_legacy()), "{p:?}");
            assert!(p.integ.iter().all(|i| !i.is_legacy()), "{p:?}");
            assert!(p.groups.iter().all(|g| !g.is_legacy()), "{p:?}");
        }
    }

    /// Collects the WARN events emitted while a closure runs.
    #[derive(Clone, Default)]
    struct Warnings(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

    struct Fields(String);

    impl tracing::field::Visit for Fields {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            self.0.push_str(&format!("{}={value:?} ", field.name()));
        }
    }

    impl tracing::Subscriber for Warnings {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if *event.metadata().level() == tracing::Level::WARN {
                let mut f = Fields(String::new());
                event.record(&mut f);
                self.0.lock().unwrap().push(f.0);
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    fn warnings_of<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
        let w = Warnings::default();
        let out = tracing::subscriber::with_default(w.clone(), f);
        let logged = w.0.lock().unwrap().clone();
        (out, logged)
    }

    /// The gateway's choice of a legacy suite is accepted (it was offered) and logged as a warning naming the
    /// legacy algorithms; a modern choice logs nothing.
    #[test]
    fn selecting_a_legacy_suite_warns() {
        let offered = vec![IkeProposal::parse("3des-sha1-modp1024").unwrap()];
        let (s, warned) = warnings_of(|| select_ike(&offered, &[offered[0].to_wire(1, vec![])]));
        let s = s.unwrap();
        assert_eq!(s.to_string(), "3des-sha1-prfsha1-modp1024");
        assert_eq!(s.legacy_algorithms(), vec!["3des", "sha1", "prfsha1", "modp1024"]);
        assert_eq!(warned.len(), 1, "{warned:?}");
        assert!(
            warned[0].contains("legacy algorithms") && warned[0].contains("3des,sha1,prfsha1,modp1024"),
            "{warned:?}"
        );

        let offered = vec![IkeProposal::parse("aes256gcm16-prfsha256-x448").unwrap()];
        let (s, warned) = warnings_of(|| select_ike(&offered, &[offered[0].to_wire(1, vec![])]));
        assert_eq!(s.unwrap().legacy_algorithms(), vec!["x448"]);
        assert!(warned[0].contains("x448"), "{warned:?}");

        let esp = vec![EspProposal::parse("aes128gcm8").unwrap()];
        let ((s, _), warned) =
            warnings_of(|| select_esp(&esp, &[esp[0].to_wire(1, 0xc000_0001, false)], false).unwrap());
        assert_eq!(s.to_string(), "aes128gcm8");
        assert!(warned.len() == 1 && warned[0].contains("Child SA") && warned[0].contains("aes128gcm8"), "{warned:?}");

        let esp = vec![EspProposal::parse("aes256-sha256-ecp256bp").unwrap()];
        let ((s, _), _) = warnings_of(|| select_esp(&esp, &[esp[0].to_wire(1, 0xc000_0001, true)], true).unwrap());
        assert_eq!(s.legacy_algorithms(), vec!["ecp256bp"]);

        let offered = IkeProposal::defaults();
        let mut chosen = offered[0].to_wire(1, vec![]);
        let mut seen = std::collections::HashSet::new();
        chosen.transforms.retain(|t| seen.insert(t.kind));
        let (s, warned) = warnings_of(|| select_ike(&offered, &[chosen]));
        assert!(s.unwrap().legacy_algorithms().is_empty());
        assert!(warned.is_empty(), "{warned:?}");
    }

    /// A gateway may not pick a legacy algorithm the profile did not name, even with the same transform type.
    #[test]
    fn legacy_choice_not_offered_is_refused() {
        let offered = IkeProposal::defaults();
        let legacy = IkeProposal::parse("3des-sha1-modp1024").unwrap().to_wire(1, vec![]);
        assert!(select_ike(&offered, &[legacy]).is_err());
        let offered = vec![IkeProposal::parse("aes128-sha256-modp2048").unwrap()];
        let mut w = offered[0].to_wire(1, vec![]);
        for t in &mut w.transforms {
            if t.kind == TransformType::INTEG {
                t.id = 2; // HMAC-SHA1-96
            }
        }
        assert_eq!(select_ike(&offered, &[w]), Err(ProposalError::NotOffered("integrity algorithm")));
        let esp = EspProposal::defaults();
        let mut w = esp[0].to_wire(1, 0xc000_0001, false);
        w.transforms.retain(|t| t.kind != TransformType::ENCR && t.kind != TransformType::ESN);
        w.transforms.push(Transform { kind: TransformType::ENCR, id: 18, key_len: Some(256) });
        w.transforms.push(Transform { kind: TransformType::ESN, id: 0, key_len: None });
        assert_eq!(select_esp(&esp, &[w], false), Err(ProposalError::NotOffered("encryption algorithm")));
    }
}
