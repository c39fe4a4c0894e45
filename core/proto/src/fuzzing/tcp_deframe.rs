//! `tcp_deframe`: a control byte (bit 0: expect the `IKETCP` prefix, the responder's side; the rest: the read
//! size), then a TCP stream from the gateway, fed in reads of that size. The deframer must never panic, keep
//! within its buffer, hand out only frames that fit the stream, and stop at the first framing error.

use crate::tcp::{Deframer, Frame, MAX_FRAME};

pub fn tcp_deframe(data: &[u8]) {
    let Some((&ctrl, stream)) = data.split_first() else { return };
    let mut d = if ctrl & 1 == 1 { Deframer::expecting_prefix(0) } else { Deframer::new(0) };
    let chunk = usize::from(ctrl >> 1).max(1) * 37;
    let mut handed = 0usize;
    for piece in stream.chunks(chunk) {
        let mut rest = piece;
        while !rest.is_empty() {
            let spare = d.spare();
            assert!(!spare.is_empty(), "the deframer always has room");
            let n = spare.len().min(rest.len());
            spare[..n].copy_from_slice(&rest[..n]);
            d.filled(n);
            rest = &rest[n..];
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => {
                        let len = match f {
                            Frame::Ike(m) => m.len() + 6,
                            Frame::Esp(p) => p.len() + 2,
                            Frame::Keepalive => 3,
                            Frame::Runt => 2,
                        };
                        assert!(len <= MAX_FRAME);
                        handed += len;
                        assert!(handed <= stream.len());
                    }
                    Ok(None) => break,
                    Err(_) => return,
                }
            }
            assert!(d.buffered() <= stream.len());
        }
    }
}
