//! Responses that attack a client's bounds, for the fixture site: decompression bombs of any
//! size, bodies that drip a byte at a time, and oversized response heads.
//!
//! A bomb is a few KiB of precomputed compressed blocks, repeated, that decode to gigabytes
//! of zeros — so a test can serve "10 GiB" without the server compressing (or holding) it.
//! After a sync flush a deflate (or brotli) encoder's output is byte-aligned, and a block
//! that encodes 1 MiB of zeros after 1 MiB of zeros decodes the same way after any number of
//! its own repetitions (its back-references only reach zeros). So a bomb is: the first
//! block, the steady-state block `n − 1` times, and the end of the stream (with the correct
//! checksum and length, so a client that reads to the end sees a valid stream).

use std::convert::Infallible;
use std::io::Write as _;
use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use flate2::{Compress, Compression, Crc, FlushCompress};

use crate::site::SiteState;

const MIB: usize = 1024 * 1024;
/// The bomb's default size: 10 GiB of zeros.
const DEFAULT_MIB: u64 = 10 * 1024;

/// The pieces of one encoding's bomb.
struct Pieces {
    /// The stream header and the first 1 MiB of zeros.
    first: Bytes,
    /// 1 MiB of zeros after zeros.
    repeat: Bytes,
    /// The last block (empty); the trailer depends on the size and is added per request.
    end: Bytes,
}

pub(crate) fn routes() -> Router<std::sync::Arc<SiteState>> {
    Router::new()
        .route("/bomb/{encoding}", get(bomb))
        .route("/drip", get(drip))
        .route("/huge-head", get(huge_head))
}

fn number(params: &std::collections::HashMap<String, String>, name: &str, default: u64) -> u64 {
    params
        .get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `/drip?ms=M&n=N`: headers at once, then one byte of HTML every M ms (default 100), N
/// bytes in all (default 1,000,000): never silent long enough for a read timeout.
async fn drip(Query(params): Query<std::collections::HashMap<String, String>>) -> Response {
    let every = std::time::Duration::from_millis(number(&params, "ms", 100));
    let bytes = number(&params, "n", 1_000_000);
    let stream = futures::stream::unfold(0u64, move |sent| async move {
        if sent >= bytes {
            return None;
        }
        if sent > 0 {
            tokio::time::sleep(every).await;
        }
        Some((Ok::<_, Infallible>(Bytes::from_static(b" ")), sent + 1))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// `/huge-head?n=N&bytes=B`: a 200 whose head carries N headers `x-pad-I` (default 1) of B
/// bytes each (default 1 MiB).
async fn huge_head(Query(params): Query<std::collections::HashMap<String, String>>) -> Response {
    let count = number(&params, "n", 1);
    let bytes = usize::try_from(number(&params, "bytes", MIB as u64)).unwrap_or(MIB);
    let value = match header::HeaderValue::from_str(&"a".repeat(bytes)) {
        Ok(value) => value,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad size").into_response(),
    };
    let mut response = (StatusCode::OK, "small body").into_response();
    for index in 0..count {
        if let Ok(name) = header::HeaderName::from_bytes(format!("x-pad-{index}").as_bytes()) {
            response.headers_mut().insert(name, value.clone());
        }
    }
    response
}

/// `/bomb/ENCODING?mib=N`: N MiB (default 10 GiB) of zeros as `text/html`, compressed with
/// `Content-Encoding` `gzip`, `deflate` (zlib) or `br`, streamed 1 MiB-block by block.
async fn bomb(
    Path(encoding): Path<String>,
    Query(params): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mib = params
        .get("mib")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_MIB)
        .max(1);
    let (pieces, trailer) = match encoding.as_str() {
        "gzip" => (deflate_pieces(), gzip_trailer(mib)),
        "deflate" => (deflate_pieces(), zlib_trailer(mib)),
        "br" => (brotli_pieces(), Bytes::new()),
        _ => {
            return (StatusCode::NOT_FOUND, "unknown encoding").into_response();
        }
    };
    let header = match encoding.as_str() {
        "gzip" => Bytes::from_static(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]),
        // CMF 0x78 (deflate, 32 KiB window), FLG 0x9c (default level, check bits).
        "deflate" => Bytes::from_static(&[0x78, 0x9c]),
        _ => Bytes::new(),
    };
    let blocks = std::iter::once(header)
        .chain(std::iter::once(pieces.first.clone()))
        .chain((1..mib).map(move |_| pieces.repeat.clone()))
        .chain([pieces.end.clone(), trailer]);
    let stream = futures::stream::iter(blocks.map(Ok::<_, Infallible>));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/html".to_owned()),
            (header::CONTENT_ENCODING, encoding),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Raw deflate blocks (no zlib or gzip framing), computed once per process.
fn deflate_pieces() -> &'static Pieces {
    static PIECES: OnceLock<Pieces> = OnceLock::new();
    PIECES.get_or_init(|| {
        let zeros = vec![0u8; MIB];
        let mut compress = Compress::new(Compression::best(), false);
        let mut block = |input: &[u8], flush| {
            let mut out = Vec::with_capacity(64 * 1024);
            let mut consumed = 0;
            loop {
                let before_in = compress.total_in();
                out.reserve(64 * 1024);
                if let Err(err) = compress.compress_vec(&input[consumed..], &mut out, flush) {
                    panic!("testkit: deflate in memory failed: {err}");
                }
                consumed += usize::try_from(compress.total_in() - before_in).unwrap_or(0);
                // Done once all input is in and the encoder left room in the buffer (it
                // stops early only when the buffer is full).
                if consumed == input.len() && out.len() < out.capacity() {
                    break;
                }
            }
            Bytes::from(out)
        };
        let first = block(&zeros, FlushCompress::Sync);
        let repeat = block(&zeros, FlushCompress::Sync);
        let end = block(&[], FlushCompress::Finish);
        Pieces { first, repeat, end }
    })
}

/// CRC-32 and length (mod 2^32), little-endian, of `mib` MiB of zeros.
fn gzip_trailer(mib: u64) -> Bytes {
    let mut one = Crc::new();
    one.update(&vec![0u8; MIB]);
    let mut all = Crc::new();
    for _ in 0..mib {
        all.combine(&one);
    }
    let mut trailer = all.sum().to_le_bytes().to_vec();
    trailer.extend_from_slice(&all.amount().to_le_bytes());
    Bytes::from(trailer)
}

/// Adler-32, big-endian, of `mib` MiB of zeros: `a` stays 1 and `b` adds 1 per byte.
fn zlib_trailer(mib: u64) -> Bytes {
    const MOD: u64 = 65_521;
    let b = (mib % MOD) * (MIB as u64 % MOD) % MOD;
    let adler = u32::try_from((b << 16) | 1).unwrap_or(1);
    Bytes::copy_from_slice(&adler.to_be_bytes())
}

/// Brotli metablocks (brotli has no checksum or length trailer), computed once per process.
fn brotli_pieces() -> &'static Pieces {
    static PIECES: OnceLock<Pieces> = OnceLock::new();
    PIECES.get_or_init(|| {
        let zeros = vec![0u8; MIB];
        let mut writer = brotli::CompressorWriter::new(Vec::new(), 64 * 1024, 5, 22);
        let block = |writer: &mut brotli::CompressorWriter<Vec<u8>>, input: &[u8]| {
            if let Err(err) = writer.write_all(input).and_then(|()| writer.flush()) {
                panic!("testkit: brotli in memory failed: {err}");
            }
            Bytes::from(std::mem::take(writer.get_mut()))
        };
        let first = block(&mut writer, &zeros);
        let repeat = block(&mut writer, &zeros);
        let end = Bytes::from(writer.into_inner());
        Pieces { first, repeat, end }
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;

    fn body(pieces: &Pieces, header: &[u8], mib: u64, trailer: &[u8]) -> Vec<u8> {
        let mut body = header.to_vec();
        body.extend_from_slice(&pieces.first);
        for _ in 1..mib {
            body.extend_from_slice(&pieces.repeat);
        }
        body.extend_from_slice(&pieces.end);
        body.extend_from_slice(trailer);
        body
    }

    fn assert_zeros(mut decoder: impl std::io::Read, mib: u64) {
        let mut out = Vec::new();
        decoder.read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, mib * MIB as u64);
        assert!(out.iter().all(|b| *b == 0));
    }

    #[test]
    fn every_bomb_is_a_valid_stream_of_zeros_of_the_asked_size() {
        let mib = 5;
        let gzip = body(
            deflate_pieces(),
            &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
            mib,
            &gzip_trailer(mib),
        );
        assert_zeros(flate2::read::GzDecoder::new(&gzip[..]), mib);
        let zlib = body(deflate_pieces(), &[0x78, 0x9c], mib, &zlib_trailer(mib));
        assert_zeros(flate2::read::ZlibDecoder::new(&zlib[..]), mib);
        let br = body(brotli_pieces(), &[], mib, &[]);
        assert_zeros(brotli::Decompressor::new(&br[..], 4096), mib);
        assert!(
            deflate_pieces().repeat.len() < 4096,
            "a MiB of zeros compresses to a few KiB"
        );
    }
}
