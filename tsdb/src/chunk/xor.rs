//! Gorilla/XOR chunk codec, byte-compatible with Prometheus's `chunkenc` `EncXOR`.
//!
//! The byte layout is documented in `docs/format/chunks.md`. In short: a 2-byte big-endian
//! sample count, then a bit stream (most significant bit first) holding the first timestamp as a
//! zigzag varint and the first value raw, the second timestamp as a varint delta, and every later
//! timestamp as a delta-of-delta in one of five bit-width buckets; every value after the first is
//! XORed with its predecessor and stored as its meaningful bits only.
//!
//! Timestamp arithmetic is modulo 2^64, as in Prometheus's Go code (which wraps silently). Because
//! `append` only accepts strictly increasing timestamps, the true delta between two `i64`s always
//! fits a `u64`, and the wrapped delta-of-delta reconstructs it exactly; so *every* strictly
//! increasing sequence of `i64` timestamps round-trips, including jumps from near `i64::MIN` to
//! near `i64::MAX`. The decoder in turn rejects any reconstructed timestamp that is not greater
//! than its predecessor: no encoder writes one, so it can only come from corrupt bytes.

use super::ChunkError;

/// Bytes of the big-endian sample-count header in front of the bit stream.
const HEADER_LEN: usize = 2;
/// The header counts samples in a `u16`.
const MAX_SAMPLES: u16 = u16::MAX;
/// `leading` value meaning "no XOR window yet": the first non-zero XOR must spell out its window.
const NO_WINDOW: u8 = u8::MAX;
/// What [`XorChunk::new`] reserves, as Prometheus does; the buffer doubles from there.
const DEFAULT_CAPACITY: usize = 128;
/// Zeroed bytes kept past the current byte before each append: one sample takes at most 145 bits
/// (19 bytes: '1111' + 64-bit dod, '11' + 11-bit window + 64 bits), and the last 8-byte store
/// may start in its final byte.
const SLACK: usize = 19 + 8;

/// An append-only XOR chunk being built in memory.
///
/// Invariants: `buf` starts with the 2-byte header holding `num`; its first
/// `bit_len.div_ceil(8)` bytes are the encoded chunk ([`bytes`](Self::bytes), valid after every
/// append) and every bit after `bit_len` is zero. The zero tail is slack that lets the bit
/// writer OR whole 8-byte words into place instead of growing the vector bit by bit. The other
/// fields are the appender state the next sample is encoded against; the decoder rebuilds the
/// same state as it reads.
#[derive(Debug, Clone)]
pub struct XorChunk {
    buf: Vec<u8>,
    /// Bits written, header included.
    bit_len: usize,
    num: u16,
    first_t: i64,
    /// Timestamp of the last sample (meaningless while `num == 0`).
    t: i64,
    /// Last timestamp delta, modulo 2^64 (meaningful once `num >= 2`).
    t_delta: u64,
    /// Bits of the last value: values are handled as bits only, so NaN payloads survive.
    v_bits: u64,
    /// XOR window of the last value written with an explicit window ('11' case).
    leading: u8,
    trailing: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        Self::new()
    }
}

impl XorChunk {
    /// An empty chunk with a 128-byte buffer, as Prometheus starts its chunks.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY)
    }

    /// An empty chunk whose buffer starts with `bytes` bytes of capacity. The encoder keeps 27
    /// zero bytes of slack past the data, so to never grow, ask for the expected size plus 27.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes.max(HEADER_LEN));
        buf.extend_from_slice(&[0, 0]);
        XorChunk {
            buf,
            bit_len: HEADER_LEN * 8,
            num: 0,
            first_t: 0,
            t: 0,
            t_delta: 0,
            v_bits: 0,
            leading: NO_WINDOW,
            trailing: 0,
        }
    }

    /// Appends a sample. `t` must be greater than the last appended timestamp.
    ///
    /// Fails without changing the chunk if `t` is not after the last timestamp
    /// ([`ChunkError::OutOfOrder`]) or the chunk already holds 65 535 samples
    /// ([`ChunkError::Full`]).
    #[inline]
    pub fn append(&mut self, t: i64, v: f64) -> Result<(), ChunkError> {
        let num = self.num;
        if num > 0 && t <= self.t {
            return Err(ChunkError::OutOfOrder { t, last: self.t });
        }
        if num == MAX_SAMPLES {
            return Err(ChunkError::Full {
                max: MAX_SAMPLES as usize,
            });
        }
        if self.buf.len() < self.bit_len / 8 + SLACK {
            self.grow();
        }
        let v_bits = v.to_bits();
        let mut w = BitWriter {
            buf: &mut self.buf,
            pos: self.bit_len,
        };
        match num {
            0 => {
                // Byte-aligned: the stream starts right after the header.
                write_uvarint(&mut w, zigzag(t));
                w.write_long(v_bits, 64);
                self.first_t = t;
            }
            1 => {
                // Still byte-aligned (varint bytes + 64 value bits). Wraps only where the true
                // delta exceeds i64::MAX; as a u64 it is still exact.
                let delta = t.wrapping_sub(self.t) as u64;
                write_uvarint(&mut w, delta);
                xor_write(
                    &mut w,
                    v_bits ^ self.v_bits,
                    &mut self.leading,
                    &mut self.trailing,
                );
                self.t_delta = delta;
            }
            _ => {
                let delta = t.wrapping_sub(self.t) as u64;
                let dod = delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    w.skip_zeros(1);
                } else {
                    write_dod(&mut w, dod);
                }
                xor_write(
                    &mut w,
                    v_bits ^ self.v_bits,
                    &mut self.leading,
                    &mut self.trailing,
                );
                self.t_delta = delta;
            }
        }
        self.bit_len = w.pos;
        self.num = num + 1;
        self.buf[..HEADER_LEN].copy_from_slice(&self.num.to_be_bytes());
        self.t = t;
        self.v_bits = v_bits;
        Ok(())
    }

    /// Restores the slack: zero-fills up to the capacity, growing it (amortized doubling) only if
    /// even that is too short.
    #[cold]
    fn grow(&mut self) {
        let need = self.bit_len / 8 + SLACK;
        self.buf.reserve(need.saturating_sub(self.buf.len()));
        self.buf.resize(self.buf.capacity(), 0);
    }

    /// Number of samples appended so far.
    #[inline]
    pub fn num_samples(&self) -> usize {
        self.num as usize
    }

    /// The complete encoded chunk, header included; valid after every append.
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.bit_len.div_ceil(8)]
    }

    /// Timestamp of the first sample, `None` while empty.
    pub fn first_time(&self) -> Option<i64> {
        (self.num > 0).then_some(self.first_t)
    }

    /// Timestamp of the last sample, `None` while empty.
    pub fn last_time(&self) -> Option<i64> {
        (self.num > 0).then_some(self.t)
    }

    /// Value of the last sample, bit-exact (NaN payloads included), `None` while empty.
    pub fn last_value(&self) -> Option<f64> {
        (self.num > 0).then(|| f64::from_bits(self.v_bits))
    }

    /// A decoder over the chunk as it is now.
    pub fn iter(&self) -> XorIter<'_> {
        XorIter::new(self.bytes())
    }

    /// The encoded chunk, giving up the buffer without copying (its spare capacity included:
    /// call `shrink_to_fit` on the result before keeping it long-term).
    pub fn into_bytes(mut self) -> Vec<u8> {
        self.buf.truncate(self.bit_len.div_ceil(8));
        self.buf
    }

    /// Heap memory owned by the chunk (buffer capacity), for the head's memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.buf.capacity()
    }
}

/// Number of samples declared in a chunk's header, or an error if shorter than 2 bytes.
pub fn num_samples(data: &[u8]) -> Result<usize, ChunkError> {
    match data.first_chunk::<HEADER_LEN>() {
        Some(h) => Ok(u16::from_be_bytes(*h) as usize),
        None => Err(ChunkError::MissingHeader { len: data.len() }),
    }
}

/// Go's `binary.PutVarint` mapping of signed to unsigned, so small magnitudes stay short.
#[inline]
fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

#[inline]
fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Whether `dod` fits the `nbits` bucket. Prometheus's range is deliberately asymmetric,
/// `-(2^(n-1) - 1) ..= 2^(n-1)`, matching its decoder, which reads the bit pattern `10…0` as
/// positive; we must pick the same bucket to write the same bytes.
#[inline]
fn fits(dod: i64, nbits: u32) -> bool {
    let half = 1i64 << (nbits - 1);
    -(half - 1) <= dod && dod <= half
}

/// Reads the low `N` bits of `bits` as a delta-of-delta of the `N`-bit bucket: only patterns above
/// `10…0` are negative, undoing the asymmetric range of [`fits`].
#[inline]
fn sign_extend<const N: u32>(bits: u64) -> i64 {
    let b = bits & ((1 << N) - 1);
    if b > 1 << (N - 1) {
        b as i64 - (1i64 << N)
    } else {
        b as i64
    }
}

#[inline]
fn write_dod(w: &mut BitWriter<'_>, dod: i64) {
    // Prefix and payload go out in one write; the payload is the low bits of the two's
    // complement, which the decoder sign-extends.
    let d = dod as u64;
    if fits(dod, 14) {
        w.write((0b10 << 14) | (d & ((1 << 14) - 1)), 16);
    } else if fits(dod, 17) {
        w.write((0b110 << 17) | (d & ((1 << 17) - 1)), 20);
    } else if fits(dod, 20) {
        w.write((0b1110 << 20) | (d & ((1 << 20) - 1)), 24);
    } else {
        w.write(0b1111, 4);
        w.write_long(d, 64);
    }
}

/// Writes a non-first value given `xor` = its bits XOR the previous value's bits.
#[inline]
fn xor_write(w: &mut BitWriter<'_>, xor: u64, leading: &mut u8, trailing: &mut u8) {
    if xor == 0 {
        w.skip_zeros(1);
        return;
    }
    // The window is stored in 5 bits, so more than 31 leading zeros are written as 31 (the extra
    // zeros then travel as significant bits).
    let lz = (xor.leading_zeros() as u8).min(31);
    let tz = xor.trailing_zeros() as u8;
    if *leading != NO_WINDOW && lz >= *leading && tz >= *trailing {
        // '10': the previous window still covers every set bit.
        let sig = 64 - u32::from(*leading) - u32::from(*trailing);
        let payload = xor >> *trailing;
        if sig <= 55 {
            w.write((0b10 << sig) | payload, sig + 2);
        } else {
            w.write(0b10, 2);
            w.write_long(payload, sig);
        }
        return;
    }
    *leading = lz;
    *trailing = tz;
    // sig is 1..=64 because xor != 0; 64 does not fit 6 bits and is written as 0, which can never
    // mean "0 significant bits" since that case is the '0' control bit above.
    let sig = 64 - u32::from(lz) - u32::from(tz);
    let head = (0b11 << 11) | (u64::from(lz) << 6) | (u64::from(sig) & 0x3f);
    if sig <= 44 {
        w.write((head << sig) | (xor >> tz), 13 + sig);
    } else {
        w.write(head, 13);
        w.write_long(xor >> tz, sig);
    }
}

#[inline]
fn write_uvarint(w: &mut BitWriter<'_>, mut x: u64) {
    while x >= 0x80 {
        w.write((x as u8 | 0x80) as u64, 8);
        x >>= 7;
    }
    w.write(x, 8);
}

/// ORs bits MSB-first into a zeroed region of a chunk buffer, a whole 8-byte word per write.
///
/// Needs the [`XorChunk`] invariants: every bit from `pos` on is zero, and at least [`SLACK`]
/// bytes exist past `pos / 8` at the start of an append.
struct BitWriter<'a> {
    buf: &'a mut [u8],
    /// Bit position of the next write from the start of `buf`.
    pos: usize,
}

impl BitWriter<'_> {
    /// Writes the low `n` (1..=57) bits of `v`, whose higher bits must be zero. With at most 7
    /// bits already used in the first byte, they fit one unaligned 8-byte word.
    #[inline]
    fn write(&mut self, v: u64, n: u32) {
        debug_assert!((1..=57).contains(&n) && v >> n == 0);
        let i = self.pos / 8;
        let used = (self.pos % 8) as u32;
        let dst: &mut [u8; 8] = (&mut self.buf[i..i + 8])
            .try_into()
            .expect("BUG: an 8-byte slice converts to [u8; 8]");
        let word = u64::from_be_bytes(*dst) | (v << (64 - used - n));
        *dst = word.to_be_bytes();
        self.pos += n as usize;
    }

    /// Writes the low `n` (1..=64) bits of `v`.
    #[inline]
    fn write_long(&mut self, v: u64, n: u32) {
        if n <= 57 {
            self.write(v, n);
        } else {
            self.write(v >> 32, n - 32);
            self.write(v & 0xffff_ffff, 32);
        }
    }

    /// Zero bits are already in place: just move past them.
    #[inline]
    fn skip_zeros(&mut self, n: u32) {
        self.pos += n as usize;
    }
}

/// The ways a stream can decode to something no encoder writes. A byte, so the hot path returns
/// it in registers; [`XorIter::next`] turns it into a [`ChunkError`]. Running out of bytes is not
/// among them: the reader pads with zeros and `next` checks the position once per sample.
#[derive(Clone, Copy)]
enum Corruption {
    LongVarint,
    TimeNotIncreasing,
    ReuseWithoutWindow,
    WideWindow,
}

impl Corruption {
    fn detail(self) -> &'static str {
        match self {
            Corruption::LongVarint => "varint longer than 64 bits",
            Corruption::TimeNotIncreasing => "timestamp does not increase",
            Corruption::ReuseWithoutWindow => "value reuses an XOR window before any was set",
            Corruption::WideWindow => "XOR window wider than 64 bits",
        }
    }
}

/// Reads bits MSB-first from a byte slice at a bit position, one unaligned 8-byte load per read.
///
/// Reads past the end see zero bits instead of failing, so the decoder needs no end check per
/// field: [`XorIter::next`] checks [`overrun`](Self::overrun) once per sample and reports a
/// truncation if the sample used bits the data does not have.
#[derive(Debug, Clone)]
struct BitReader<'a> {
    data: &'a [u8],
    /// Bit position of the next read from the start of `data`. Grows by at most 145 bits past
    /// the end before the iterator notices and stops.
    pos: usize,
    /// `data.len()` in bits, so the per-sample end check is one comparison.
    end: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8], pos: usize) -> Self {
        BitReader {
            data,
            pos,
            end: data.len().saturating_mul(8),
        }
    }

    /// The 64 bits from `pos` on, zero-padded past the end. At least 57 are meaningful: the
    /// first `pos % 8` bits of the loaded word are shifted out.
    #[inline]
    fn load(&self) -> u64 {
        let i = self.pos / 8;
        let word = match self.data.get(i..).and_then(|rest| rest.first_chunk::<8>()) {
            Some(w) => u64::from_be_bytes(*w),
            None => self.load_tail(i),
        };
        word << (self.pos % 8)
    }

    /// `load` for the last 7 bytes: copies what is left into a zeroed word.
    #[cold]
    fn load_tail(&self, i: usize) -> u64 {
        let mut w = [0u8; 8];
        if let Some(rest) = self.data.get(i..) {
            let n = rest.len().min(8);
            w[..n].copy_from_slice(&rest[..n]);
        }
        u64::from_be_bytes(w)
    }

    /// Whether reads went past the end of the data.
    #[inline]
    fn overrun(&self) -> bool {
        self.pos > self.end
    }

    #[inline]
    fn skip(&mut self, n: u32) {
        self.pos += n as usize;
    }

    /// Reads `n` bits, 1..=57.
    #[inline]
    fn read(&mut self, n: u32) -> u64 {
        debug_assert!((1..=57).contains(&n));
        let v = self.load() >> (64 - n);
        self.skip(n);
        v
    }

    /// Reads `n` bits, 1..=64.
    #[inline]
    fn read_long(&mut self, n: u32) -> u64 {
        if n <= 57 {
            self.read(n)
        } else {
            let hi = self.read(n - 32);
            (hi << 32) | self.read(32)
        }
    }

    /// Go's `binary.ReadUvarint`, which also rejects an overflowing tenth byte. Past the end it
    /// reads a zero byte, which ends the varint; the caller's overrun check reports that.
    fn read_uvarint(&mut self) -> Result<u64, Corruption> {
        let mut x = 0u64;
        for i in 0..10 {
            let b = self.read(8);
            if b < 0x80 {
                if i == 9 && b > 1 {
                    break;
                }
                return Ok(x | (b << (7 * i)));
            }
            x |= (b & 0x7f) << (7 * i);
        }
        Err(Corruption::LongVarint)
    }
}

/// Pull-based, allocation-free, resettable decoder.
///
/// Yields `(timestamp ms, value)` in order and stops after the header's sample count. If the bytes
/// end early or decode to something no encoder writes, iteration stops and [`err`](Self::err)
/// says why; the samples yielded before that were decoded correctly from the bytes (though if the
/// bytes were corrupted rather than cut short, they may not be what was written). The iterator is
/// fused: after the first `None` it only returns `None`.
#[derive(Debug, Clone)]
pub struct XorIter<'a> {
    r: BitReader<'a>,
    /// Sample count from the header; lowered to `read` when decoding fails, which ends iteration.
    declared: u16,
    /// Samples decoded so far; the last one is the current sample of `seek`.
    read: u16,
    t: i64,
    t_delta: u64,
    v_bits: u64,
    /// Width of the current XOR window; 0 until the first '11' value sets one.
    sig: u8,
    trailing: u8,
    /// Set once `next` has returned `None`.
    done: bool,
    err: Option<ChunkError>,
}

impl<'a> XorIter<'a> {
    /// A decoder over one complete chunk (header included).
    pub fn new(data: &'a [u8]) -> Self {
        let mut it = XorIter {
            r: BitReader::new(data, 0),
            declared: 0,
            read: 0,
            t: 0,
            t_delta: 0,
            v_bits: 0,
            sig: 0,
            trailing: 0,
            done: false,
            err: None,
        };
        it.reset(data);
        it
    }

    /// Starts over on another chunk, reusing this iterator.
    pub fn reset(&mut self, data: &'a [u8]) {
        self.r = BitReader::new(data, HEADER_LEN * 8);
        self.read = 0;
        self.t = 0;
        self.t_delta = 0;
        self.v_bits = 0;
        self.sig = 0;
        self.trailing = 0;
        match num_samples(data) {
            Ok(n) => {
                self.declared = n as u16;
                self.done = false;
                self.err = None;
            }
            Err(e) => {
                self.declared = 0;
                self.done = true;
                self.err = Some(e);
            }
        }
    }

    /// Why iteration stopped early, if it did: truncated or corrupt bytes.
    pub fn err(&self) -> Option<&ChunkError> {
        self.err.as_ref()
    }

    /// Advances to the first sample with timestamp `>= t` and returns it; `None` if there is none
    /// (or the bytes are bad, see [`err`](Self::err)).
    ///
    /// As in Prometheus's `Seek`, the search starts at the current sample, the one the last
    /// `next` or `seek` returned: if its timestamp is already `>= t` it is returned again and the
    /// iterator does not move. So seeking never goes backwards, and repeated seeks with growing
    /// `t` are cheap. `next` after `seek` yields the sample after the one `seek` returned.
    pub fn seek(&mut self, t: i64) -> Option<(i64, f64)> {
        if self.done {
            return None;
        }
        if self.read > 0 && self.t >= t {
            return Some((self.t, f64::from_bits(self.v_bits)));
        }
        self.find(|&(ts, _)| ts >= t)
    }

    /// Samples 0 and 1, whose timestamps are varints; out of line to keep `next` small.
    #[inline(never)]
    fn decode_start(&mut self) -> Result<(), Corruption> {
        if self.read == 0 {
            self.t = unzigzag(self.r.read_uvarint()?);
            self.v_bits = self.r.read_long(64);
            Ok(())
        } else {
            let delta = self.r.read_uvarint()?;
            self.advance_time(delta)?;
            self.read_value(self.r.load())
        }
    }

    /// Every sample after the second: the hot path. One load covers the timestamp's short forms
    /// (at most 24 bits) and the value's control bits and window header (at most 13); a second
    /// one fetches the value's payload.
    #[inline]
    fn decode_steady(&mut self) -> Result<(), Corruption> {
        let w = self.r.load();
        // Prefix codes compared on the whole left-aligned word: '0' < '10' < '110' < '1110'.
        let (dod, used) = if w < 1 << 63 {
            (0, 1)
        } else if w < 0b11 << 62 {
            (sign_extend::<14>(w >> 48), 16)
        } else if w < 0b111 << 61 {
            (sign_extend::<17>(w >> 44), 20)
        } else if w < 0b1111 << 60 {
            (sign_extend::<20>(w >> 40), 24)
        } else {
            return self.decode_long_dod();
        };
        self.r.skip(used);
        self.advance_time(self.t_delta.wrapping_add(dod as u64))?;
        self.read_value(w << used)
    }

    /// A sample whose delta-of-delta took the '1111' + 64-bit form.
    #[cold]
    fn decode_long_dod(&mut self) -> Result<(), Corruption> {
        self.r.skip(4);
        let dod = self.r.read_long(64);
        self.advance_time(self.t_delta.wrapping_add(dod))?;
        self.read_value(self.r.load())
    }

    #[inline]
    fn advance_time(&mut self, delta: u64) -> Result<(), Corruption> {
        let t = self.t.wrapping_add(delta as i64);
        // Also catches an i64 overflow: appended timestamps strictly increase, so wrapping past
        // i64::MAX cannot happen in a chunk we wrote.
        if t <= self.t {
            return Err(Corruption::TimeNotIncreasing);
        }
        self.t = t;
        self.t_delta = delta;
        Ok(())
    }

    /// Decodes a value given `v`, the reader's next bits (at least 13 meaningful). Fields are
    /// skipped before they are checked, so that `fail` can tell a field cut off by the end of
    /// the data from a corrupt one.
    #[inline]
    fn read_value(&mut self, v: u64) -> Result<(), Corruption> {
        if v < 1 << 63 {
            self.r.skip(1);
            return Ok(());
        }
        if v < 0b11 << 62 {
            self.r.skip(2);
            if self.sig == 0 {
                return Err(Corruption::ReuseWithoutWindow);
            }
        } else {
            self.r.skip(13);
            self.set_window(v >> 51)?;
        }
        // sig is 1..=64 and trailing = 64 - leading - sig <= 63: the shift cannot overflow.
        self.v_bits ^= self.r.read_long(u32::from(self.sig)) << self.trailing;
        Ok(())
    }

    /// Takes a '11' value's window header: 5 bits of leading zeros, 6 bits of significant bits
    /// (0 meaning 64), in the low 11 bits of `head`.
    #[inline]
    fn set_window(&mut self, head: u64) -> Result<(), Corruption> {
        let leading = ((head >> 6) & 0x1f) as u32;
        let sig = match (head & 0x3f) as u32 {
            0 => 64,
            s => s,
        };
        if leading + sig > 64 {
            return Err(Corruption::WideWindow);
        }
        self.sig = sig as u8;
        self.trailing = (64 - leading - sig) as u8;
        Ok(())
    }

    /// Ends iteration with an error. A sample that ran past the end of the data is a truncation,
    /// whatever the zero padding it read past the end decoded to.
    #[cold]
    fn fail(&mut self, stop: Option<Corruption>) {
        self.err = Some(match stop {
            Some(c) if !self.r.overrun() => ChunkError::Corrupt {
                offset: self.r.pos / 8,
                detail: c.detail(),
            },
            _ => ChunkError::Truncated {
                len: self.r.data.len(),
                sample: self.read as usize,
                declared: self.declared as usize,
            },
        });
        self.declared = self.read;
        self.done = true;
    }
}

impl Iterator for XorIter<'_> {
    type Item = (i64, f64);

    #[inline]
    fn next(&mut self) -> Option<(i64, f64)> {
        if self.read >= self.declared {
            self.done = true;
            return None;
        }
        let res = if self.read >= 2 {
            self.decode_steady()
        } else {
            self.decode_start()
        };
        match res {
            Ok(()) if !self.r.overrun() => {
                self.read += 1;
                Some((self.t, f64::from_bits(self.v_bits)))
            }
            Ok(()) => {
                self.fail(None);
                None
            }
            Err(stop) => {
                self.fail(Some(stop));
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some((self.declared - self.read) as usize))
    }
}

impl std::iter::FusedIterator for XorIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Prometheus's staleness marker: a signalling-looking NaN whose payload must survive.
    const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

    fn encode(samples: &[(i64, f64)]) -> XorChunk {
        let mut c = XorChunk::new();
        for &(t, v) in samples {
            c.append(t, v).expect("append of in-order sample");
        }
        c
    }

    /// Samples as `(t, value bits)`, so NaNs compare by payload and -0.0 differs from 0.0.
    fn as_bits(samples: &[(i64, f64)]) -> Vec<(i64, u64)> {
        samples.iter().map(|&(t, v)| (t, v.to_bits())).collect()
    }

    fn decode(data: &[u8]) -> (Vec<(i64, u64)>, Option<ChunkError>) {
        let mut it = XorIter::new(data);
        let out = it.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
        (out, it.err().cloned())
    }

    /// Encodes, decodes and checks every accessor; returns the chunk for further checks.
    fn assert_roundtrip(samples: &[(i64, f64)]) -> XorChunk {
        let c = encode(samples);
        let (got, err) = decode(c.bytes());
        assert_eq!(err, None);
        assert_eq!(got, as_bits(samples));
        assert_eq!(c.num_samples(), samples.len());
        assert_eq!(num_samples(c.bytes()), Ok(samples.len()));
        assert_eq!(c.first_time(), samples.first().map(|s| s.0));
        assert_eq!(c.last_time(), samples.last().map(|s| s.0));
        assert_eq!(
            c.last_value().map(f64::to_bits),
            samples.last().map(|s| s.1.to_bits())
        );
        c
    }

    fn specials() -> Vec<f64> {
        vec![
            f64::from_bits(STALE_NAN),
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7ff0_0000_0000_0001), // signalling NaN, smallest payload
            f64::from_bits(0xfff8_dead_beef_0001), // negative quiet NaN with payload
            f64::from_bits(0x7fff_ffff_ffff_ffff),
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            f64::MIN,
            f64::MAX,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            f64::from_bits(1),                     // smallest subnormal
            f64::from_bits(0x000f_ffff_ffff_ffff), // largest subnormal
            f64::from_bits(0x8000_0000_0000_0001),
            f64::EPSILON,
            1.0,
            -1.0,
            1e308,
            1e-308,
        ]
    }

    #[test]
    fn empty_chunk_is_just_a_zero_header() {
        let c = XorChunk::new();
        assert_eq!(c.bytes(), &[0, 0]);
        assert_eq!(c.num_samples(), 0);
        assert_eq!(c.first_time(), None);
        assert_eq!(c.last_time(), None);
        assert_eq!(c.last_value(), None);
        let mut it = c.iter();
        assert_eq!(it.next(), None);
        assert_eq!(it.err(), None);
        assert_eq!(XorChunk::default().bytes(), &[0, 0]);
    }

    #[test]
    fn one_and_two_samples() {
        assert_roundtrip(&[(1_700_000_000_000, 42.5)]);
        assert_roundtrip(&[(-5, f64::from_bits(STALE_NAN)), (7, -0.0)]);
    }

    /// Hand-assembled from the format description, so a change that keeps our decoder and
    /// encoder in agreement but breaks Prometheus compatibility still fails.
    #[test]
    fn golden_bytes_constant_series() {
        let c = encode(&[(1000, 1.0), (2000, 1.0), (3000, 1.0)]);
        let want = [
            0x00, 0x03, // 3 samples
            0xD0, 0x0F, // varint(1000): zigzag 2000
            0x3F, 0xF0, 0, 0, 0, 0, 0, 0, // 1.0 raw
            0xE8, 0x07, // uvarint delta 1000
            0x00, // '0' same value, '0' dod 0, '0' same value, 5 bits padding
        ];
        assert_eq!(c.bytes(), &want);
    }

    #[test]
    fn golden_bytes_xor_windows_and_dod() {
        let c = encode(&[(0, 1.0), (15_000, 2.0), (30_001, 3.0)]);
        let want = [
            0x00, 0x03, // 3 samples
            0x00, // varint(0)
            0x3F, 0xF0, 0, 0, 0, 0, 0, 0, // 1.0 raw
            0x98, 0x75, // uvarint delta 15000
            // 2.0^1.0 = 0x7ff0..: '11' lead=00001 sig=001011 bits=11111111111
            // dod 1: '10' 00000000000001
            // 3.0^2.0 = 0x0008..: lead 12 >= 1 but trail 51 < 52 -> '11' 01100 000001 '1'
            // 2 bits of padding
            0xC2, 0x5F, 0xFF, 0x80, 0x01, 0xD8, 0x0C,
        ];
        assert_eq!(c.bytes(), &want);
        assert_roundtrip(&[(0, 1.0), (15_000, 2.0), (30_001, 3.0)]);
    }

    #[test]
    fn special_floats_roundtrip_bit_exact_in_every_order() {
        let sp = specials();
        // Every ordered pair, so each special is XORed against each other one, plus runs of
        // repeats of each so the '0' and window-reuse paths see them too.
        let mut samples = Vec::new();
        let mut t = 0;
        for a in &sp {
            for b in &sp {
                for v in [*a, *b, *b, *a] {
                    t += 15_000;
                    samples.push((t, v));
                }
            }
        }
        assert_roundtrip(&samples);
    }

    #[test]
    fn out_of_order_append_is_rejected_and_leaves_chunk_unchanged() {
        let mut c = encode(&[(100, 1.0), (200, 2.0), (300, 3.0)]);
        let before = c.bytes().to_vec();
        assert_eq!(
            c.append(300, 4.0),
            Err(ChunkError::OutOfOrder { t: 300, last: 300 })
        );
        assert_eq!(
            c.append(299, 4.0),
            Err(ChunkError::OutOfOrder { t: 299, last: 300 })
        );
        assert_eq!(
            c.append(i64::MIN, 4.0),
            Err(ChunkError::OutOfOrder {
                t: i64::MIN,
                last: 300
            })
        );
        assert_eq!(c.bytes(), &before[..]);
        assert_eq!(c.num_samples(), 3);
        // Still appendable afterwards, and the state was not disturbed.
        c.append(400, 4.0).unwrap();
        assert_eq!(
            decode(c.bytes()).0,
            as_bits(&[(100, 1.0), (200, 2.0), (300, 3.0), (400, 4.0)])
        );

        let mut one = encode(&[(5, 1.0)]);
        assert!(one.append(5, 1.0).is_err());
    }

    #[test]
    fn i64_extremes_roundtrip() {
        let cases: &[&[i64]] = &[
            &[i64::MIN],
            &[i64::MAX],
            &[i64::MIN, i64::MAX], // delta 2^64 - 1
            &[i64::MIN, -1, i64::MAX],
            &[i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX], // dod = 2^64 - 3, wraps
            &[i64::MIN, 0, i64::MAX],
            &[i64::MAX - 2, i64::MAX - 1, i64::MAX],
            &[-3, -2, -1, 0, 1],
            &[i64::MIN, i64::MIN + 1, i64::MIN + 2, 0, 1, 2, i64::MAX],
        ];
        for ts in cases {
            let samples: Vec<_> = ts.iter().map(|&t| (t, t as f64)).collect();
            assert_roundtrip(&samples);
        }
    }

    #[test]
    fn dod_bucket_boundaries_match_prometheus() {
        // (dod, bits used for the timestamp) per Prometheus's asymmetric bitRange.
        let cases = [
            (1, 16),
            (8192, 16),
            (-8191, 16),
            (8193, 20),
            (-8192, 20),
            (65536, 20),
            (-65535, 20),
            (65537, 24),
            (-65536, 24),
            (524_288, 24),
            (-524_287, 24),
            (524_289, 68),
            (-524_288, 68),
        ];
        for (dod, ts_bits) in cases {
            assert!(fits(dod, 14) == (ts_bits == 16), "dod {dod}");
            let base = 1_000_000;
            let samples = [(0, 1.0), (base, 1.0), (2 * base + dod, 1.0)];
            let c = assert_roundtrip(&samples);
            // 2 header + varint(0) + 8 value + 3-byte uvarint(10^6) + '0', then ts bits + '0'.
            let bits = 8 * (2 + 1 + 8 + 3) + 1 + ts_bits + 1;
            assert_eq!(c.bytes().len(), (bits as usize).div_ceil(8), "dod {dod}");
        }
    }

    #[test]
    fn full_chunk_rejects_more_samples() {
        let mut c = XorChunk::new();
        for i in 0..MAX_SAMPLES as i64 {
            c.append(i * 15_000, (i % 7) as f64).unwrap();
        }
        assert_eq!(
            c.append(i64::MAX, 0.0),
            Err(ChunkError::Full { max: 65_535 })
        );
        assert_eq!(num_samples(c.bytes()), Ok(65_535));
        let mut n = 0;
        let mut it = c.iter();
        for (i, (t, v)) in it.by_ref().enumerate() {
            assert_eq!((t, v), (i as i64 * 15_000, (i % 7) as f64));
            n += 1;
        }
        assert_eq!((n, it.err()), (65_535, None));
    }

    #[test]
    fn bytes_are_a_valid_chunk_after_every_append() {
        let samples = node_like(Kind::CounterFloat, 200, 7);
        let mut c = XorChunk::new();
        for (i, &(t, v)) in samples.iter().enumerate() {
            c.append(t, v).unwrap();
            let (got, err) = decode(c.bytes());
            assert_eq!(err, None);
            assert_eq!(got, as_bits(&samples[..=i]));
        }
        assert_eq!(c.clone().into_bytes(), c.bytes());
        assert!(c.heap_bytes() >= c.bytes().len());
        assert!(XorChunk::with_capacity(1000).heap_bytes() >= 1000);
    }

    #[test]
    fn every_truncation_yields_a_prefix_and_an_error() {
        let samples = node_like(Kind::Gauge, 120, 3);
        let c = encode(&samples);
        let full = c.bytes();
        let want = as_bits(&samples);
        for cut in 0..full.len() {
            let (got, err) = decode(&full[..cut]);
            if cut < HEADER_LEN {
                assert_eq!(err, Some(ChunkError::MissingHeader { len: cut }));
                assert!(got.is_empty());
                assert!(num_samples(&full[..cut]).is_err());
                continue;
            }
            // The last byte always holds data bits, so any cut loses at least one sample.
            assert!(got.len() < want.len(), "cut {cut}");
            assert_eq!(got[..], want[..got.len()], "cut {cut}");
            assert_eq!(
                err,
                Some(ChunkError::Truncated {
                    len: cut,
                    sample: got.len(),
                    declared: 120
                }),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn header_count_bounds_iteration() {
        let samples = node_like(Kind::CounterFloat, 50, 1);
        let mut bytes = encode(&samples).into_bytes();
        // Fewer declared: stops early, no error (this is how a reader takes a prefix).
        bytes[..2].copy_from_slice(&20u16.to_be_bytes());
        let (got, err) = decode(&bytes);
        assert_eq!((got, err), (as_bits(&samples[..20]), None));
        // More declared than present: the missing ones are a truncation. The format cannot
        // tell zero padding from data, so up to 3 phantom samples ('0' '0' = same interval, same
        // value) may decode from the padding bits first; only the header (covered by the CRC
        // wherever chunks are stored) says where the samples end.
        bytes[..2].copy_from_slice(&60u16.to_be_bytes());
        let (got, err) = decode(&bytes);
        assert_eq!(got[..50], as_bits(&samples)[..]);
        assert!(got.len() <= 53);
        for w in got[49..].windows(2) {
            assert_eq!(w[1].1, w[0].1, "phantom samples repeat the last value");
        }
        assert_eq!(
            err,
            Some(ChunkError::Truncated {
                len: bytes.len(),
                sample: got.len(),
                declared: 60
            })
        );
    }

    #[test]
    fn corrupt_streams_are_reported_not_panicked_on() {
        let first = |t: i64| {
            // Header for 2 samples, first sample (t, 0.0), byte-aligned.
            let mut b = vec![0, 2];
            let mut z = zigzag(t);
            while z >= 0x80 {
                b.push(z as u8 | 0x80);
                z >>= 7;
            }
            b.push(z as u8);
            b.extend_from_slice(&[0; 8]);
            b
        };
        let corrupt = |bytes: &[u8], want: &str| {
            let (got, err) = decode(bytes);
            match err {
                Some(ChunkError::Corrupt { detail, offset }) => {
                    assert_eq!(detail, want);
                    assert!(offset <= bytes.len());
                }
                other => panic!("expected Corrupt({want}), got {other:?}"),
            }
            got.len()
        };

        // Value reuses a window before one was set: delta 1, then '10'.
        let mut b = first(0);
        b.extend_from_slice(&[0x01, 0b1000_0000]);
        assert_eq!(
            corrupt(&b, "value reuses an XOR window before any was set"),
            1
        );

        // '11' with leading 31 and 40 significant bits: 71 > 64.
        let mut b = first(0);
        b.push(0x01);
        // 11 11111 101000 then zeros
        b.extend_from_slice(&[0b1111_1111, 0b0100_0000, 0, 0, 0, 0, 0, 0]);
        assert_eq!(corrupt(&b, "XOR window wider than 64 bits"), 1);

        // Second timestamp equal to the first (delta 0).
        let mut b = first(10);
        b.extend_from_slice(&[0x00, 0x00]);
        assert_eq!(corrupt(&b, "timestamp does not increase"), 1);

        // Second timestamp overflowing i64::MAX.
        let mut b = first(i64::MAX);
        b.extend_from_slice(&[0x01, 0x00]);
        assert_eq!(corrupt(&b, "timestamp does not increase"), 1);

        // Varints longer than 64 bits, in the first timestamp and in the first delta.
        let mut b = vec![0, 1];
        b.extend_from_slice(&[0xff; 12]);
        assert_eq!(corrupt(&b, "varint longer than 64 bits"), 0);
        let mut b = vec![0, 1];
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        assert_eq!(corrupt(&b, "varint longer than 64 bits"), 0);
        let mut b = first(0);
        b.extend_from_slice(&[0x80; 10]);
        b.push(0x00);
        assert_eq!(corrupt(&b, "varint longer than 64 bits"), 1);
    }

    #[test]
    fn seek() {
        let samples: Vec<_> = (0..100).map(|i| (i * 10, i as f64)).collect();
        let c = encode(&samples);

        let mut it = c.iter();
        assert_eq!(it.seek(i64::MIN), Some((0, 0.0)));
        assert_eq!(it.seek(-5), Some((0, 0.0)), "current sample already >= t");
        assert_eq!(it.seek(0), Some((0, 0.0)));
        assert_eq!(it.seek(1), Some((10, 1.0)), "between samples");
        assert_eq!(it.seek(500), Some((500, 50.0)), "exact hit");
        assert_eq!(it.seek(100), Some((500, 50.0)), "never moves backwards");
        assert_eq!(it.next(), Some((510, 51.0)));
        assert_eq!(it.seek(990), Some((990, 99.0)));
        assert_eq!(it.seek(990), Some((990, 99.0)));
        assert_eq!(it.seek(991), None);
        assert_eq!(it.next(), None);
        assert_eq!(it.seek(0), None, "exhausted stays exhausted");
        assert_eq!(it.err(), None);

        let mut it = c.iter();
        assert_eq!(it.seek(i64::MAX), None);
        assert_eq!(it.err(), None);

        assert_eq!(XorChunk::new().iter().seek(0), None);

        // Seeking into the missing part of a truncated chunk reports the truncation.
        let bytes = &c.bytes()[..c.bytes().len() / 2];
        let mut it = XorIter::new(bytes);
        assert_eq!(it.seek(10), Some((10, 1.0)));
        assert_eq!(it.seek(10_000), None);
        assert!(matches!(it.err(), Some(ChunkError::Truncated { .. })));
    }

    #[test]
    fn reset_reuses_the_iterator() {
        let a = encode(&[(1, 1.0), (2, 2.0)]);
        let b = encode(&[(10, f64::from_bits(STALE_NAN)), (20, -0.0), (30, 5.0)]);
        let mut it = XorIter::new(&[0x00]);
        assert_eq!(it.next(), None);
        assert_eq!(it.err(), Some(&ChunkError::MissingHeader { len: 1 }));
        it.reset(a.bytes());
        assert_eq!(it.err(), None);
        assert_eq!(it.by_ref().count(), 2);
        it.reset(b.bytes());
        let got: Vec<_> = it.by_ref().map(|(t, v)| (t, v.to_bits())).collect();
        assert_eq!(
            got,
            as_bits(&[(10, f64::from_bits(STALE_NAN)), (20, -0.0), (30, 5.0)])
        );
        it.reset(a.bytes());
        assert_eq!(it.next(), Some((1, 1.0)));
    }

    #[test]
    fn encoding_bytes() {
        use super::super::Encoding;
        assert_eq!(Encoding::from_u8(1), Some(Encoding::Xor));
        assert_eq!(Encoding::Xor.as_u8(), 1);
        assert_eq!(Encoding::from_u8(0), None);
        assert_eq!(Encoding::from_u8(2), Some(Encoding::Decimal));
        assert_eq!(Encoding::from_u8(4), None);
    }

    #[derive(Clone, Copy, Debug)]
    enum Kind {
        /// node_cpu_seconds_total: float counter, 0.01 s resolution.
        CounterFloat,
        /// node_network_receive_bytes_total: integer counter.
        CounterInt,
        /// node_memory_MemAvailable_bytes: integer gauge fluctuating in 4 KiB pages.
        Gauge,
        /// node_filesystem_size_bytes and the like: never changes.
        Constant,
    }

    /// Scrapes every 15 s with a few ms of jitter, like a real Prometheus target.
    fn node_like(kind: Kind, n: usize, seed: u64) -> Vec<(i64, f64)> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut t: i64 = 1_700_000_000_000 + rng.random_range(0..15_000);
        let mut ticks: i64 = rng.random_range(1_000_000..100_000_000); // 1/100 s
        let mut bytes: i64 = rng.random_range(0..1 << 40);
        let mut mem: i64 = rng.random_range(1 << 30..1 << 34) & !4095;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let v = match kind {
                Kind::CounterFloat => {
                    ticks += rng.random_range(0..1500);
                    ticks as f64 / 100.0
                }
                Kind::CounterInt => {
                    bytes += rng.random_range(0..2_000_000);
                    bytes as f64
                }
                Kind::Gauge => {
                    mem += rng.random_range(-2000..2000) * 4096;
                    mem as f64
                }
                Kind::Constant => 1_073_741_824.0,
            };
            out.push((t, v));
            t += 15_000 + rng.random_range(-3..=3);
        }
        out
    }

    fn bytes_per_sample(kind: Kind, n: usize) -> f64 {
        let samples = node_like(kind, n, 42);
        assert_roundtrip(&samples).bytes().len() as f64 / n as f64
    }

    #[test]
    fn compression_of_node_exporter_like_series() {
        // Constant at an exact interval: every sample after the second costs 2 bits ('0' '0').
        // At 120 samples the ~20 bytes of header, first sample and first delta still dominate.
        let exact: Vec<_> = (0..1200)
            .map(|i| (1_700_000_000_000 + i * 15_000, 1.0))
            .collect();
        let len = |n: usize| encode(&exact[..n]).bytes().len();
        assert_eq!(len(1200) - len(200), 1000 * 2 / 8);
        assert!(len(120) as f64 / 120.0 < 0.45, "{}", len(120));
        assert!(len(1200) as f64 / 1200.0 < 0.3, "{}", len(1200));

        // With jitter, the timestamp costs 16 bits (dod bucket 14).
        let constant = bytes_per_sample(Kind::Constant, 120);
        assert!(constant < 2.2, "constant: {constant}");
        let counter_float = bytes_per_sample(Kind::CounterFloat, 120);
        assert!(counter_float < 8.0, "float counter: {counter_float}");
        let counter_int = bytes_per_sample(Kind::CounterInt, 120);
        assert!(counter_int < 6.5, "int counter: {counter_int}");
        let gauge = bytes_per_sample(Kind::Gauge, 120);
        assert!(gauge < 4.5, "gauge: {gauge}");
        eprintln!("bytes/sample: constant {constant:.2} float counter {counter_float:.2} int counter {counter_int:.2} gauge {gauge:.2}");
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            4 => any::<u64>().prop_map(f64::from_bits),
            1 => Just(f64::from_bits(STALE_NAN)),
            2 => proptest::sample::select(specials()),
            // Every NaN: either sign, quiet or signalling, any non-zero payload.
            2 => (any::<bool>(), 1u64..1 << 52).prop_map(|(neg, payload)| {
                f64::from_bits(u64::from(neg) << 63 | 0x7ff0_0000_0000_0000 | payload)
            }),
            // Subnormals of either sign.
            1 => (any::<bool>(), 1u64..1 << 52)
                .prop_map(|(neg, m)| f64::from_bits(u64::from(neg) << 63 | m)),
            // Tiny and huge exponents with random mantissas.
            1 => (prop_oneof![1u64..8, 2040u64..2047], any::<u64>(), any::<bool>()).prop_map(
                |(e, m, neg)| f64::from_bits(u64::from(neg) << 63 | e << 52 | m >> 12)
            ),
            3 => (0u32..10_000_000).prop_map(|n| f64::from(n) / 100.0),
            2 => (-1_000_000i32..1_000_000).prop_map(f64::from),
        ]
    }

    /// Values with runs and near-repeats, so all three XOR cases get exercised.
    fn values(n: usize) -> impl Strategy<Value = Vec<f64>> {
        vec((0u8..5, value(), 0u64..64), n).prop_map(|raw| {
            let mut prev = 0.0f64;
            raw.into_iter()
                .map(|(how, v, shift)| {
                    let v = match how {
                        0 => prev,
                        1 => f64::from_bits(prev.to_bits() ^ (1 << shift)),
                        2 => f64::from_bits(prev.to_bits() ^ (v.to_bits() & 0xffff)),
                        _ => v,
                    };
                    prev = v;
                    v
                })
                .collect()
        })
    }

    fn timestamps() -> impl Strategy<Value = Vec<i64>> {
        let start = prop_oneof![
            2 => any::<i64>(),
            3 => -10i64.pow(13)..10i64.pow(13),
            1 => Just(i64::MIN),
            1 => i64::MIN..i64::MIN + 1_000_000,
            1 => i64::MAX - 10_000_000..=i64::MAX,
        ];
        let delta = prop_oneof![
            8 => (-50i64..=50).prop_map(|j| (15_000 + j) as u64),
            2 => 1u64..=3,
            2 => 1u64..1 << 20,
            1 => 1u64..1 << 40,
            1 => 1u64..=u64::MAX,
            1 => Just(u64::MAX),
        ];
        (start, vec(delta, 0..250)).prop_map(|(start, deltas)| {
            let mut t = start;
            let mut out = vec![t];
            for d in deltas {
                // Drop steps that would leave i64; near i64::MAX that leaves short series.
                if let Some(next) = t.checked_add_unsigned(d) {
                    t = next;
                    out.push(t);
                }
            }
            out
        })
    }

    fn samples() -> impl Strategy<Value = Vec<(i64, f64)>> {
        timestamps().prop_flat_map(|ts| {
            let n = ts.len();
            values(n).prop_map(move |vs| ts.iter().copied().zip(vs).collect())
        })
    }

    /// Whatever the bytes, decoding ends, yields no more than declared, in increasing time order,
    /// and either yields everything declared or says why not.
    fn check_decode_invariants(bytes: &[u8]) {
        let mut it = XorIter::new(bytes);
        let mut n = 0usize;
        let mut last: Option<i64> = None;
        for (t, _) in it.by_ref() {
            assert!(last.is_none_or(|l| t > l));
            last = Some(t);
            n += 1;
        }
        match num_samples(bytes) {
            Ok(declared) => {
                assert!(n <= declared);
                assert_eq!(n == declared, it.err().is_none(), "{:?}", it.err());
            }
            Err(_) => assert!(n == 0 && it.err().is_some()),
        }
        assert_eq!(it.next(), None, "fused");
    }

    proptest! {
        #[test]
        fn prop_roundtrip_bit_exact(samples in samples()) {
            let c = encode(&samples);
            let (got, err) = decode(c.bytes());
            prop_assert_eq!(err, None);
            prop_assert_eq!(got, as_bits(&samples));
            prop_assert_eq!(num_samples(c.bytes()), Ok(samples.len()));
            prop_assert_eq!(c.num_samples(), samples.len());
            prop_assert_eq!(c.last_time(), samples.last().map(|s| s.0));
            prop_assert_eq!(c.last_value().map(f64::to_bits), samples.last().map(|s| s.1.to_bits()));
        }

        #[test]
        fn prop_seek_finds_first_sample_at_or_after(samples in samples(), probes in vec(any::<prop::sample::Index>(), 1..8), offs in vec(-2i64..=2, 8)) {
            let c = encode(&samples);
            // Probe around real timestamps, in increasing order (seek never goes back).
            let mut targets: Vec<i64> = probes
                .iter()
                .zip(&offs)
                .map(|(ix, &o)| samples[ix.index(samples.len())].0.saturating_add(o))
                .collect();
            targets.sort_unstable();
            let mut it = c.iter();
            for t in targets {
                let want = samples.iter().find(|s| s.0 >= t).map(|&(t, v)| (t, v.to_bits()));
                prop_assert_eq!(it.seek(t).map(|(t, v)| (t, v.to_bits())), want);
            }
            prop_assert_eq!(it.err(), None);
        }

        #[test]
        fn prop_truncated_chunk_yields_prefix_then_error(samples in samples(), cut in any::<prop::sample::Index>()) {
            let c = encode(&samples);
            let cut = cut.index(c.bytes().len());
            let (got, err) = decode(&c.bytes()[..cut]);
            let want = as_bits(&samples);
            prop_assert!(got.len() < want.len());
            prop_assert_eq!(&got[..], &want[..got.len()]);
            prop_assert!(err.is_some());
        }

    }

    // The CI stand-in for the fuzz targets: cheap cases, so many of them.
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn prop_decode_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..600)) {
            check_decode_invariants(&bytes);
        }

        #[test]
        fn prop_decode_small_header_arbitrary_body(n in 0u16..300, body in vec(any::<u8>(), 0..2000)) {
            let mut bytes = n.to_be_bytes().to_vec();
            bytes.extend_from_slice(&body);
            check_decode_invariants(&bytes);
        }

        #[test]
        fn prop_decode_mutated_chunk_never_panics(
            samples in samples(),
            flips in vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = encode(&samples).into_bytes();
            for (ix, mask) in flips {
                let i = ix.index(bytes.len());
                bytes[i] ^= mask;
            }
            check_decode_invariants(&bytes);
            let cut = cut.index(bytes.len() + 1);
            check_decode_invariants(&bytes[..cut]);
        }
    }
}
