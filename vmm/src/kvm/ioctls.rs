//! KVM ioctl request numbers.
//!
//! The numbers are built with `libc::_IO/_IOR/_IOW/_IOWR`, which use the target
//! architecture's encoding. vmm-sys-util's `ioctl_*_nr!` macros are deliberately not used: they
//! hard-code the asm-generic encoding, which is wrong on powerpc (trap 3 of
//! test-environment.md). Every request is declared once in the table below; the same
//! declaration also yields its powerpc encoding ([`ppc_ioc`]) so the numbers can be checked
//! against the kernel's on any host (see the tests here and in `layout_tests`).

use super::bindings::*;

/// The powerpc `_IOC` encoding (`arch/powerpc/include/uapi/asm/ioctl.h`): 13 size bits and
/// three direction bits at 29, with NONE = 1, READ = 2, WRITE = 4.
pub mod ppc_ioc {
    pub const NONE: u32 = 1;
    pub const READ: u32 = 2;
    pub const WRITE: u32 = 4;
    const NRSHIFT: u32 = 0;
    const TYPESHIFT: u32 = 8;
    const SIZESHIFT: u32 = 16;
    const DIRSHIFT: u32 = 29;
    const SIZEMASK: usize = (1 << 13) - 1;

    /// `_IOC(dir, type, nr, size)` for powerpc; panics (at compile time in consts) if the size
    /// does not fit the 13-bit field.
    pub const fn ioc(dir: u32, ty: u32, nr: u32, size: usize) -> u32 {
        assert!(size <= SIZEMASK);
        (dir << DIRSHIFT) | ((size as u32) << SIZESHIFT) | (ty << TYPESHIFT) | (nr << NRSHIFT)
    }
}

macro_rules! kvm_ioctls {
    (@libc io, $nr:expr) => { libc::_IO(KVMIO, $nr) };
    (@libc ior, $nr:expr, $ty:ty) => { libc::_IOR::<$ty>(KVMIO, $nr) };
    (@libc iow, $nr:expr, $ty:ty) => { libc::_IOW::<$ty>(KVMIO, $nr) };
    (@libc iowr, $nr:expr, $ty:ty) => { libc::_IOWR::<$ty>(KVMIO, $nr) };
    (@ppc io, $nr:expr) => { ppc_ioc::ioc(ppc_ioc::NONE, KVMIO, $nr, 0) };
    (@ppc ior, $nr:expr, $ty:ty) => {
        ppc_ioc::ioc(ppc_ioc::READ, KVMIO, $nr, core::mem::size_of::<$ty>())
    };
    (@ppc iow, $nr:expr, $ty:ty) => {
        ppc_ioc::ioc(ppc_ioc::WRITE, KVMIO, $nr, core::mem::size_of::<$ty>())
    };
    (@ppc iowr, $nr:expr, $ty:ty) => {
        ppc_ioc::ioc(ppc_ioc::READ | ppc_ioc::WRITE, KVMIO, $nr, core::mem::size_of::<$ty>())
    };
    ($($(#[$m:meta])* $name:ident = $dir:ident($nr:expr $(, $ty:ty)?);)*) => {
        $($(#[$m])* pub const $name: libc::Ioctl = kvm_ioctls!(@libc $dir, $nr $(, $ty)?);)*

        /// Every request above with its powerpc encoding, for the tests.
        pub const PPC64_TABLE: &[(&str, u32)] =
            &[$((stringify!($name), kvm_ioctls!(@ppc $dir, $nr $(, $ty)?)),)*];

        /// Every request above with the number this build uses.
        pub const TARGET_TABLE: &[(&str, libc::Ioctl)] = &[$((stringify!($name), $name),)*];
    };
}

kvm_ioctls! {
    // system
    KVM_GET_API_VERSION = io(0x00);
    KVM_CREATE_VM = io(0x01);
    KVM_CHECK_EXTENSION = io(0x03);
    KVM_GET_VCPU_MMAP_SIZE = io(0x04);
    // vm
    KVM_CREATE_VCPU = io(0x41);
    KVM_SET_USER_MEMORY_REGION = iow(0x46, kvm_userspace_memory_region);
    KVM_IRQ_LINE = iow(0x61, kvm_irq_level);
    KVM_IOEVENTFD = iow(0x79, kvm_ioeventfd);
    KVM_ENABLE_CAP = iow(0xa3, kvm_enable_cap);
    KVM_PPC_GET_SMMU_INFO = ior(0xa6, kvm_ppc_smmu_info);
    KVM_PPC_ALLOCATE_HTAB = iowr(0xa7, u32);
    KVM_CREATE_SPAPR_TCE_64 = iow(0xa8, kvm_create_spapr_tce_64);
    KVM_PPC_GET_HTAB_FD = iow(0xaa, kvm_get_htab_fd);
    KVM_PPC_RTAS_DEFINE_TOKEN = iow(0xac, kvm_rtas_token_args);
    KVM_PPC_CONFIGURE_V3_MMU = iow(0xaf, kvm_ppc_mmuv3_cfg);
    KVM_PPC_GET_RMMU_INFO = iow(0xb0, kvm_ppc_rmmu_info);
    KVM_PPC_GET_CPU_CHAR = ior(0xb1, kvm_ppc_cpu_char);
    KVM_CREATE_DEVICE = iowr(0xe0, kvm_create_device);
    // device
    KVM_SET_DEVICE_ATTR = iow(0xe1, kvm_device_attr);
    KVM_GET_DEVICE_ATTR = iow(0xe2, kvm_device_attr);
    KVM_HAS_DEVICE_ATTR = iow(0xe3, kvm_device_attr);
    // vcpu
    KVM_RUN = io(0x80);
    KVM_GET_REGS = ior(0x81, kvm_regs);
    KVM_SET_REGS = iow(0x82, kvm_regs);
    KVM_GET_SREGS = ior(0x83, kvm_sregs);
    KVM_SET_SREGS = iow(0x84, kvm_sregs);
    KVM_INTERRUPT = iow(0x86, kvm_interrupt);
    KVM_GET_ONE_REG = iow(0xab, kvm_one_reg);
    KVM_SET_ONE_REG = iow(0xac, kvm_one_reg);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ppc(name: &str) -> u32 {
        PPC64_TABLE.iter().find(|(n, _)| *n == name).unwrap().1
    }

    /// Values the ppc64 kernel uses (spec §2.1; KVM_CREATE_VM, KVM_CREATE_VCPU and KVM_SET_REGS
    /// also appear in syzkaller ppc64 traces). `layout_tests` re-checks the whole table against
    /// the kernel headers with the cross compiler.
    #[test]
    fn powerpc_numbers_match_the_kernel() {
        let expected: &[(&str, u32)] = &[
            ("KVM_GET_API_VERSION", 0x2000ae00),
            ("KVM_CREATE_VM", 0x2000ae01),
            ("KVM_CHECK_EXTENSION", 0x2000ae03),
            ("KVM_GET_VCPU_MMAP_SIZE", 0x2000ae04),
            ("KVM_CREATE_VCPU", 0x2000ae41),
            ("KVM_SET_USER_MEMORY_REGION", 0x8020ae46),
            ("KVM_IRQ_LINE", 0x8008ae61),
            ("KVM_IOEVENTFD", 0x8040ae79),
            ("KVM_RUN", 0x2000ae80),
            ("KVM_GET_REGS", 0x4188ae81),
            ("KVM_SET_REGS", 0x8188ae82),
            ("KVM_GET_SREGS", 0x44d0ae83),
            ("KVM_SET_SREGS", 0x84d0ae84),
            ("KVM_INTERRUPT", 0x8004ae86),
            ("KVM_ENABLE_CAP", 0x8068aea3),
            ("KVM_PPC_GET_SMMU_INFO", 0x4250aea6),
            ("KVM_PPC_ALLOCATE_HTAB", 0xc004aea7),
            ("KVM_CREATE_SPAPR_TCE_64", 0x8020aea8),
            ("KVM_PPC_GET_HTAB_FD", 0x8020aeaa),
            ("KVM_GET_ONE_REG", 0x8010aeab),
            ("KVM_SET_ONE_REG", 0x8010aeac),
            ("KVM_PPC_RTAS_DEFINE_TOKEN", 0x8080aeac),
            ("KVM_PPC_CONFIGURE_V3_MMU", 0x8010aeaf),
            ("KVM_PPC_GET_RMMU_INFO", 0x8060aeb0),
            ("KVM_PPC_GET_CPU_CHAR", 0x4020aeb1),
            ("KVM_CREATE_DEVICE", 0xc00caee0),
            ("KVM_SET_DEVICE_ATTR", 0x8018aee1),
            ("KVM_GET_DEVICE_ATTR", 0x8018aee2),
            ("KVM_HAS_DEVICE_ATTR", 0x8018aee3),
        ];
        for (name, value) in expected {
            assert_eq!(
                ppc(name),
                *value,
                "{name}: got {:#x}, want {value:#x}",
                ppc(name)
            );
        }
        assert_eq!(
            expected.len(),
            PPC64_TABLE.len(),
            "every request has an expected value"
        );
    }

    /// On a powerpc build the numbers actually passed to ioctl(2) are the powerpc ones (this
    /// runs under qemu-user in CI); the generic encoding would give 0xae01 for KVM_CREATE_VM.
    #[cfg(target_arch = "powerpc64")]
    #[test]
    fn target_numbers_are_the_powerpc_encoding() {
        for ((name, target), (_, ppc)) in TARGET_TABLE.iter().zip(PPC64_TABLE) {
            assert_eq!(*target, libc::Ioctl::from(*ppc), "{name}");
        }
        assert_eq!(KVM_CREATE_VM, 0x2000ae01);
    }
}
