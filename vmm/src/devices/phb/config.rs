//! A type-0 (endpoint) PCI configuration space: 256 bytes, little-endian registers, with the
//! write masks and BAR sizing behaviour of conventional PCI.
//!
//! Only what a guest driver touches is writable: the command register (memory/IO decode, bus
//! master, INTx disable), cache-line size, latency timer, interrupt line and the BARs. Everything
//! else (IDs, class, capabilities) is read-only and set by the device model.

use log::debug;

/// Size of a conventional PCI configuration space.
pub const CONFIG_SPACE_SIZE: usize = 256;

pub const VENDOR_ID: usize = 0x00;
pub const DEVICE_ID: usize = 0x02;
pub const COMMAND: usize = 0x04;
pub const STATUS: usize = 0x06;
pub const REVISION_ID: usize = 0x08;
pub const CLASS_PROG: usize = 0x09;
pub const CACHE_LINE_SIZE: usize = 0x0c;
pub const LATENCY_TIMER: usize = 0x0d;
pub const HEADER_TYPE: usize = 0x0e;
pub const BAR0: usize = 0x10;
pub const SUBSYSTEM_VENDOR_ID: usize = 0x2c;
pub const SUBSYSTEM_ID: usize = 0x2e;
pub const CAPABILITIES_POINTER: usize = 0x34;
pub const INTERRUPT_LINE: usize = 0x3c;
pub const INTERRUPT_PIN: usize = 0x3d;

/// Command register bits.
pub const COMMAND_IO: u16 = 1 << 0;
pub const COMMAND_MEMORY: u16 = 1 << 1;
pub const COMMAND_MASTER: u16 = 1 << 2;
pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
const COMMAND_WRITABLE: u16 = COMMAND_IO | COMMAND_MEMORY | COMMAND_MASTER | COMMAND_INTX_DISABLE;

/// Status register: capabilities list present; interrupt status (INTx asserted).
pub const STATUS_CAP_LIST: u16 = 1 << 4;
pub const STATUS_INTERRUPT: u16 = 1 << 3;

/// Number of BARs in a type-0 header.
pub const BAR_COUNT: usize = 6;

/// Identity of a PCI function, the read-only part of its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciId {
    pub vendor: u16,
    pub device: u16,
    pub subsystem_vendor: u16,
    pub subsystem: u16,
    pub revision: u8,
    /// Class code, sub-class and programming interface: `0xCCSSPP`.
    pub class: u32,
}

/// A 32-bit, non-prefetchable memory BAR of `size` bytes (a power of two, at least 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarSpec {
    pub size: u32,
}

/// The configuration space of one function.
#[derive(Clone)]
pub struct ConfigSpace {
    bytes: [u8; CONFIG_SPACE_SIZE],
    bars: [Option<BarSpec>; BAR_COUNT],
    /// The header as built, for resets.
    power_on: [u8; CONFIG_SPACE_SIZE],
}

impl std::fmt::Debug for ConfigSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigSpace")
            .field("id", &self.read(VENDOR_ID, 4))
            .field("command", &self.command())
            .field("bars", &self.bars)
            .finish()
    }
}

impl ConfigSpace {
    /// A header for `id` with INTA# (`interrupt_pin` = 1) when `intx` is set and the given
    /// BARs (index → spec; invalid sizes are ignored). Capabilities are added afterwards with
    /// [`ConfigSpace::add_capability`].
    pub fn new(id: PciId, intx: bool, bars: &[(usize, BarSpec)]) -> Self {
        let mut c = Self {
            bytes: [0; CONFIG_SPACE_SIZE],
            bars: [None; BAR_COUNT],
            power_on: [0; CONFIG_SPACE_SIZE],
        };
        c.put16(VENDOR_ID, id.vendor);
        c.put16(DEVICE_ID, id.device);
        c.bytes[REVISION_ID] = id.revision;
        c.bytes[CLASS_PROG] = id.class as u8;
        c.bytes[CLASS_PROG + 1] = (id.class >> 8) as u8;
        c.bytes[CLASS_PROG + 2] = (id.class >> 16) as u8;
        c.bytes[HEADER_TYPE] = 0;
        c.put16(SUBSYSTEM_VENDOR_ID, id.subsystem_vendor);
        c.put16(SUBSYSTEM_ID, id.subsystem);
        c.bytes[INTERRUPT_PIN] = u8::from(intx);
        for &(i, spec) in bars {
            if i < BAR_COUNT && spec.size.is_power_of_two() && spec.size >= 16 {
                c.bars[i] = Some(spec);
            }
        }
        c.power_on = c.bytes;
        c
    }

    /// Appends a capability (`body` starts with the capability id; the next pointer is filled
    /// in) at `offset` (dword aligned, above the header). Returns false if it does not fit.
    pub fn add_capability(&mut self, offset: usize, body: &[u8]) -> bool {
        let Some(end) = offset.checked_add(body.len()) else {
            return false;
        };
        if offset < 0x40 || offset % 4 != 0 || end > CONFIG_SPACE_SIZE || body.len() < 2 {
            return false;
        }
        self.bytes[offset..end].copy_from_slice(body);
        self.bytes[offset + 1] = 0;
        // Link at the end of the list.
        let mut link = CAPABILITIES_POINTER;
        let mut hops = 0;
        while self.bytes[link] != 0 && hops < 48 {
            link = self.bytes[link] as usize + 1;
            hops += 1;
        }
        self.bytes[link] = offset as u8;
        let status = self.get16(STATUS) | STATUS_CAP_LIST;
        self.put16(STATUS, status);
        self.power_on = self.bytes;
        true
    }

    /// Returns the header to its power-on contents (BARs unassigned, decoding off).
    pub fn reset(&mut self) {
        self.bytes = self.power_on;
    }

    fn get16(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.bytes[off], self.bytes[off + 1]])
    }

    fn put16(&mut self, off: usize, v: u16) {
        self.bytes[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn get32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.bytes[off..off + 4].try_into().unwrap_or([0; 4]))
    }

    fn put32(&mut self, off: usize, v: u32) {
        self.bytes[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    pub fn command(&self) -> u16 {
        self.get16(COMMAND)
    }

    pub fn memory_enabled(&self) -> bool {
        self.command() & COMMAND_MEMORY != 0
    }

    pub fn intx_disabled(&self) -> bool {
        self.command() & COMMAND_INTX_DISABLE != 0
    }

    /// Reflects the device's INTx state in the status register.
    pub fn set_interrupt_status(&mut self, asserted: bool) {
        let s = self.get16(STATUS) & !STATUS_INTERRUPT;
        self.put16(STATUS, s | if asserted { STATUS_INTERRUPT } else { 0 });
    }

    pub fn bar_spec(&self, bar: usize) -> Option<BarSpec> {
        self.bars.get(bar).copied().flatten()
    }

    /// The PCI bus address BAR `bar` decodes, if it is implemented (whether or not memory
    /// decoding is enabled).
    pub fn bar_address(&self, bar: usize) -> Option<u64> {
        self.bar_spec(bar)?;
        Some(u64::from(self.get32(BAR0 + 4 * bar) & !0xf))
    }

    /// Firmware placement: programs BAR `bar` with `addr` (masked to its alignment).
    pub fn set_bar_address(&mut self, bar: usize, addr: u32) {
        if let Some(spec) = self.bar_spec(bar) {
            self.put32(BAR0 + 4 * bar, addr & !(spec.size - 1));
        }
    }

    /// Makes the current contents (e.g. after firmware BAR placement) the power-on state.
    pub fn commit_power_on(&mut self) {
        self.power_on = self.bytes;
    }

    /// Reads `size` (1, 2 or 4) bytes at `offset`; out-of-range or misaligned reads return
    /// all-ones (callers validate first and report errors).
    pub fn read(&self, offset: usize, size: usize) -> u32 {
        if !matches!(size, 1 | 2 | 4) || offset % size != 0 || offset + size > CONFIG_SPACE_SIZE {
            return u32::MAX >> (32 - 8 * size.clamp(1, 4) as u32);
        }
        let mut v = [0u8; 4];
        v[..size].copy_from_slice(&self.bytes[offset..offset + size]);
        u32::from_le_bytes(v)
    }

    /// Writes `size` (1, 2 or 4) bytes at `offset`, honouring the write masks.
    pub fn write(&mut self, offset: usize, size: usize, value: u32) {
        if !matches!(size, 1 | 2 | 4) || offset % size != 0 || offset + size > CONFIG_SPACE_SIZE {
            return;
        }
        for i in 0..size {
            self.write_byte(offset + i, (value >> (8 * i)) as u8);
        }
    }

    fn write_byte(&mut self, off: usize, b: u8) {
        match off {
            COMMAND | 0x05 => {
                let mut bytes = self.get16(COMMAND).to_le_bytes();
                bytes[off - COMMAND] = b;
                let v = u16::from_le_bytes(bytes) & COMMAND_WRITABLE;
                self.put16(COMMAND, v);
            }
            CACHE_LINE_SIZE | LATENCY_TIMER | INTERRUPT_LINE => self.bytes[off] = b,
            o if (BAR0..BAR0 + 4 * BAR_COUNT).contains(&o) => {
                let bar = (o - BAR0) / 4;
                let Some(spec) = self.bar_spec(bar) else {
                    return; // unimplemented BARs read as zero
                };
                let base = BAR0 + 4 * bar;
                let mut bytes = self.get32(base).to_le_bytes();
                bytes[o - base] = b;
                // Address bits below the size are hard-wired to zero; the low nibble says
                // "32-bit memory, non-prefetchable" (all zero). Writing all-ones therefore
                // reads back the size mask.
                let v = u32::from_le_bytes(bytes) & !(spec.size - 1);
                self.put32(base, v);
                debug!("pci: BAR{bar} <- {v:#x}");
            }
            _ => {}
        }
    }
}
