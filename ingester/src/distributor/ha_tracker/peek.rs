//! Reading just enough of an uncompressed remote-write body to judge it as an HA replica's:
//! the first series' labels and the number of samples. A request from a replica that is not
//! the elected one is answered 202 without decoding the rest, so the second replica of every
//! HA pair (half of what an HA setup sends) costs a snappy decompression and a shallow scan
//! instead of a full protobuf decode.
//!
//! Anything that does not parse is left to the full decoder, which reports it properly.

use bytes::Bytes;
use prost::Message;
use strata_shared::proto::prometheus::{LabelBytes, TimeSeriesBytes};

/// `WriteRequest.timeseries` and `TimeSeries.samples`.
const TIMESERIES: u64 = 1;
const SAMPLES: u64 = 2;

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// The fields of one message: (field number, length-delimited payload or None for scalar
/// fields); `None` as an item when the bytes are not a message.
fn fields(buf: &[u8]) -> impl Iterator<Item = Option<(u64, Option<&[u8]>)>> + '_ {
    let mut pos = 0;
    let mut broken = false;
    std::iter::from_fn(move || {
        if broken || pos >= buf.len() {
            return None;
        }
        let item = (|| {
            let key = varint(buf, &mut pos)?;
            let payload = match key & 7 {
                0 => varint(buf, &mut pos).map(|_| None)?,
                1 => {
                    pos = pos.checked_add(8).filter(|p| *p <= buf.len())?;
                    None
                }
                2 => {
                    let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                    let end = pos.checked_add(len).filter(|e| *e <= buf.len())?;
                    let payload = &buf[pos..end];
                    pos = end;
                    Some(payload)
                }
                5 => {
                    pos = pos.checked_add(4).filter(|p| *p <= buf.len())?;
                    None
                }
                _ => return None,
            };
            Some((key >> 3, payload))
        })();
        broken = item.is_none();
        Some(item)
    })
}

/// The labels of the request's first series (None: no series, or not parseable).
pub fn first_series_labels(raw: &[u8]) -> Option<Vec<LabelBytes>> {
    let first = fields(raw).find_map(|f| match f {
        Some((TIMESERIES, Some(series))) => Some(Some(series)),
        Some(_) => None,
        None => Some(None),
    })??;
    TimeSeriesBytes::decode(Bytes::copy_from_slice(first))
        .ok()
        .map(|s| s.labels)
}

/// Samples in the whole request (None: not parseable).
pub fn count_samples(raw: &[u8]) -> Option<usize> {
    let mut samples = 0;
    for field in fields(raw) {
        if let (TIMESERIES, Some(series)) = field? {
            for inner in fields(series) {
                if inner?.0 == SAMPLES {
                    samples += 1;
                }
            }
        }
    }
    Some(samples)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use strata_shared::proto::prometheus::{Label, Sample, TimeSeries, WriteRequest};

    use super::*;

    fn request() -> Vec<u8> {
        let series = |name: &str, samples: usize| TimeSeries {
            labels: vec![
                Label {
                    name: "__name__".into(),
                    value: name.into(),
                },
                Label {
                    name: "cluster".into(),
                    value: "eu".into(),
                },
            ],
            samples: (0..samples)
                .map(|i| Sample {
                    value: i as f64,
                    timestamp: 1_700_000_000_000 + i as i64,
                })
                .collect(),
            exemplars: vec![],
        };
        WriteRequest {
            timeseries: vec![series("up", 3), series("x", 0), series("y", 2)],
            metadata: vec![],
        }
        .encode_to_vec()
    }

    #[test]
    fn finds_the_first_series_labels_and_counts_every_sample() {
        let raw = request();
        let labels = first_series_labels(&raw).unwrap();
        let pairs: Vec<(&[u8], &[u8])> = labels
            .iter()
            .map(|l| (l.name.as_ref(), l.value.as_ref()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                (&b"__name__"[..], &b"up"[..]),
                (&b"cluster"[..], &b"eu"[..])
            ]
        );
        assert_eq!(count_samples(&raw), Some(5));
        assert_eq!(count_samples(&[]), Some(0));
        assert!(first_series_labels(&[]).is_none());
    }

    #[test]
    fn truncated_or_garbage_bodies_are_left_to_the_full_decoder() {
        let raw = request();
        // Cuts inside the first series (about 85 bytes) and inside the last.
        for cut in [1, 5, 20, 60, raw.len() - 1] {
            assert!(count_samples(&raw[..cut]).is_none(), "cut at {cut}");
        }
        assert!(first_series_labels(&[0xff, 0xff]).is_none());
        assert!(count_samples(&[0x0f]).is_none(), "wire type 7");
    }
}
