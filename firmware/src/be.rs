//! Big-endian field access for firmware structures.
//!
//! Every firmware/OS structure on POWER is big-endian, also for little-endian guests. The
//! structures in this crate are plain Rust values with explicit `from_be_bytes`/`to_be_bytes`
//! codecs built from these helpers; guest memory is never cast into native structs.

/// Reads big-endian fields from a byte slice whose length the caller has already checked.
pub(crate) struct BeReader<'a> {
    bytes: &'a [u8],
}

impl<'a> BeReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn array<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut out = [0u8; N];
        out.copy_from_slice(&self.bytes[off..off + N]);
        out
    }

    pub(crate) fn u16(&self, off: usize) -> u16 {
        u16::from_be_bytes(self.array(off))
    }

    pub(crate) fn u32(&self, off: usize) -> u32 {
        u32::from_be_bytes(self.array(off))
    }

    pub(crate) fn u64(&self, off: usize) -> u64 {
        u64::from_be_bytes(self.array(off))
    }
}

/// Writes big-endian fields into a byte slice whose length the caller has already checked.
pub(crate) struct BeWriter<'a> {
    bytes: &'a mut [u8],
}

impl<'a> BeWriter<'a> {
    pub(crate) fn new(bytes: &'a mut [u8]) -> Self {
        Self { bytes }
    }

    pub(crate) fn u8(&mut self, off: usize, v: u8) {
        self.bytes[off] = v;
    }

    pub(crate) fn u16(&mut self, off: usize, v: u16) {
        self.bytes[off..off + 2].copy_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_be_bytes());
    }

    pub(crate) fn u64(&mut self, off: usize, v: u64) {
        self.bytes[off..off + 8].copy_from_slice(&v.to_be_bytes());
    }
}
