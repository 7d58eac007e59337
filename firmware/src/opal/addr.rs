//! OPAL real addresses.
//!
//! OPAL runs in real mode, where the top four address bits are ignored. Linux passes some
//! pointers as kernel virtual addresses (`0xC000...`, e.g. the `QUERY_TAG` output variable on its
//! stack, the `CEC_REBOOT2` message) and others as physical addresses. skiboot's
//! `opal_addr_valid` accepts a top nibble of 0x0 or 0xC, masks it off, and requires the result to
//! be at most the top of RAM. We apply the same rule, then the stricter checks the caller needs
//! (the whole access inside RAM, no hole).

const TOP_NIBBLE_SHIFT: u32 = 60;
const LOW_60_BITS: u64 = (1 << TOP_NIBBLE_SHIFT) - 1;

/// skiboot's `opal_addr_valid`: the real address `raw` designates, or `None`.
pub fn real_addr(raw: u64, top_of_ram: u64) -> Option<u64> {
    match raw >> TOP_NIBBLE_SHIFT {
        0x0 | 0xc => {}
        _ => return None,
    }
    let real = raw & LOW_60_BITS;
    (real <= top_of_ram).then_some(real)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_nibble_rule() {
        let top = 0x8000_0000;
        assert_eq!(real_addr(0x1000, top), Some(0x1000));
        assert_eq!(real_addr(0xc000_0000_0000_1000, top), Some(0x1000));
        assert_eq!(real_addr(0x8000_0000_0000_1000, top), None);
        assert_eq!(real_addr(0xd000_0000_0000_1000, top), None);
        assert_eq!(
            real_addr(top, top),
            Some(top),
            "skiboot allows == top_of_ram"
        );
        assert_eq!(real_addr(top + 1, top), None);
        assert_eq!(real_addr(0xc000_0000_8000_0001, top), None);
    }
}
