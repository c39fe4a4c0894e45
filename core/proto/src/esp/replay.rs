//! Anti-replay window (RFC 4303 §3.4.3) kept as in RFC 6479: a ring of `u64` bitmap blocks indexed by
//! `seq >> 6`, advanced by clearing blocks, never by shifting bits. Works on full 64-bit sequence numbers;
//! [`ReplayWindow::infer_seq`] recovers the high 32 bits of an ESN (RFC 4303 Appendix A2.2).

/// Smallest window the SA accepts (packets).
pub const MIN_REPLAY_WINDOW: usize = 1024;
/// Largest window the SA accepts (packets); keeps the bitmap at 128 KiB at most.
pub const MAX_REPLAY_WINDOW: usize = 1 << 20;

const BLOCK_BITS: u64 = 64;
const BLOCK_SHIFT: u32 = 6;

/// Why [`ReplayWindow::check`] rejected a sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayReject {
    /// Sequence number 0 is never sent (RFC 4303 §3.3.3).
    Zero,
    /// Left of the window.
    TooOld,
    /// Already received.
    Duplicate,
}

/// The receive window: highest authenticated sequence number plus a bitmap of the ones below it.
#[derive(Clone)]
pub struct ReplayWindow {
    /// Highest sequence number accepted so far (0: none).
    top: u64,
    /// Ring of `blocks.len()` (a power of two) bitmap words; block `i` holds seqs `64*i .. 64*i+63`.
    blocks: Box<[u64]>,
    /// Usable window size in packets: `(blocks.len() - 1) * 64` (one block is the one being filled).
    size: u64,
}

impl ReplayWindow {
    /// A window of at least `min_size` packets (clamped up to [`MIN_REPLAY_WINDOW`], rounded up so the
    /// ring has a power-of-two number of blocks). `None` if `min_size` exceeds [`MAX_REPLAY_WINDOW`].
    pub fn new(min_size: usize) -> Option<ReplayWindow> {
        if min_size > MAX_REPLAY_WINDOW {
            return None;
        }
        let min_size = min_size.max(MIN_REPLAY_WINDOW);
        // One spare block for the partially filled top block (RFC 6479 §2).
        let n_blocks = (min_size.div_ceil(BLOCK_BITS as usize) + 1).next_power_of_two();
        Some(ReplayWindow {
            top: 0,
            blocks: vec![0u64; n_blocks].into_boxed_slice(),
            size: (n_blocks as u64 - 1) * BLOCK_BITS,
        })
    }

    /// Window size in packets.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Highest sequence number accepted so far (0 before the first packet).
    pub fn top(&self) -> u64 {
        self.top
    }

    fn slot(&self, seq: u64) -> (usize, u64) {
        let mask = self.blocks.len() as u64 - 1;
        (((seq >> BLOCK_SHIFT) & mask) as usize, 1u64 << (seq & (BLOCK_BITS - 1)))
    }

    /// Would `seq` be accepted? Does not change the window (call before authenticating).
    pub fn check(&self, seq: u64) -> Result<(), ReplayReject> {
        if seq == 0 {
            return Err(ReplayReject::Zero);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= self.size {
            return Err(ReplayReject::TooOld);
        }
        let (block, bit) = self.slot(seq);
        match self.blocks.get(block) {
            Some(word) if word & bit == 0 => Ok(()),
            _ => Err(ReplayReject::Duplicate),
        }
    }

    /// Record `seq` as received (call only after the packet authenticated and `check` passed).
    pub fn update(&mut self, seq: u64) {
        if seq > self.top {
            let n = self.blocks.len() as u64;
            let cur = self.top >> BLOCK_SHIFT;
            let new = seq >> BLOCK_SHIFT;
            // Clear the blocks the window slides over; at most the whole ring.
            let steps = (new - cur).min(n);
            for i in 1..=steps {
                let (block, _) = self.slot((cur + i) << BLOCK_SHIFT);
                if let Some(word) = self.blocks.get_mut(block) {
                    *word = 0;
                }
            }
            self.top = seq;
        }
        let (block, bit) = self.slot(seq);
        if let Some(word) = self.blocks.get_mut(block) {
            *word |= bit;
        }
    }

    /// Full 64-bit sequence number for the low 32 bits seen on the wire when ESN is in use
    /// (RFC 4303 Appendix A2.2): the candidate closest to the window, preferring the current subspace.
    pub fn infer_seq(&self, seq_lo: u32) -> u64 {
        let w = self.size; // < 2^32
        let tl = self.top as u32 as u64;
        let th = self.top >> 32;
        let sl = seq_lo as u64;
        let sh = if tl >= w - 1 {
            // Case A: window lies within one subspace.
            if sl >= tl - (w - 1) {
                th
            } else {
                th.wrapping_add(1)
            }
        } else {
            // Case B: window spans two subspaces. With Th == 0 there is no previous subspace.
            let lower = tl.wrapping_sub(w - 1) & 0xffff_ffff;
            if sl >= lower && th > 0 {
                th - 1
            } else {
                th
            }
        };
        (sh << 32) | sl
    }
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow").field("top", &self.top).field("size", &self.size).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_up() {
        assert_eq!(ReplayWindow::new(0).unwrap().size(), 1984); // 17 blocks -> 32
        assert!(ReplayWindow::new(1024).unwrap().size() >= 1024);
        assert!(ReplayWindow::new(5000).unwrap().size() >= 5000);
        assert!(ReplayWindow::new(MAX_REPLAY_WINDOW + 1).is_none());
    }

    #[test]
    fn in_order_out_of_order_and_old() {
        let mut w = ReplayWindow::new(1024).unwrap();
        assert_eq!(w.check(0), Err(ReplayReject::Zero));
        for s in [1u64, 2, 5, 4, 3] {
            assert_eq!(w.check(s), Ok(()));
            w.update(s);
            assert_eq!(w.check(s), Err(ReplayReject::Duplicate));
        }
        let size = w.size();
        w.update(10_000);
        assert_eq!(w.check(10_000 - size), Err(ReplayReject::TooOld));
        assert_eq!(w.check(10_000 - size + 1), Ok(()));
        assert_eq!(w.check(5), Err(ReplayReject::TooOld));
        // Bits from before the jump must not leak into the reused ring slots.
        let mut w2 = ReplayWindow::new(1024).unwrap();
        w2.update(70);
        let jump = 70 + w2.blocks.len() as u64 * 64;
        w2.update(jump);
        assert_eq!(w2.check(jump - 1), Ok(()));
        assert_eq!(w2.check(jump - 64), Ok(()));
    }

    #[test]
    fn every_seq_in_window_tracked() {
        let mut w = ReplayWindow::new(1024).unwrap();
        // Accept evens ascending, then odds descending within the window.
        for s in (2..=3000u64).step_by(2) {
            w.update(s);
        }
        for s in (3001 - w.size()..3000).rev() {
            let expect = if s % 2 == 0 { Err(ReplayReject::Duplicate) } else { Ok(()) };
            assert_eq!(w.check(s), expect, "seq {s}");
        }
    }

    #[test]
    fn esn_inference() {
        let mut w = ReplayWindow::new(1024).unwrap();
        assert_eq!(w.infer_seq(1), 1);
        // Fresh window (Th = 0): a low value near 2^32 stays in subspace 0.
        assert_eq!(w.infer_seq(u32::MAX), u32::MAX as u64);
        w.update((1 << 32) - 1);
        assert_eq!(w.infer_seq(u32::MAX - 5), (1 << 32) - 6);
        assert_eq!(w.infer_seq(0), 1 << 32);
        assert_eq!(w.infer_seq(3), (1 << 32) + 3);
        w.update((1 << 32) + 3);
        assert_eq!(w.infer_seq(u32::MAX - 5), (1 << 32) - 6);
        assert_eq!(w.infer_seq(4), (1 << 32) + 4);
    }
}
