//! `/dev/kvm`: the [`Kvm`] handle (kvm-ioctls' `Kvm`, ppc64 subset).

use super::ioctls::*;
use super::vm::VmFd;
use super::Result;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use vmm_sys_util::errno;
use vmm_sys_util::ioctl::{ioctl, ioctl_with_val};

/// An open `/dev/kvm`.
#[derive(Debug)]
pub struct Kvm {
    kvm: File,
}

impl Kvm {
    /// Opens `/dev/kvm` read-write with `O_CLOEXEC`.
    pub fn new() -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags_cloexec()
            .open("/dev/kvm")
            .map_err(|e| errno::Error::new(e.raw_os_error().unwrap_or(libc::EIO)))?;
        Ok(Kvm { kvm: file })
    }

    /// `KVM_GET_API_VERSION` (12 on every supported kernel).
    pub fn get_api_version(&self) -> i32 {
        // SAFETY: KVM_GET_API_VERSION takes no argument and only returns a value; `self.kvm`
        // is an open /dev/kvm.
        unsafe { ioctl(&self.kvm, KVM_GET_API_VERSION) }
    }

    /// `KVM_CHECK_EXTENSION` on the system fd. On powerpc prefer [`VmFd::check_extension`]:
    /// HV and PR answer differently and only the VM fd knows which one it is.
    pub fn check_extension_raw(&self, cap: u32) -> i32 {
        // SAFETY: the argument is passed by value; the kernel only reads it.
        unsafe { ioctl_with_val(&self.kvm, KVM_CHECK_EXTENSION, cap.into()) }
    }

    /// `KVM_GET_VCPU_MMAP_SIZE`: the size of each vCPU fd's `kvm_run` mapping (a multiple of
    /// the host page size, 64 KiB on many POWER hosts).
    pub fn get_vcpu_mmap_size(&self) -> Result<usize> {
        // SAFETY: no argument; the return value is checked.
        let ret = unsafe { ioctl(&self.kvm, KVM_GET_VCPU_MMAP_SIZE) };
        if ret < 0 {
            return Err(errno::Error::last());
        }
        usize::try_from(ret).map_err(|_| errno::Error::new(libc::EINVAL))
    }

    /// `KVM_CREATE_VM` with a machine type ([`KVM_VM_PPC_HV`](super::bindings::KVM_VM_PPC_HV) to insist on KVM-HV).
    pub fn create_vm_with_type(&self, vm_type: u64) -> Result<VmFd> {
        // SAFETY: the type is passed by value; on success the kernel returns a new fd that
        // nothing else owns.
        let fd = unsafe { ioctl_with_val(&self.kvm, KVM_CREATE_VM, vm_type as libc::c_ulong) };
        if fd < 0 {
            return Err(errno::Error::last());
        }
        let mmap_size = self.get_vcpu_mmap_size()?;
        // SAFETY: `fd` is a fresh, valid file descriptor owned by nobody else.
        let vm = unsafe { File::from_raw_fd(fd) };
        Ok(VmFd::new(vm, mmap_size))
    }
}

impl AsRawFd for Kvm {
    fn as_raw_fd(&self) -> RawFd {
        self.kvm.as_raw_fd()
    }
}

trait CloexecExt {
    fn custom_flags_cloexec(&mut self) -> &mut Self;
}

impl CloexecExt for std::fs::OpenOptions {
    fn custom_flags_cloexec(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_CLOEXEC)
    }
}
