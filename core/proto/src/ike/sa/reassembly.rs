//! Reassembly of RFC 7383 fragmented IKE messages (§2.6): only authenticated fragments of the message ID we
//! expect are kept, within bounds on their number and size.

use zeroize::Zeroizing;

use crate::wire;

/// Most fragments we accept for one message, and most bytes (RFC 7383 §2.6 asks for limits).
const MAX_FRAGMENTS: u16 = 64;
const MAX_REASSEMBLED: usize = 64 * 1024;

/// A whole message from fragments: the type of its first payload and the inner plaintext.
type Reassembled = (u8, Zeroizing<Vec<u8>>);

/// Fragments of one message (RFC 7383 §2.6). Only authenticated fragments get here.
pub(super) struct Reassembly {
    /// (message ID, response flag).
    pub key: (u32, bool),
    total: u16,
    first_inner: u8,
    parts: Vec<Option<Zeroizing<Vec<u8>>>>,
    bytes: usize,
}

impl Reassembly {
    pub fn new(key: (u32, bool)) -> Reassembly {
        Reassembly { key, total: 0, first_inner: 0, parts: Vec::new(), bytes: 0 }
    }

    /// Add one fragment; the whole message's first payload type and plaintext when complete.
    pub fn add(
        &mut self,
        f: &wire::EncryptedFragment,
        plain: Zeroizing<Vec<u8>>,
    ) -> Result<Option<Reassembled>, &'static str> {
        if f.total_fragments == 0 || f.total_fragments > MAX_FRAGMENTS {
            return Err("too many fragments");
        }
        if f.fragment_number == 0 || f.fragment_number > f.total_fragments {
            return Err("fragment number out of range");
        }
        if f.total_fragments != self.total {
            if f.total_fragments < self.total {
                // An older transmission of the message with other fragment sizes: ignore it (§2.6).
                return Ok(None);
            }
            // A newer retransmission with more fragments replaces what we have.
            self.total = f.total_fragments;
            self.parts = (0..f.total_fragments).map(|_| None).collect();
            self.bytes = 0;
        }
        let slot = self.parts.get_mut(usize::from(f.fragment_number - 1)).ok_or("fragment number out of range")?;
        if slot.is_some() {
            return Ok(None); // duplicate
        }
        if self.bytes + plain.len() > MAX_REASSEMBLED {
            return Err("reassembled message too large");
        }
        self.bytes += plain.len();
        if f.fragment_number == 1 {
            self.first_inner = f.first_inner;
        }
        *slot = Some(plain);
        if self.parts.iter().all(Option::is_some) {
            let mut whole = Zeroizing::new(Vec::with_capacity(self.bytes));
            for p in self.parts.iter().flatten() {
                whole.extend_from_slice(p);
            }
            return Ok(Some((self.first_inner, whole)));
        }
        Ok(None)
    }
}
