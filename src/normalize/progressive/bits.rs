//! The entropy-coded bit stream of a scan (0xFF00 unstuffing, zero padding at markers
//! detected) and its restart-marker bookkeeping.

use super::types::{BAD_DATA, R};

/// The entropy-coded bit stream of one scan, with 0xFF00 unstuffing. At a marker (RSTn or
/// the end) it feeds zero bits and counts them, so running into padding is detected.
#[derive(Clone, Copy)]
pub(super) struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    /// Left-aligned: the next bit is the most significant.
    buf: u64,
    n: u32,
    at_marker: bool,
    /// Bits fed into `buf` since the last reset, and how many of them came from the data.
    fed: u64,
    real: u64,
}

impl<'a> Bits<'a> {
    pub(super) fn new(data: &'a [u8]) -> Self {
        Bits {
            data,
            pos: 0,
            buf: 0,
            n: 0,
            at_marker: false,
            fed: 0,
            real: 0,
        }
    }

    /// Makes at least 57 bits available.
    #[inline(always)]
    pub(super) fn refill(&mut self) {
        if self.n > 56 {
            return;
        }
        if !self.at_marker {
            if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
                let w = u64::from_be_bytes(chunk.try_into().expect("8 bytes"));
                let inv = !w;
                // No byte of w is 0xFF (no zero byte in !w): take whole bytes at once.
                if (inv.wrapping_sub(0x0101_0101_0101_0101) & !inv & 0x8080_8080_8080_8080) == 0 {
                    let take = (64 - self.n) / 8;
                    let bits = take * 8;
                    self.buf |= (w >> (64 - bits)) << (64 - self.n - bits);
                    self.n += bits;
                    self.pos += take as usize;
                    self.fed += bits as u64;
                    self.real += bits as u64;
                    return;
                }
            }
        }
        self.refill_slow();
    }

    #[cold]
    fn refill_slow(&mut self) {
        while self.n <= 56 {
            let mut byte = 0u8;
            if !self.at_marker {
                match self.data.get(self.pos) {
                    None => self.at_marker = true,
                    Some(&0xFF) => {
                        if self.data.get(self.pos + 1) == Some(&0) {
                            byte = 0xFF;
                            self.pos += 2;
                            self.real += 8;
                        } else {
                            self.at_marker = true;
                        }
                    }
                    Some(&b) => {
                        byte = b;
                        self.pos += 1;
                        self.real += 8;
                    }
                }
            }
            self.buf |= (byte as u64) << (56 - self.n);
            self.n += 8;
            self.fed += 8;
        }
    }

    #[inline(always)]
    pub(super) fn consume(&mut self, k: u32) {
        self.buf <<= k;
        self.n -= k;
    }

    /// `k` in 1..=32 bits; the caller refilled (57 available).
    #[inline(always)]
    pub(super) fn take(&mut self, k: u32) -> u32 {
        let v = (self.buf >> (64 - k)) as u32;
        self.consume(k);
        v
    }

    #[inline(always)]
    pub(super) fn bits(&mut self, k: u32) -> u32 {
        if k == 0 {
            return 0;
        }
        self.refill();
        self.take(k)
    }

    #[inline(always)]
    pub(super) fn bit(&mut self) -> bool {
        self.refill();
        self.take(1) != 0
    }

    /// The next `k` bits (1..=32) without consuming them; the caller refilled.
    #[inline(always)]
    pub(super) fn peek(&self, k: u32) -> usize {
        (self.buf >> (64 - k)) as usize
    }

    /// Whether everything consumed came from the data (not from zero padding at a marker).
    pub(super) fn sound(&self) -> bool {
        self.fed - self.n as u64 <= self.real
    }

    /// At a restart boundary: the rest of the current byte is padding, the next marker must
    /// be RSTn with the expected n. Resets the bit buffer.
    pub(super) fn restart(&mut self, expect: u8) -> R<()> {
        if !self.sound() || self.real - (self.fed - self.n as u64) >= 8 {
            return Err(BAD_DATA);
        }
        let mut p = self.pos;
        if self.data.get(p) != Some(&0xFF) {
            return Err(BAD_DATA);
        }
        while self.data.get(p) == Some(&0xFF) {
            p += 1;
        }
        if self.data.get(p) != Some(&(0xD0 + expect)) {
            return Err(BAD_DATA);
        }
        self.pos = p + 1;
        self.buf = 0;
        self.n = 0;
        self.at_marker = false;
        self.fed = 0;
        self.real = 0;
        Ok(())
    }
}

/// Restart bookkeeping: `interval` MCUs between RSTn markers (a block, in a single-component
/// scan).
pub(super) struct Restarts {
    interval: usize,
    togo: usize,
    next: u8,
}

impl Restarts {
    pub(super) fn new(interval: usize) -> Self {
        Restarts {
            interval,
            togo: interval,
            next: 0,
        }
    }

    /// Before each MCU: true when a restart happened (predictions and EOB run reset).
    #[inline(always)]
    pub(super) fn step(&mut self, bits: &mut Bits<'_>) -> R<bool> {
        if self.interval == 0 {
            return Ok(false);
        }
        let mut restarted = false;
        if self.togo == 0 {
            bits.restart(self.next)?;
            self.next = (self.next + 1) & 7;
            self.togo = self.interval;
            restarted = true;
        }
        self.togo -= 1;
        Ok(restarted)
    }
}
