//! ESP data-plane throughput: seal and open per suite and packet size, buffers reused (no allocation in the
//! timed loops). Throughput is counted in inner-packet bytes.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ikelink::crypto::{Encr, Integ, Zeroizing};
use ikelink::esp::{EspParams, EspSa, Opened};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

const SIZES: [usize; 3] = [64, 512, 1400];
/// Packets sealed up front (untimed) per chunk of the open benchmark.
const CHUNK: usize = 256;

fn suites() -> [(&'static str, Encr, Option<Integ>); 4] {
    [
        ("aes-gcm-128", Encr::AesGcm16 { key_len: 16 }, None),
        ("aes-gcm-256", Encr::AesGcm16 { key_len: 32 }, None),
        ("chacha20-poly1305", Encr::ChaCha20Poly1305, None),
        ("aes-cbc-256+hmac-sha256-128", Encr::AesCbc { key_len: 32 }, Some(Integ::HmacSha256_128)),
    ]
}

fn params(encr: Encr, integ: Option<Integ>) -> EspParams {
    EspParams {
        spi: 0xc0ff_ee01,
        encr,
        integ,
        enc_key: Zeroizing::new(vec![0x11; encr.keymat_len()]),
        integ_key: Zeroizing::new(vec![0x22; integ.map_or(0, |i| i.key_len())]),
        esn: true,
    }
}

fn inner_packet(len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len).map(|i| i as u8).collect();
    p[0] = 0x45;
    p
}

fn bench_seal(c: &mut Criterion) {
    let mut group = c.benchmark_group("esp_seal");
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    for (name, encr, integ) in suites() {
        let mut tx = EspSa::outbound(&params(encr, integ)).unwrap();
        for size in SIZES {
            let inner = inner_packet(size);
            let mut out = vec![0u8; size + tx.max_overhead()];
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(BenchmarkId::new(name, size), &inner, |b, inner| {
                b.iter(|| tx.seal(black_box(inner), &mut out, &mut rng).unwrap())
            });
        }
    }
    group.finish();
}

fn bench_open(c: &mut Criterion) {
    let mut group = c.benchmark_group("esp_open");
    let mut rng = ChaCha20Rng::seed_from_u64(2);
    for (name, encr, integ) in suites() {
        let p = params(encr, integ);
        let mut tx = EspSa::outbound(&p).unwrap();
        let mut rx = EspSa::inbound(&p, 1024).unwrap();
        for size in SIZES {
            let inner = inner_packet(size);
            let stride = size + tx.max_overhead();
            // Each packet can be opened once (anti-replay), so seal a chunk untimed, then time opening it.
            let mut bufs = vec![0u8; stride * CHUNK];
            let mut lens = [0usize; CHUNK];
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_function(BenchmarkId::new(name, size), |b| {
                b.iter_custom(|iters| {
                    let mut elapsed = Duration::ZERO;
                    let mut left = iters as usize;
                    while left > 0 {
                        let n = left.min(CHUNK);
                        for (slot, len) in bufs.chunks_exact_mut(stride).zip(&mut lens).take(n) {
                            *len = tx.seal(&inner, slot, &mut rng).unwrap();
                        }
                        let start = Instant::now();
                        for (slot, len) in bufs.chunks_exact_mut(stride).zip(&lens).take(n) {
                            let opened = rx.open(black_box(&mut slot[..*len])).unwrap();
                            debug_assert!(matches!(opened, Opened::Packet { .. }));
                            black_box(opened);
                        }
                        elapsed += start.elapsed();
                        left -= n;
                    }
                    elapsed
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_seal, bench_open);
criterion_main!(benches);
