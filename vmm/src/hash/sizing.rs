//! Hash-MMU (HPT) guests: how big the hash page table is, how much of RAM the guest can reach
//! in real mode through it, and which hash page sizes the guest may use.
//!
//! A hash guest's real-mode accesses go through the VRMA: KVM maps the start of the first
//! memory slot with one HPTE per PTEG, each covering one host page, so the real-mode area is
//! `2^(order - 7)` host pages (the HPT of `2^order` bytes has `2^(order - 7)` PTEGs of 128
//! bytes). On a 4 KiB-page host with the usual HPT of RAM/128 that is RAM/4 (trap 2 in the
//! test-environment notes). Everything the firmware hands over (kernel, initramfs, device
//! tree, RTAS) and the guest's early allocations must lie below it; the first `/memory` node
//! tells Linux where it ends.

use devicetree::SegmentPageSize;

/// Smallest and largest HPT the architecture (and `KVM_PPC_ALLOCATE_HTAB`) allows, as log2 of
/// its size in bytes.
pub const MIN_ORDER: u32 = 18;
pub const MAX_ORDER: u32 = 46;
/// log2 of a PTEG (8 HPTEs of 16 bytes).
const PTEG_SHIFT: u32 = 7;
/// log2 of one HPTE.
const HPTE_SHIFT: u32 = 4;

/// `ceil(log2(v))` for `v >= 1`.
fn log2_ceil(v: u64) -> u32 {
    if v <= 1 {
        0
    } else {
        64 - (v - 1).leading_zeros()
    }
}

/// Bytes of real-mode area the VRMA gives an HPT of `2^order` bytes on a host whose guest RAM
/// is backed by pages of `2^host_page_shift` bytes.
pub fn vrma_limit(order: u32, host_page_shift: u32) -> u64 {
    1u64.checked_shl(order + host_page_shift - PTEG_SHIFT)
        .unwrap_or(u64::MAX)
}

/// The HPT order for `ram` bytes of guest RAM: about RAM/128 rounded up to a power of two (the
/// ratio QEMU uses; PAPR recommends RAM/64, more than Linux needs), raised when that would
/// leave a real-mode area smaller than `min(ram, want_rma)`, and clamped to 18..=46.
pub fn order_for(ram: u64, host_page_shift: u32, want_rma: u64) -> u32 {
    let by_ram = log2_ceil(ram).saturating_sub(PTEG_SHIFT);
    // vrma_limit(order) >= want  <=>  order >= log2(want) - page_shift + 7
    let by_rma =
        (log2_ceil(ram.min(want_rma)) + PTEG_SHIFT).saturating_sub(host_page_shift.min(63));
    by_ram.max(by_rma).clamp(MIN_ORDER, MAX_ORDER)
}

/// The real-mode area an HPT of `2^order` bytes gives `ram` bytes of RAM.
pub fn rma_size(ram: u64, order: u32, host_page_shift: u32) -> u64 {
    ram.min(vrma_limit(order, host_page_shift))
}

/// HPTEs in an HPT of `2^order` bytes (the HPTE save area's capacity).
pub fn entries(order: u32) -> u64 {
    1u64 << (order - HPTE_SHIFT)
}

/// The hash page sizes a guest may use when its RAM is backed by host pages of
/// `2^host_page_shift` bytes: KVM-HV maps each guest page onto one host page, so no page (and
/// no segment base page) may be larger (`KVM_PPC_PAGE_SIZES_REAL`). Segment sizes left with no
/// page size are dropped.
pub fn usable_page_sizes(all: &[SegmentPageSize], host_page_shift: u32) -> Vec<SegmentPageSize> {
    all.iter()
        .filter(|s| s.base_shift <= host_page_shift)
        .map(|s| SegmentPageSize {
            pages: s
                .pages
                .iter()
                .copied()
                .filter(|(shift, _)| *shift <= host_page_shift)
                .collect(),
            ..s.clone()
        })
        .filter(|s| !s.pages.is_empty())
        .collect()
}

/// log2 of the host's base page size (what backs anonymous guest RAM).
pub fn host_page_shift() -> u32 {
    crate::memory::host_page_size().trailing_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: u64 = 1 << 20;
    const G: u64 = 1 << 30;

    #[test]
    fn a_hotplug_window_grows_the_hpt_not_the_rma() {
        // 2 GiB of boot RAM and a 1 GiB window: the table of 3 GiB's (2^25, not 2^24). The
        // real-mode area is the VRMA's (1 GiB) and never more than boot RAM.
        assert_eq!(order_for(2 << 30, 12, 256 << 20), 24);
        let with_window = order_for(3 << 30, 12, 256 << 20);
        assert_eq!(with_window, 25);
        assert_eq!(rma_size(2 << 30, with_window, 12), 1 << 30);
        assert_eq!(rma_size(512 << 20, with_window, 12), 512 << 20);
    }

    #[test]
    fn order_is_ram_over_128_unless_the_rma_would_be_too_small() {
        // 64 KiB host pages: RAM/128 always leaves a large enough VRMA.
        assert_eq!(order_for(G, 16, 256 * M), 23);
        assert_eq!(order_for(2 * G, 16, 256 * M), 24);
        assert_eq!(order_for(3 * G, 16, 256 * M), 25, "rounded up");
        assert_eq!(order_for(64 * M, 16, 256 * M), 19);
        // 4 KiB host pages: 1 GiB -> 2^23 bytes -> VRMA 256 MiB = RAM/4 (trap 2).
        assert_eq!(order_for(G, 12, 256 * M), 23);
        assert_eq!(vrma_limit(23, 12), 256 * M);
        assert_eq!(rma_size(G, 23, 12), 256 * M);
        // 512 MiB would get 2^22 and only 128 MiB: raised so the VRMA covers 256 MiB.
        assert_eq!(order_for(512 * M, 12, 256 * M), 23);
        assert_eq!(rma_size(512 * M, 23, 12), 256 * M);
        // Small RAM: the VRMA covers all of it.
        let o = order_for(64 * M, 12, 256 * M);
        assert_eq!(o, 21);
        assert_eq!(rma_size(64 * M, o, 12), 64 * M);
        // Clamps.
        assert_eq!(order_for(1, 12, 1), MIN_ORDER);
        assert_eq!(order_for(u64::MAX, 12, u64::MAX), MAX_ORDER);
        assert_eq!(entries(23), 1 << 19);
    }

    #[test]
    fn large_pages_are_dropped_on_a_small_page_host() {
        let all = SegmentPageSize::default_set();
        let four_k = usable_page_sizes(&all, 12);
        assert_eq!(four_k.len(), 1);
        assert_eq!(four_k[0].base_shift, 12);
        assert_eq!(four_k[0].pages, vec![(12, 0)]);
        assert_eq!(usable_page_sizes(&all, 16), all);
        let mixed = vec![SegmentPageSize {
            base_shift: 12,
            slb_enc: 0,
            pages: vec![(12, 0), (16, 7), (24, 0x38)],
        }];
        assert_eq!(
            usable_page_sizes(&mixed, 16)[0].pages,
            vec![(12, 0), (16, 7)]
        );
    }

    #[test]
    fn host_page_shift_matches_sysconf() {
        let s = host_page_shift();
        assert!((12..=16).contains(&s), "{s}");
    }
}
