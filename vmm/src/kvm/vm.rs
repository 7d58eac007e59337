//! The VM fd ([`VmFd`]) and device fds ([`DeviceFd`]), named after kvm-ioctls.

use super::bindings::*;
use super::ioctls::*;
use super::vcpu::VcpuFd;
use super::Result;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use vmm_sys_util::errno;
use vmm_sys_util::ioctl::{ioctl_with_mut_ref, ioctl_with_ref, ioctl_with_val};

/// A KVM virtual machine.
#[derive(Debug)]
pub struct VmFd {
    vm: File,
    run_size: usize,
}

fn check(ret: i32) -> Result<()> {
    if ret < 0 {
        Err(errno::Error::last())
    } else {
        Ok(())
    }
}

impl VmFd {
    pub(super) fn new(vm: File, run_size: usize) -> Self {
        VmFd { vm, run_size }
    }

    /// A second handle on the same VM (a `dup` of its fd), for device back ends that raise
    /// interrupts from vCPU threads. The VM lives until every handle is closed.
    pub fn try_clone(&self) -> std::io::Result<Self> {
        Ok(VmFd {
            vm: self.vm.try_clone()?,
            run_size: self.run_size,
        })
    }

    /// `KVM_CHECK_EXTENSION` on the VM fd: > 0 when supported (some caps return a count).
    pub fn check_extension_int(&self, cap: u32) -> i32 {
        // SAFETY: the capability number is passed by value and only read.
        unsafe { ioctl_with_val(&self.vm, KVM_CHECK_EXTENSION, cap.into()) }
    }

    /// Whether the VM supports `cap`.
    pub fn check_extension(&self, cap: u32) -> bool {
        self.check_extension_int(cap) > 0
    }

    /// `KVM_SET_USER_MEMORY_REGION`.
    ///
    /// # Safety
    ///
    /// `region.userspace_addr .. + memory_size` must stay a valid, mapped host range for as
    /// long as the slot exists (the guest writes there behind Rust's back).
    pub unsafe fn set_user_memory_region(&self, region: kvm_userspace_memory_region) -> Result<()> {
        // SAFETY: the struct outlives the call and matches the kernel layout; the caller
        // guarantees the host range.
        check(unsafe { ioctl_with_ref(&self.vm, KVM_SET_USER_MEMORY_REGION, &region) })
    }

    /// `KVM_ENABLE_CAP` on the VM.
    pub fn enable_cap(&self, cap: &kvm_enable_cap) -> Result<()> {
        // SAFETY: the kernel reads a kvm_enable_cap of the right layout from `cap`.
        check(unsafe { ioctl_with_ref(&self.vm, KVM_ENABLE_CAP, cap) })
    }

    /// `KVM_CAP_PPC_ENABLE_HCALL`: let the kernel handle `hcall` itself (or not).
    pub fn enable_hcall(&self, hcall: u64, enable: bool) -> Result<()> {
        let cap = kvm_enable_cap {
            cap: KVM_CAP_PPC_ENABLE_HCALL,
            args: [hcall, u64::from(enable), 0, 0],
            ..Default::default()
        };
        self.enable_cap(&cap)
    }

    /// `KVM_CREATE_SPAPR_TCE_64`: an in-kernel TCE table for one DMA window (see
    /// [`kvm_create_spapr_tce_64`]). The returned file owns the table: KVM serves the TCE
    /// hcalls on `args.liobn` until it is closed.
    pub fn create_spapr_tce_64(&self, args: &kvm_create_spapr_tce_64) -> Result<File> {
        // SAFETY: the kernel reads a kvm_create_spapr_tce_64 of the right layout from `args`.
        let fd = unsafe { ioctl_with_ref(&self.vm, KVM_CREATE_SPAPR_TCE_64, args) };
        if fd < 0 {
            return Err(errno::Error::last());
        }
        // SAFETY: on success the return value is a new fd that we now own.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// `KVM_CREATE_VCPU` plus the `kvm_run` mapping.
    pub fn create_vcpu(&self, id: u64) -> Result<VcpuFd> {
        // SAFETY: the id is passed by value; on success a new fd owned by nobody else.
        let fd = unsafe { ioctl_with_val(&self.vm, KVM_CREATE_VCPU, id as libc::c_ulong) };
        if fd < 0 {
            return Err(errno::Error::last());
        }
        // SAFETY: `fd` is a fresh vCPU fd that we now own.
        let file = unsafe { File::from_raw_fd(fd) };
        VcpuFd::new(file, self.run_size)
    }

    /// `KVM_CREATE_DEVICE` (e.g. [`KVM_DEV_TYPE_XICS`]).
    pub fn create_device(&self, device: &mut kvm_create_device) -> Result<DeviceFd> {
        // SAFETY: the kernel reads type/flags and writes fd into a struct of the right layout.
        check(unsafe { ioctl_with_mut_ref(&self.vm, KVM_CREATE_DEVICE, device) })?;
        // SAFETY: on success `device.fd` is a new fd that we now own.
        let file = unsafe { File::from_raw_fd(device.fd as RawFd) };
        Ok(DeviceFd { fd: file })
    }

    /// `KVM_IRQ_LINE`: with in-kernel XICS `irq` is the XICS source number.
    pub fn set_irq_line(&self, irq: u32, active: bool) -> Result<()> {
        let level = kvm_irq_level {
            irq,
            level: u32::from(active),
        };
        // SAFETY: the kernel reads a kvm_irq_level of the right layout.
        check(unsafe { ioctl_with_ref(&self.vm, KVM_IRQ_LINE, &level) })
    }

    /// `KVM_IOEVENTFD`: `len`-byte guest stores of `value` at guest-physical `addr` signal
    /// `fd` (assign), or no longer do (`deassign`, with the same arguments).
    pub fn ioeventfd(
        &self,
        fd: &impl AsRawFd,
        addr: u64,
        len: u32,
        value: u64,
        deassign: bool,
    ) -> Result<()> {
        let mut flags = KVM_IOEVENTFD_FLAG_DATAMATCH;
        if deassign {
            flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
        }
        let args = kvm_ioeventfd {
            datamatch: value,
            addr,
            len,
            fd: fd.as_raw_fd(),
            flags,
            pad: [0; 36],
        };
        // SAFETY: the kernel reads a kvm_ioeventfd of the right layout and takes its own
        // reference on the eventfd (closing ours later is fine).
        check(unsafe { ioctl_with_ref(&self.vm, KVM_IOEVENTFD, &args) })
    }

    /// `KVM_PPC_CONFIGURE_V3_MMU` (radix/hash and the process table, POWER9+).
    pub fn configure_v3_mmu(&self, cfg: &kvm_ppc_mmuv3_cfg) -> Result<()> {
        // SAFETY: the kernel reads a kvm_ppc_mmuv3_cfg of the right layout.
        check(unsafe { ioctl_with_ref(&self.vm, KVM_PPC_CONFIGURE_V3_MMU, cfg) })
    }

    /// `KVM_PPC_GET_CPU_CHAR`: the values for `H_GET_CPU_CHARACTERISTICS`.
    pub fn get_cpu_char(&self) -> Result<kvm_ppc_cpu_char> {
        let mut c = kvm_ppc_cpu_char::default();
        // SAFETY: the kernel writes a kvm_ppc_cpu_char of the right layout into `c`.
        check(unsafe { ioctl_with_mut_ref(&self.vm, KVM_PPC_GET_CPU_CHAR, &mut c) })?;
        Ok(c)
    }

    /// `KVM_PPC_GET_SMMU_INFO` (hash MMU page sizes).
    pub fn get_smmu_info(&self) -> Result<kvm_ppc_smmu_info> {
        let mut i = kvm_ppc_smmu_info::default();
        // SAFETY: the kernel writes a kvm_ppc_smmu_info of the right layout into `i`.
        check(unsafe { ioctl_with_mut_ref(&self.vm, KVM_PPC_GET_SMMU_INFO, &mut i) })?;
        Ok(i)
    }

    /// `KVM_PPC_GET_RMMU_INFO` (radix geometries and AP encodings).
    pub fn get_rmmu_info(&self) -> Result<kvm_ppc_rmmu_info> {
        let mut i = kvm_ppc_rmmu_info::default();
        // SAFETY: the kernel writes a kvm_ppc_rmmu_info of the right layout into `i`.
        check(unsafe { ioctl_with_mut_ref(&self.vm, KVM_PPC_GET_RMMU_INFO, &mut i) })?;
        Ok(i)
    }

    /// `KVM_PPC_ALLOCATE_HTAB`: create or clear the HPT; returns the order actually used.
    pub fn allocate_htab(&self, order: u32) -> Result<u32> {
        let mut o = order;
        // SAFETY: the kernel reads and writes one u32 at `o`.
        check(unsafe { ioctl_with_mut_ref(&self.vm, KVM_PPC_ALLOCATE_HTAB, &mut o) })?;
        Ok(o)
    }

    /// `KVM_PPC_GET_HTAB_FD`: a stream of the guest's HPT (see the spec, §2.7).
    pub fn get_htab_fd(&self, args: &kvm_get_htab_fd) -> Result<File> {
        // SAFETY: the kernel reads a kvm_get_htab_fd of the right layout.
        let fd = unsafe { ioctl_with_ref(&self.vm, KVM_PPC_GET_HTAB_FD, args) };
        if fd < 0 {
            return Err(errno::Error::last());
        }
        // SAFETY: on success the return value is a new fd that we now own.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// `KVM_PPC_RTAS_DEFINE_TOKEN`: the kernel serves RTAS `name` when called with `token`
    /// (only the XICS calls are known to it). Token 0 removes the mapping.
    pub fn rtas_define_token(&self, name: &str, token: u64) -> Result<()> {
        let mut args = kvm_rtas_token_args {
            name: [0; 120],
            token,
        };
        let bytes = name.as_bytes();
        if bytes.len() >= args.name.len() {
            return Err(errno::Error::new(libc::EINVAL));
        }
        args.name[..bytes.len()].copy_from_slice(bytes);
        // SAFETY: the kernel reads a NUL-terminated name and the token from `args`.
        check(unsafe { ioctl_with_ref(&self.vm, KVM_PPC_RTAS_DEFINE_TOKEN, &args) })
    }
}

impl AsRawFd for VmFd {
    fn as_raw_fd(&self) -> RawFd {
        self.vm.as_raw_fd()
    }
}

/// An in-kernel device (the XICS interrupt controller).
///
/// Attributes are set and read through typed helpers only: the raw `KVM_{SET,GET}_DEVICE_ATTR`
/// calls dereference a caller-chosen address and are not part of the safe API.
///
/// ```no_run
/// fn f(d: &vmm::kvm::DeviceFd, _a: &mut vmm::kvm::bindings::kvm_device_attr) {
///     let _ = d.get_attr_u64(1, 2); // the typed helper
/// }
/// ```
///
/// ```compile_fail
/// // A safe call that lets the kernel write through an arbitrary address must not compile.
/// fn f(d: &vmm::kvm::DeviceFd, a: &mut vmm::kvm::bindings::kvm_device_attr) {
///     let _ = d.get_device_attr(a);
/// }
/// ```
#[derive(Debug)]
pub struct DeviceFd {
    fd: File,
}

impl DeviceFd {
    /// `KVM_SET_DEVICE_ATTR`. The kernel dereferences `attr.addr`, which a safe signature
    /// could not vouch for: callers use the typed [`Self::set_attr_u64`].
    ///
    /// # Safety
    ///
    /// `attr.addr` must point at a live, readable value of the size the attribute has.
    unsafe fn set_device_attr(&self, attr: &kvm_device_attr) -> Result<()> {
        // SAFETY: the kernel reads a kvm_device_attr and then the value at `attr.addr`, which
        // the caller guarantees.
        check(unsafe { ioctl_with_ref(&self.fd, KVM_SET_DEVICE_ATTR, attr) })
    }

    /// `KVM_GET_DEVICE_ATTR`: the kernel writes the value at `attr.addr`.
    ///
    /// # Safety
    ///
    /// `attr.addr` must point at live, writable storage of the attribute's size.
    unsafe fn get_device_attr(&self, attr: &mut kvm_device_attr) -> Result<()> {
        // SAFETY: the kernel writes the value at `attr.addr`, which the caller guarantees.
        check(unsafe { ioctl_with_mut_ref(&self.fd, KVM_GET_DEVICE_ATTR, attr) })
    }

    /// `KVM_HAS_DEVICE_ATTR`.
    pub fn has_device_attr(&self, attr: &kvm_device_attr) -> Result<()> {
        // SAFETY: the kernel only reads `attr`.
        check(unsafe { ioctl_with_ref(&self.fd, KVM_HAS_DEVICE_ATTR, attr) })
    }

    /// Sets a 64-bit attribute (every XICS attribute is one).
    pub fn set_attr_u64(&self, group: u32, attr: u64, value: u64) -> Result<()> {
        let v = value;
        let a = kvm_device_attr {
            flags: 0,
            group,
            attr,
            addr: &v as *const u64 as u64,
        };
        // SAFETY: `addr` points at `v`, a u64 that lives across the call (every XICS attribute
        // is 64 bits).
        unsafe { self.set_device_attr(&a) }
    }

    /// Reads a 64-bit attribute.
    pub fn get_attr_u64(&self, group: u32, attr: u64) -> Result<u64> {
        let mut v = 0u64;
        let mut a = kvm_device_attr {
            flags: 0,
            group,
            attr,
            addr: &mut v as *mut u64 as u64,
        };
        // SAFETY: `addr` points at `v`, writable u64 storage that lives across the call.
        unsafe { self.get_device_attr(&mut a)? };
        Ok(v)
    }
}

impl AsRawFd for DeviceFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}
