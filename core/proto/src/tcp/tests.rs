use super::*;

/// Feeds `stream` to `d` in reads of at most `chunk` bytes; returns the frames as (kind, bytes).
fn feed(d: &mut Deframer, stream: &[u8], chunk: usize) -> Result<Vec<(char, Vec<u8>)>, TcpError> {
    let mut out = Vec::new();
    for piece in stream.chunks(chunk.max(1)) {
        let mut rest = piece;
        while !rest.is_empty() {
            let spare = d.spare();
            let n = spare.len().min(rest.len());
            spare[..n].copy_from_slice(&rest[..n]);
            d.filled(n);
            rest = &rest[n..];
            while let Some(f) = d.next_frame()? {
                out.push(match f {
                    Frame::Ike(m) => ('i', m.to_vec()),
                    Frame::Esp(p) => ('e', p.to_vec()),
                    Frame::Keepalive => ('k', vec![]),
                    Frame::Runt => ('r', vec![]),
                });
            }
        }
    }
    Ok(out)
}

fn esp_frame(payload: &[u8]) -> Vec<u8> {
    let mut v = esp_length_prefix(payload.len()).unwrap().to_vec();
    v.extend_from_slice(payload);
    v
}

fn ike_frame(msg: &[u8]) -> Vec<u8> {
    let mut v = vec![0u8; msg.len() + 6];
    let n = frame_ike(msg, &mut v).unwrap();
    assert_eq!(n, v.len());
    v
}

#[test]
fn ike_frames_carry_the_length_and_the_marker() {
    let f = ike_frame(&[1, 2, 3]);
    assert_eq!(f, vec![0, 9, 0, 0, 0, 0, 1, 2, 3]);
    assert_eq!(esp_length_prefix(100).unwrap(), [0, 102]);
    assert_eq!(esp_length_prefix(MAX_FRAME - 2).unwrap(), [0xff, 0xff]);
    assert_eq!(esp_length_prefix(MAX_FRAME - 1), Err(TcpError::TooLarge(MAX_FRAME - 1)));
    let mut small = [0u8; 4];
    assert_eq!(frame_ike(&[1], &mut small), Err(TcpError::NoRoom));
    let big = vec![0u8; MAX_FRAME];
    let mut out = vec![0u8; MAX_FRAME + 10];
    assert_eq!(frame_ike(&big, &mut out), Err(TcpError::TooLarge(MAX_FRAME)));
}

#[test]
fn datagrams_of_the_ike_sa_become_frames_and_keepalives_are_not_sent() {
    let mut out = [0u8; 64];
    assert_eq!(frame_datagram(&[0xff], true, &mut out), Ok(0));
    let n = frame_datagram(&[0, 0, 0, 0, 7, 8], true, &mut out).unwrap();
    assert_eq!(&out[..n], &[0, 8, 0, 0, 0, 0, 7, 8]);
    let n = frame_datagram(&[7, 8], false, &mut out).unwrap();
    assert_eq!(&out[..n], &[0, 8, 0, 0, 0, 0, 7, 8]);
}

#[test]
fn frames_are_reassembled_across_any_read_boundaries() {
    let esp: Vec<u8> = (0..1400u32).map(|i| i as u8 | 1).collect();
    let mut stream = ike_frame(&[0xaa; 300]);
    stream.extend(esp_frame(&esp));
    stream.extend(esp_frame(&[0xff]));
    stream.extend(esp_frame(&[1, 2, 3]));
    stream.extend(ike_frame(&[]));
    stream.extend(esp_frame(&esp[..8]));
    for chunk in [1, 2, 3, 7, 100, 1401, 4096, 70000] {
        let mut d = Deframer::new(0);
        let frames = feed(&mut d, &stream, chunk).unwrap();
        let kinds: String = frames.iter().map(|f| f.0).collect();
        assert_eq!(kinds, "iekrie", "chunk {chunk}");
        assert_eq!(frames[0].1, vec![0xaa; 300]);
        assert_eq!(frames[1].1, esp);
        assert_eq!(frames[5].1, &esp[..8]);
        assert_eq!(d.buffered(), 0);
    }
}

#[test]
fn a_long_stream_of_largest_frames_stays_in_the_bounded_buffer() {
    let big = vec![0x5au8; MAX_FRAME - 2];
    let mut stream = Vec::new();
    for _ in 0..5 {
        stream.extend(esp_frame(&big));
        stream.extend(ike_frame(&[1; 10]));
    }
    let mut d = Deframer::new(Deframer::MIN_CAPACITY);
    let frames = feed(&mut d, &stream, 9000).unwrap();
    assert_eq!(frames.len(), 10);
    assert!(frames.iter().step_by(2).all(|f| f.0 == 'e' && f.1.len() == MAX_FRAME - 2));
}

#[test]
fn a_length_below_two_breaks_the_stream() {
    let mut d = Deframer::new(0);
    assert_eq!(feed(&mut d, &[0, 1, 0], 10), Err(TcpError::BadLength(1)));
    let mut d = Deframer::new(0);
    assert_eq!(feed(&mut d, &[0, 0], 1), Err(TcpError::BadLength(0)));
    // A partial frame is not an error: it waits for more.
    let mut d = Deframer::new(0);
    assert_eq!(feed(&mut d, &[0, 20, 1, 2], 1).unwrap(), vec![]);
    assert_eq!(d.buffered(), 4);
    d.reset();
    assert_eq!(d.buffered(), 0);
}

#[test]
fn the_responder_side_checks_the_prefix() {
    let mut stream = IKETCP_PREFIX.to_vec();
    stream.extend(ike_frame(&[9, 9]));
    for chunk in [1, 4, 6, 100] {
        let mut d = Deframer::expecting_prefix(0);
        assert_eq!(feed(&mut d, &stream, chunk).unwrap(), vec![('i', vec![9, 9])], "chunk {chunk}");
    }
    let mut d = Deframer::expecting_prefix(0);
    assert_eq!(feed(&mut d, b"IKEUDP\0\x06\0\0\0\0", 3), Err(TcpError::BadPrefix));
}

#[test]
fn esp_frames_are_handed_out_mutable_in_place() {
    let mut d = Deframer::new(0);
    let f = esp_frame(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    d.spare()[..f.len()].copy_from_slice(&f);
    d.filled(f.len());
    match d.next_frame().unwrap() {
        Some(Frame::Esp(p)) => p[0] = 42,
        other => panic!("{other:?}"),
    }
    assert_eq!(d.next_frame().unwrap(), None);
}
