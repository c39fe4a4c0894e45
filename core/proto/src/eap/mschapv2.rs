//! EAP-MSCHAPv2 peer (draft-kamath-pppext-eap-mschapv2-02, MS-CHAP-V2 of RFC 2759) and its MSK (RFC 3079 §3).
//!
//! Type-Data of every packet starts with OpCode, MS-CHAPv2-ID and MS-Length (= EAP Length - 5); the Success and
//! Failure Responses of the peer carry the OpCode only.

use aws_lc_rs::digest;
use des::cipher::{BlockEncrypt, KeyInit};
use des::Des;
use md4::{Digest, Md4};
use zeroize::Zeroizing;

use super::packet::printable;
use super::{EapError, MethodStep};
use crate::crypto::constant_time_eq;

const OP_CHALLENGE: u8 = 1;
const OP_RESPONSE: u8 = 2;
const OP_SUCCESS: u8 = 3;
const OP_FAILURE: u8 = 4;
const OP_CHANGE_PASSWORD: u8 = 7;

/// Value-Size of a Challenge (RFC 2759 §4) and of a Response (RFC 2759 §4: 16 + 8 + 24 + 1).
const CHALLENGE_LEN: usize = 16;
const RESPONSE_VALUE_LEN: u8 = 49;
/// "S=" followed by 40 hexadecimal digits (RFC 2759 §5).
const AUTH_STRING_HEX_LEN: usize = 40;

/// RFC 2759 §8.7 Magic1 / Magic2.
const AUTH_MAGIC1: &[u8] = b"Magic server to client signing constant";
const AUTH_MAGIC2: &[u8] = b"Pad to make it do more than one iteration";
/// RFC 3079 §3.4 Magic1 (GetMasterKey) and Magic2 / Magic3 (GetAsymmetricStartKey).
const MPPE_MAGIC1: &[u8] = b"This is the MPPE Master Key";
const MPPE_MAGIC2: &[u8] = b"On the client side, this is the send key; on the server side, it is the receive key.";
const MPPE_MAGIC3: &[u8] = b"On the client side, this is the receive key; on the server side, it is the send key.";
const SHS_PAD1: [u8; 40] = [0x00; 40];
const SHS_PAD2: [u8; 40] = [0xf2; 40];

/// Length of the MSK we hand out (RFC 3748 §7.10: at least 64 octets).
pub(crate) const MSK_LEN: usize = 64;

/// Where the MS-CHAPv2 conversation stands. Its Debug output names the phase only (no MSK).
enum Phase {
    /// Waiting for the authenticator's Challenge.
    AwaitChallenge,
    /// Response sent; waiting for Success (with the authenticator response) or Failure.
    AwaitResult { auth_response: [u8; 20], msk: Zeroizing<Vec<u8>> },
    /// The authenticator proved knowledge of the password; the MSK is ready.
    Verified { msk: Zeroizing<Vec<u8>> },
    /// The authenticator rejected us.
    Rejected,
}

impl std::fmt::Debug for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Phase::AwaitChallenge => "AwaitChallenge",
            Phase::AwaitResult { .. } => "AwaitResult(<redacted>)",
            Phase::Verified { .. } => "Verified(<redacted>)",
            Phase::Rejected => "Rejected",
        })
    }
}

/// One EAP-MSCHAPv2 conversation of the peer.
#[derive(Debug)]
pub(crate) struct MsChapV2 {
    phase: Phase,
}

impl MsChapV2 {
    pub(crate) fn new() -> MsChapV2 {
        MsChapV2 { phase: Phase::AwaitChallenge }
    }

    /// The MSK, once the Success Request verified; then EAP-Success may be accepted.
    pub(crate) fn msk(&self) -> Option<&[u8]> {
        match &self.phase {
            Phase::Verified { msk } => Some(msk),
            _ => None,
        }
    }

    /// Handle the Type-Data of one EAP-MSCHAPv2 Request.
    pub(crate) fn handle(
        &mut self,
        data: &[u8],
        username: &str,
        password: &str,
        rng: &mut dyn rand_core::CryptoRng,
    ) -> Result<MethodStep, EapError> {
        let (&op, rest) = data.split_first().ok_or(EapError::Malformed("EAP-MSCHAPv2 without OpCode"))?;
        // MS-CHAPv2-ID (1) and MS-Length (2); MS-Length is not relied upon: the EAP Length bounds the packet.
        let (&[ms_id, _, _], body) =
            rest.split_first_chunk::<3>().ok_or(EapError::Malformed("EAP-MSCHAPv2 header truncated"))?;
        match op {
            OP_CHALLENGE => {
                if !matches!(self.phase, Phase::AwaitChallenge) {
                    return Err(EapError::Protocol("unexpected EAP-MSCHAPv2 Challenge"));
                }
                self.challenge(ms_id, body, username, password, rng)
            }
            OP_SUCCESS => self.success(body),
            OP_FAILURE => {
                let msg = failure_message(body);
                tracing::warn!(%msg, "EAP-MSCHAPv2 rejected by the gateway");
                self.phase = Phase::Rejected;
                Ok(MethodStep::ReplyThenFail(vec![OP_FAILURE], EapError::Rejected(msg)))
            }
            OP_CHANGE_PASSWORD => Err(EapError::Protocol("EAP-MSCHAPv2 Change-Password is not supported")),
            _ => Err(EapError::Malformed("unknown EAP-MSCHAPv2 OpCode")),
        }
    }

    /// Challenge -> Response (RFC 2759 §4, §8.1).
    fn challenge(
        &mut self,
        ms_id: u8,
        body: &[u8],
        username: &str,
        password: &str,
        rng: &mut dyn rand_core::CryptoRng,
    ) -> Result<MethodStep, EapError> {
        let (&size, rest) = body.split_first().ok_or(EapError::Malformed("EAP-MSCHAPv2 Challenge truncated"))?;
        if usize::from(size) != CHALLENGE_LEN {
            return Err(EapError::Malformed("EAP-MSCHAPv2 Challenge Value-Size is not 16"));
        }
        let auth_challenge: &[u8; CHALLENGE_LEN] =
            rest.first_chunk().ok_or(EapError::Malformed("EAP-MSCHAPv2 Challenge truncated"))?;
        let mut peer_challenge = [0u8; CHALLENGE_LEN];
        rng.fill_bytes(&mut peer_challenge);

        let keys = Keys::compute(username, password, auth_challenge, &peer_challenge);

        // Type-Data: OpCode, MS-CHAPv2-ID, MS-Length, Value-Size, Peer-Challenge, Reserved, NT-Response, Flags, Name.
        let name = username.as_bytes();
        let total = 4 + 1 + usize::from(RESPONSE_VALUE_LEN) + name.len();
        let ms_len = u16::try_from(total).map_err(|_| EapError::InvalidConfig("EAP-MSCHAPv2 user name too long"))?;
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&[OP_RESPONSE, ms_id]);
        out.extend_from_slice(&ms_len.to_be_bytes());
        out.push(RESPONSE_VALUE_LEN);
        out.extend_from_slice(&peer_challenge);
        out.extend_from_slice(&[0u8; 8]);
        out.extend_from_slice(&keys.nt_response);
        out.push(0);
        out.extend_from_slice(name);

        self.phase = Phase::AwaitResult { auth_response: keys.auth_response, msk: keys.msk };
        Ok(MethodStep::Reply(out))
    }

    /// Success Request: check "S=<auth_string>" (RFC 2759 §8.8), answer with a Success Response.
    fn success(&mut self, message: &[u8]) -> Result<MethodStep, EapError> {
        let Phase::AwaitResult { auth_response, .. } = &self.phase else {
            return Err(EapError::Protocol("EAP-MSCHAPv2 Success before our Response"));
        };
        let hex = message
            .strip_prefix(b"S=")
            .and_then(|m| m.get(..AUTH_STRING_HEX_LEN))
            .ok_or(EapError::Malformed("EAP-MSCHAPv2 Success without an authenticator response"))?;
        let mut got = [0u8; 20];
        decode_hex(hex, &mut got).ok_or(EapError::Malformed("EAP-MSCHAPv2 authenticator response is not hex"))?;
        if !constant_time_eq(&got, auth_response) {
            return Err(EapError::AuthenticatorFailed);
        }
        if let Some(m) = find_field(message, b"M=") {
            tracing::debug!(message = %printable(m), "EAP-MSCHAPv2 success");
        }
        let Phase::AwaitResult { msk, .. } = std::mem::replace(&mut self.phase, Phase::Rejected) else {
            return Err(EapError::Protocol("EAP-MSCHAPv2 state"));
        };
        self.phase = Phase::Verified { msk };
        Ok(MethodStep::Reply(vec![OP_SUCCESS]))
    }
}

/// Readable text for a Failure Request "E=eeeeeeeeee R=r C=... V=vvvvvvvvvv M=<msg>" (RFC 2759 §6).
fn failure_message(message: &[u8]) -> String {
    let code = find_field(message, b"E=").and_then(|v| {
        let digits = v.split(|&b| b == b' ').next().unwrap_or_default();
        std::str::from_utf8(digits).ok()?.parse::<u32>().ok()
    });
    let meaning = match code {
        Some(646) => "restricted logon hours",
        Some(647) => "account disabled",
        Some(648) => "password expired",
        Some(649) => "no dial-in permission",
        Some(691) => "authentication failure: wrong user name or password",
        Some(709) => "error changing password",
        _ => "unknown error",
    };
    let mut text = match code {
        Some(c) => format!("EAP-MSCHAPv2 error {c} ({meaning})"),
        None => format!("EAP-MSCHAPv2 failure ({meaning})"),
    };
    if let Some(m) = find_field(message, b"M=").filter(|m| !m.is_empty()) {
        text.push_str(": ");
        text.push_str(&printable(m));
    }
    text
}

/// The value of `key` ("E=", "M=", ...) in a space-separated MS-CHAPv2 message. "M=" runs to the end.
fn find_field<'a>(message: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut pos = 0;
    while pos < message.len() {
        let rest = message.get(pos..)?;
        if let Some(v) = rest.strip_prefix(key) {
            return Some(v);
        }
        // Skip to the character after the next space.
        pos += rest.iter().position(|&b| b == b' ')? + 1;
    }
    None
}

fn decode_hex(hex: &[u8], out: &mut [u8]) -> Option<()> {
    if hex.len() != out.len() * 2 {
        return None;
    }
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
        *o = (digit(*pair.first()?)? << 4) | digit(*pair.get(1)?)?;
    }
    Some(())
}

/// Everything the peer derives from one Challenge.
pub(crate) struct Keys {
    pub(crate) nt_response: [u8; 24],
    pub(crate) auth_response: [u8; 20],
    pub(crate) msk: Zeroizing<Vec<u8>>,
}

impl Keys {
    pub(crate) fn compute(
        username: &str,
        password: &str,
        auth_challenge: &[u8; 16],
        peer_challenge: &[u8; 16],
    ) -> Keys {
        let pw_hash = nt_password_hash(password);
        let pw_hash_hash = hash_nt_password_hash(&pw_hash);
        let challenge = challenge_hash(peer_challenge, auth_challenge, username);
        let nt_response = challenge_response(&challenge, &pw_hash);
        let auth_response = authenticator_response(&pw_hash_hash, &nt_response, &challenge);
        let master = master_key(&pw_hash_hash, &nt_response);
        Keys { nt_response, auth_response, msk: msk(&master) }
    }
}

fn sha1(parts: &[&[u8]]) -> [u8; 20] {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 20];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// NtPasswordHash: MD4 of the UTF-16LE password (RFC 2759 §8.3).
pub(crate) fn nt_password_hash(password: &str) -> Zeroizing<[u8; 16]> {
    let unicode: Zeroizing<Vec<u8>> = Zeroizing::new(password.encode_utf16().flat_map(u16::to_le_bytes).collect());
    Zeroizing::new(Md4::digest(unicode.as_slice()).into())
}

/// HashNtPasswordHash (RFC 2759 §8.4).
pub(crate) fn hash_nt_password_hash(hash: &[u8; 16]) -> Zeroizing<[u8; 16]> {
    Zeroizing::new(Md4::digest(hash).into())
}

/// ChallengeHash (RFC 2759 §8.2): the user name without any "DOMAIN\" prefix.
pub(crate) fn challenge_hash(peer_challenge: &[u8; 16], auth_challenge: &[u8; 16], username: &str) -> [u8; 8] {
    let user = username.rsplit_once('\\').map_or(username, |(_, u)| u);
    let digest = sha1(&[peer_challenge, auth_challenge, user.as_bytes()]);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// ChallengeResponse (RFC 2759 §8.5): three DES encryptions keyed by the zero-padded password hash.
pub(crate) fn challenge_response(challenge: &[u8; 8], pw_hash: &[u8; 16]) -> [u8; 24] {
    let mut z = Zeroizing::new([0u8; 21]);
    z[..16].copy_from_slice(pw_hash);
    let mut out = [0u8; 24];
    for (key7, block) in z.chunks_exact(7).zip(out.chunks_exact_mut(8)) {
        block.copy_from_slice(&des_encrypt(key7, challenge));
    }
    out
}

/// DesEncrypt (RFC 2759 §8.6): the 7-octet key spread over the high 7 bits of 8 octets, odd parity in bit 0.
fn des_encrypt(key7: &[u8], clear: &[u8; 8]) -> [u8; 8] {
    let mut wide = [0u8; 8];
    wide[1..].copy_from_slice(key7);
    let bits = Zeroizing::new(u64::from_be_bytes(wide));
    let mut key = Zeroizing::new([0u8; 8]);
    for (i, k) in key.iter_mut().enumerate() {
        let seven = ((*bits >> (49 - 7 * i)) & 0x7f) as u8;
        let byte = seven << 1;
        *k = byte | u8::from(byte.count_ones() & 1 == 0);
    }
    let cipher = Des::new(&(*key).into());
    let mut block = (*clear).into();
    cipher.encrypt_block(&mut block);
    block.into()
}

/// GenerateAuthenticatorResponse (RFC 2759 §8.7), as the 20 raw octets behind "S=".
pub(crate) fn authenticator_response(pw_hash_hash: &[u8; 16], nt_response: &[u8; 24], challenge: &[u8; 8]) -> [u8; 20] {
    let digest = sha1(&[pw_hash_hash, nt_response, AUTH_MAGIC1]);
    sha1(&[&digest, challenge, AUTH_MAGIC2])
}

/// GetMasterKey (RFC 3079 §3.4).
pub(crate) fn master_key(pw_hash_hash: &[u8; 16], nt_response: &[u8; 24]) -> Zeroizing<[u8; 16]> {
    let d = Zeroizing::new(sha1(&[pw_hash_hash, nt_response, MPPE_MAGIC1]));
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&d[..16]);
    out
}

/// GetAsymmetricStartKey (RFC 3079 §3.4) for a 128-bit key; `magic` selects the direction.
fn asymmetric_start_key(master: &[u8; 16], magic: &[u8]) -> Zeroizing<[u8; 20]> {
    Zeroizing::new(sha1(&[master, &SHS_PAD1, magic, &SHS_PAD2]))
}

/// The client's MasterSendKey (RFC 3079 §3.3, Magic2 on the client side).
pub(crate) fn client_send_key(master: &[u8; 16]) -> Zeroizing<[u8; 16]> {
    first16(&asymmetric_start_key(master, MPPE_MAGIC2))
}

/// The client's MasterReceiveKey (RFC 3079 §3.3, Magic3 on the client side).
pub(crate) fn client_receive_key(master: &[u8; 16]) -> Zeroizing<[u8; 16]> {
    first16(&asymmetric_start_key(master, MPPE_MAGIC3))
}

fn first16(d: &[u8; 20]) -> Zeroizing<[u8; 16]> {
    let mut out = Zeroizing::new([0u8; 16]);
    out.copy_from_slice(&d[..16]);
    out
}

/// The EAP-MSCHAPv2 MSK as Microsoft and strongSwan define it: the authenticator's MasterReceiveKey, then its
/// MasterSendKey, then 32 zero octets. Seen from the client this is client-send key | client-receive key | 0^32.
pub(crate) fn msk(master: &[u8; 16]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(MSK_LEN));
    out.extend_from_slice(client_send_key(master).as_slice());
    out.extend_from_slice(client_receive_key(master).as_slice());
    out.resize(MSK_LEN, 0);
    out
}
