//! vCPU fds ([`VcpuFd`]), the shared `kvm_run` page and the exits a ppc64 VMM sees.

use super::bindings::*;
use super::ioctls::*;
use super::Result;
use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use vmm_sys_util::errno;
use vmm_sys_util::ioctl::{ioctl_with_mut_ref, ioctl_with_ref};

/// The mmap of a vCPU fd whose first bytes are the `kvm_run` structure.
#[derive(Debug)]
struct RunMapping {
    ptr: NonNull<kvm_run>,
    size: usize,
}

// SAFETY: the mapping is plain shared memory owned by this struct; the only field touched from
// other threads is `immediate_exit`, and only through an `AtomicU8` (see `ImmediateExit`).
unsafe impl Send for RunMapping {}
// SAFETY: as above: cross-thread access is limited to the atomic `immediate_exit` byte.
unsafe impl Sync for RunMapping {}

impl Drop for RunMapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`size` describe a mapping created by `mmap` in `VcpuFd::new` that is
        // unmapped exactly once, here, after every user (VcpuFd, ImmediateExit) is gone.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.size) };
    }
}

/// A handle that can make a vCPU's next (or current) `KVM_RUN` return immediately; pair it with
/// a signal to the vCPU thread (see `vcpu::kick`). Cloneable and usable from any thread.
#[derive(Debug, Clone)]
pub struct ImmediateExit(Arc<RunMapping>);

impl ImmediateExit {
    /// A handle backed by an anonymous page instead of a vCPU mapping, for tests of code that
    /// kicks vCPUs.
    #[cfg(test)]
    pub(crate) fn for_test() -> Self {
        let size = std::mem::size_of::<kvm_run>();
        // SAFETY: a fresh private anonymous mapping, checked below and owned (and unmapped)
        // by the RunMapping.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        let ptr = NonNull::new(ptr.cast::<kvm_run>()).expect("mmap result");
        ImmediateExit(Arc::new(RunMapping { ptr, size }))
    }

    fn byte(&self) -> &AtomicU8 {
        // SAFETY: the mapping is alive while `self.0` is; `immediate_exit` is a u8 inside it,
        // so it is valid and aligned for an AtomicU8, and all concurrent accesses go through
        // atomics (the kernel only reads it at KVM_RUN entry).
        unsafe {
            AtomicU8::from_ptr(std::ptr::addr_of_mut!(
                (*self.0.ptr.as_ptr()).immediate_exit
            ))
        }
    }

    /// Sets or clears `kvm_run.immediate_exit`.
    pub fn set(&self, value: bool) {
        self.byte().store(u8::from(value), Ordering::SeqCst);
    }

    /// Current value.
    pub fn get(&self) -> bool {
        self.byte().load(Ordering::SeqCst) != 0
    }
}

/// Why `KVM_RUN` returned, borrowing the `kvm_run` page where the exit carries data
/// (kvm-ioctls' `VcpuExit`, ppc64 flavour).
#[derive(Debug)]
pub enum VcpuExit<'a> {
    /// `sc 1` from the guest: `nr` (r3) and `args` (r4..r12). Set `ret` (→ r3) and any output
    /// registers in `args` (→ r4..r12) before the next `run`.
    PaprHcall {
        nr: u64,
        args: &'a mut [u64; 9],
        ret: &'a mut u64,
    },
    /// Guest load from an address with no memory slot; fill `data`.
    MmioRead(u64, &'a mut [u8]),
    /// Guest store to an address with no memory slot.
    MmioWrite(u64, &'a [u8]),
    /// `KVM_RUN` was interrupted by a signal or by `immediate_exit` (-EINTR or KVM_EXIT_INTR).
    Intr,
    /// FWNMI machine check (only with `KVM_CAP_PPC_FWNMI`).
    Nmi,
    /// `KVM_EXIT_SYSTEM_EVENT` (type, data).
    SystemEvent(u32, &'a [u64]),
    /// `KVM_EXIT_FAIL_ENTRY` (hardware reason, cpu).
    FailEntry(u64, u32),
    /// `KVM_EXIT_INTERNAL_ERROR` (suberror).
    InternalError(u32),
    /// `KVM_EXIT_DEBUG`.
    Debug,
    /// `KVM_EXIT_SHUTDOWN`.
    Shutdown,
    /// `KVM_EXIT_UNKNOWN` (hardware exit reason).
    Unknown(u64),
    /// Any other exit reason.
    Unsupported(u32),
}

/// A KVM vCPU and its `kvm_run` mapping.
#[derive(Debug)]
pub struct VcpuFd {
    vcpu: File,
    run: Arc<RunMapping>,
}

fn check(ret: i32) -> Result<()> {
    if ret < 0 {
        Err(errno::Error::last())
    } else {
        Ok(())
    }
}

impl VcpuFd {
    pub(super) fn new(vcpu: File, run_size: usize) -> Result<Self> {
        if run_size < std::mem::size_of::<kvm_run>() {
            return Err(errno::Error::new(libc::EINVAL));
        }
        // SAFETY: a fresh shared mapping of the vCPU fd, as KVM documents; the result is
        // checked below and owned by `RunMapping`, which unmaps it on drop.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                run_size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                vcpu.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(errno::Error::last());
        }
        let ptr = NonNull::new(ptr.cast::<kvm_run>()).ok_or(errno::Error::new(libc::ENOMEM))?;
        Ok(VcpuFd {
            vcpu,
            run: Arc::new(RunMapping {
                ptr,
                size: run_size,
            }),
        })
    }

    /// A handle to this vCPU's `immediate_exit` flag for other threads.
    pub fn immediate_exit_handle(&self) -> ImmediateExit {
        ImmediateExit(self.run.clone())
    }

    /// Sets `kvm_run.immediate_exit` (kvm-ioctls' `set_kvm_immediate_exit`).
    pub fn set_kvm_immediate_exit(&self, value: u8) {
        self.immediate_exit_handle().set(value != 0);
    }

    /// The exit reason and the exit union of the `kvm_run` page, after a KVM_RUN.
    ///
    /// Never a `&mut kvm_run` as a whole: other threads store to `immediate_exit` (an
    /// `AtomicU8`, see [`ImmediateExit`]) at any time, and a `&mut` covering that byte would
    /// claim exclusive access it does not have. The projections below touch only
    /// `exit_reason` (read by value) and the `exit` union (borrowed mutably), neither of which
    /// overlaps `immediate_exit`.
    fn exit_area(&mut self) -> (u32, &mut kvm_run_exit) {
        let run = self.run.ptr.as_ptr();
        // SAFETY: the mapping is valid for `size >= size_of::<kvm_run>()` bytes while
        // `self.run` lives, so both field pointers are in bounds and aligned. Only this
        // thread (it holds `&mut self`) touches `exit_reason` and `exit` outside KVM_RUN, and
        // the kernel writes them only inside KVM_RUN, which also needs `&mut self`; the
        // returned borrow is tied to `&mut self`.
        unsafe {
            let reason = std::ptr::addr_of!((*run).exit_reason).read();
            (reason, &mut *std::ptr::addr_of_mut!((*run).exit))
        }
    }

    /// `KVM_GET_REGS`.
    pub fn get_regs(&self) -> Result<kvm_regs> {
        let mut regs = kvm_regs::default();
        // SAFETY: the kernel writes a kvm_regs of the right layout into `regs`.
        check(unsafe { ioctl_with_mut_ref(&self.vcpu, KVM_GET_REGS, &mut regs) })?;
        Ok(regs)
    }

    /// `KVM_SET_REGS`.
    pub fn set_regs(&self, regs: &kvm_regs) -> Result<()> {
        // SAFETY: the kernel reads a kvm_regs of the right layout.
        check(unsafe { ioctl_with_ref(&self.vcpu, KVM_SET_REGS, regs) })
    }

    /// `KVM_GET_SREGS` (book3s view: PVR, SDR1, SLB).
    pub fn get_sregs(&self) -> Result<kvm_sregs> {
        let mut sregs = kvm_sregs::default();
        // SAFETY: the kernel writes a kvm_sregs (1232 bytes) into `sregs`, which is that size.
        check(unsafe { ioctl_with_mut_ref(&self.vcpu, KVM_GET_SREGS, &mut sregs) })?;
        Ok(sregs)
    }

    /// `KVM_SET_SREGS`. On KVM-HV the PVR must be the host's.
    pub fn set_sregs(&self, sregs: &kvm_sregs) -> Result<()> {
        // SAFETY: the kernel reads a kvm_sregs of the right layout.
        check(unsafe { ioctl_with_ref(&self.vcpu, KVM_SET_SREGS, sregs) })
    }

    /// `KVM_ENABLE_CAP` on the vCPU (e.g. `KVM_CAP_PPC_PAPR`, `KVM_CAP_IRQ_XICS`).
    pub fn enable_cap(&self, cap: &kvm_enable_cap) -> Result<()> {
        // SAFETY: the kernel reads a kvm_enable_cap of the right layout.
        check(unsafe { ioctl_with_ref(&self.vcpu, KVM_ENABLE_CAP, cap) })
    }

    /// `KVM_GET_ONE_REG` into `data`, whose length must be the size encoded in `reg_id`.
    /// Returns the number of bytes written.
    pub fn get_one_reg(&self, reg_id: u64, data: &mut [u8]) -> Result<usize> {
        let size = kvm_reg_size(reg_id);
        if data.len() != size {
            return Err(errno::Error::new(libc::EINVAL));
        }
        let reg = kvm_one_reg {
            id: reg_id,
            addr: data.as_mut_ptr() as u64,
        };
        // SAFETY: `addr` points at `size` writable bytes, exactly what the kernel writes for
        // this id.
        check(unsafe { ioctl_with_ref(&self.vcpu, KVM_GET_ONE_REG, &reg) })?;
        Ok(size)
    }

    /// `KVM_SET_ONE_REG` from `data`, whose length must be the size encoded in `reg_id`.
    pub fn set_one_reg(&self, reg_id: u64, data: &[u8]) -> Result<usize> {
        let size = kvm_reg_size(reg_id);
        if data.len() != size {
            return Err(errno::Error::new(libc::EINVAL));
        }
        let reg = kvm_one_reg {
            id: reg_id,
            addr: data.as_ptr() as u64,
        };
        // SAFETY: `addr` points at `size` readable bytes, exactly what the kernel reads.
        check(unsafe { ioctl_with_ref(&self.vcpu, KVM_SET_ONE_REG, &reg) })?;
        Ok(size)
    }

    /// ONE_REG read of a 32- or 64-bit register, zero-extended.
    pub fn get_one_reg_u64(&self, reg_id: u64) -> Result<u64> {
        match kvm_reg_size(reg_id) {
            4 => {
                let mut b = [0u8; 4];
                self.get_one_reg(reg_id, &mut b)?;
                Ok(u32::from_ne_bytes(b).into())
            }
            8 => {
                let mut b = [0u8; 8];
                self.get_one_reg(reg_id, &mut b)?;
                Ok(u64::from_ne_bytes(b))
            }
            _ => Err(errno::Error::new(libc::EINVAL)),
        }
    }

    /// ONE_REG write of a 32- or 64-bit register (a 32-bit register rejects values ≥ 2^32).
    pub fn set_one_reg_u64(&self, reg_id: u64, value: u64) -> Result<()> {
        match kvm_reg_size(reg_id) {
            4 => {
                let v = u32::try_from(value).map_err(|_| errno::Error::new(libc::EINVAL))?;
                self.set_one_reg(reg_id, &v.to_ne_bytes()).map(|_| ())
            }
            8 => self.set_one_reg(reg_id, &value.to_ne_bytes()).map(|_| ()),
            _ => Err(errno::Error::new(libc::EINVAL)),
        }
    }

    /// ONE_REG write of a 128-bit pair (VPA SLB shadow / DTL: address, length), host order
    /// of the two doublewords as the kernel expects (`addr` first).
    pub fn set_one_reg_u128_pair(&self, reg_id: u64, first: u64, second: u64) -> Result<()> {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&first.to_ne_bytes());
        b[8..].copy_from_slice(&second.to_ne_bytes());
        self.set_one_reg(reg_id, &b).map(|_| ())
    }

    /// `KVM_INTERRUPT` (userspace interrupt controller only).
    pub fn interrupt(&self, irq: u32) -> Result<()> {
        let i = kvm_interrupt { irq };
        // SAFETY: the kernel reads a kvm_interrupt.
        check(unsafe { ioctl_with_ref(&self.vcpu, KVM_INTERRUPT, &i) })
    }

    /// `KVM_RUN`, then decode the exit. No floating-point or vector value of the calling
    /// thread is live across the call (see `run_ioctl`).
    pub fn run(&mut self) -> Result<VcpuExit<'_>> {
        let fd = self.vcpu.as_raw_fd();
        // SAFETY: KVM_RUN on our vCPU fd takes no argument; the kvm_run page it updates is
        // mapped for as long as `self` lives and is only read after the call returns.
        let ret = unsafe { run_ioctl(fd) };
        if ret < 0 {
            let err = errno::Error::new(-ret as i32);
            return if err.errno() == libc::EINTR {
                Ok(VcpuExit::Intr)
            } else {
                Err(err)
            };
        }
        let (reason, exit) = self.exit_area();
        // SAFETY (for each union read below): the kernel fills the union member that matches
        // `exit_reason`; every member is plain integers, valid for any bit pattern.
        Ok(match reason {
            KVM_EXIT_PAPR_HCALL => {
                // SAFETY: see above.
                let h = unsafe { &mut exit.papr_hcall };
                VcpuExit::PaprHcall {
                    nr: h.nr,
                    args: &mut h.args,
                    ret: &mut h.ret,
                }
            }
            KVM_EXIT_MMIO => {
                // SAFETY: see above.
                let m = unsafe { &mut exit.mmio };
                let len = (m.len as usize).min(m.data.len());
                if m.is_write != 0 {
                    VcpuExit::MmioWrite(m.phys_addr, &m.data[..len])
                } else {
                    VcpuExit::MmioRead(m.phys_addr, &mut m.data[..len])
                }
            }
            KVM_EXIT_INTR => VcpuExit::Intr,
            KVM_EXIT_NMI => VcpuExit::Nmi,
            KVM_EXIT_DEBUG => VcpuExit::Debug,
            KVM_EXIT_SHUTDOWN => VcpuExit::Shutdown,
            KVM_EXIT_SYSTEM_EVENT => {
                // SAFETY: see above.
                let e = unsafe { &exit.system_event };
                let n = (e.ndata as usize).min(e.data.len());
                VcpuExit::SystemEvent(e.type_, &e.data[..n])
            }
            KVM_EXIT_FAIL_ENTRY => {
                // SAFETY: see above.
                let f = unsafe { exit.fail_entry };
                VcpuExit::FailEntry(f.hardware_entry_failure_reason, f.cpu)
            }
            KVM_EXIT_INTERNAL_ERROR => {
                // SAFETY: see above.
                let i = unsafe { exit.internal };
                VcpuExit::InternalError(i.suberror)
            }
            // SAFETY: see above.
            KVM_EXIT_UNKNOWN => VcpuExit::Unknown(unsafe { exit.hardware_exit_reason }),
            other => VcpuExit::Unsupported(other),
        })
    }
}

impl AsRawFd for VcpuFd {
    fn as_raw_fd(&self) -> RawFd {
        self.vcpu.as_raw_fd()
    }
}

/// `ioctl(fd, KVM_RUN, 0)` as a raw `sc` with every FP/VMX/VSX register declared clobbered.
///
/// Trap 1 of test-environment.md: when the thread is rescheduled inside KVM_RUN, the kernel can
/// hand back the *guest's* floating-point and vector registers. Calling libc's `ioctl` would let
/// the compiler keep f64/SIMD values in the non-volatile f14-f31 / v20-v31 across the call.
/// Declaring vs0-vs63 (which cover f0-f31 and v0-v31) clobbered forces the compiler to spill
/// anything live to memory first. Returns the raw result (negative errno on failure).
///
/// # Safety
///
/// `fd` must be a vCPU fd whose `kvm_run` mapping is alive.
#[cfg(target_arch = "powerpc64")]
pub unsafe fn run_ioctl(fd: RawFd) -> i64 {
    // SAFETY: forwarded from the caller.
    unsafe { fp_clobbering_syscall3!(libc::SYS_ioctl, fd as i64, KVM_RUN as i64, 0i64) }
}

/// Non-powerpc builds only compile the KVM layer (there is no ppc64 KVM to call there).
///
/// # Safety
///
/// `fd` must be a vCPU fd whose `kvm_run` mapping is alive.
#[cfg(not(target_arch = "powerpc64"))]
pub unsafe fn run_ioctl(fd: RawFd) -> i64 {
    // SAFETY: KVM_RUN takes no argument; forwarded from the caller.
    let r = unsafe { libc::ioctl(fd, KVM_RUN as _, 0) };
    if r < 0 {
        -i64::from(errno::Error::last().errno())
    } else {
        i64::from(r)
    }
}

/// A three-argument Linux syscall on powerpc64 (`r0` = number, `r3..r5` = arguments, `sc`,
/// CR0[SO] set on error with the errno in r3) that declares every VSX register clobbered.
/// Optional leading instructions let the regression test simulate a kernel that returns with
/// foreign FP/vector contents.
#[cfg(target_arch = "powerpc64")]
macro_rules! fp_clobbering_syscall3 {
    ($nr:expr, $a0:expr, $a1:expr, $a2:expr $(, $pre:literal)*) => {{
        let ret: i64;
        core::arch::asm!(
            $($pre,)*
            "sc",
            "bns+ 2f",
            "neg 3, 3",
            "2:",
            inlateout("r0") $nr as i64 => _,
            inlateout("r3") $a0 => ret,
            inlateout("r4") $a1 => _,
            inlateout("r5") $a2 => _,
            out("r6") _, out("r7") _, out("r8") _, out("r9") _,
            out("r10") _, out("r11") _, out("r12") _,
            out("ctr") _, out("xer") _, out("cr0") _,
            out("vs0") _, out("vs1") _, out("vs2") _, out("vs3") _, out("vs4") _, out("vs5") _, out("vs6") _, out("vs7") _,
            out("vs8") _, out("vs9") _, out("vs10") _, out("vs11") _, out("vs12") _, out("vs13") _, out("vs14") _, out("vs15") _,
            out("vs16") _, out("vs17") _, out("vs18") _, out("vs19") _, out("vs20") _, out("vs21") _, out("vs22") _, out("vs23") _,
            out("vs24") _, out("vs25") _, out("vs26") _, out("vs27") _, out("vs28") _, out("vs29") _, out("vs30") _, out("vs31") _,
            out("vs32") _, out("vs33") _, out("vs34") _, out("vs35") _, out("vs36") _, out("vs37") _, out("vs38") _, out("vs39") _,
            out("vs40") _, out("vs41") _, out("vs42") _, out("vs43") _, out("vs44") _, out("vs45") _, out("vs46") _, out("vs47") _,
            out("vs48") _, out("vs49") _, out("vs50") _, out("vs51") _, out("vs52") _, out("vs53") _, out("vs54") _, out("vs55") _,
            out("vs56") _, out("vs57") _, out("vs58") _, out("vs59") _, out("vs60") _, out("vs61") _, out("vs62") _, out("vs63") _,
            options(nostack)
        );
        ret
    }};
}
#[cfg(target_arch = "powerpc64")]
pub(crate) use fp_clobbering_syscall3;

#[cfg(all(test, target_arch = "powerpc64"))]
mod tests {
    use std::hint::black_box;

    /// `getppid` through the same asm wrapper KVM_RUN uses, preceded by instructions that
    /// zero all 64 VSX registers, as a kernel returning the guest's FP/vector state would
    /// overwrite them. Twenty f64 values are kept live across the call; with the clobber list
    /// in place the compiler spills them and they survive. Removing the clobbers from
    /// `fp_clobbering_syscall3!` makes this test fail (checked when it was written).
    #[inline(never)]
    fn syscall_that_trashes_fp() -> i64 {
        // SAFETY: getppid has no arguments and no side effects; the prefix only writes VSX
        // registers, all declared clobbered.
        unsafe {
            super::fp_clobbering_syscall3!(
                libc::SYS_getppid, 0i64, 0i64, 0i64,
                "xxlxor 0, 0, 0\nxxlxor 1, 1, 1\nxxlxor 2, 2, 2\nxxlxor 3, 3, 3\nxxlxor 4, 4, 4\nxxlxor 5, 5, 5\nxxlxor 6, 6, 6\nxxlxor 7, 7, 7\nxxlxor 8, 8, 8\nxxlxor 9, 9, 9\nxxlxor 10, 10, 10\nxxlxor 11, 11, 11\nxxlxor 12, 12, 12\nxxlxor 13, 13, 13\nxxlxor 14, 14, 14\nxxlxor 15, 15, 15\nxxlxor 16, 16, 16\nxxlxor 17, 17, 17\nxxlxor 18, 18, 18\nxxlxor 19, 19, 19\nxxlxor 20, 20, 20\nxxlxor 21, 21, 21\nxxlxor 22, 22, 22\nxxlxor 23, 23, 23\nxxlxor 24, 24, 24\nxxlxor 25, 25, 25\nxxlxor 26, 26, 26\nxxlxor 27, 27, 27\nxxlxor 28, 28, 28\nxxlxor 29, 29, 29\nxxlxor 30, 30, 30\nxxlxor 31, 31, 31\nxxlxor 32, 32, 32\nxxlxor 33, 33, 33\nxxlxor 34, 34, 34\nxxlxor 35, 35, 35\nxxlxor 36, 36, 36\nxxlxor 37, 37, 37\nxxlxor 38, 38, 38\nxxlxor 39, 39, 39\nxxlxor 40, 40, 40\nxxlxor 41, 41, 41\nxxlxor 42, 42, 42\nxxlxor 43, 43, 43\nxxlxor 44, 44, 44\nxxlxor 45, 45, 45\nxxlxor 46, 46, 46\nxxlxor 47, 47, 47\nxxlxor 48, 48, 48\nxxlxor 49, 49, 49\nxxlxor 50, 50, 50\nxxlxor 51, 51, 51\nxxlxor 52, 52, 52\nxxlxor 53, 53, 53\nxxlxor 54, 54, 54\nxxlxor 55, 55, 55\nxxlxor 56, 56, 56\nxxlxor 57, 57, 57\nxxlxor 58, 58, 58\nxxlxor 59, 59, 59\nxxlxor 60, 60, 60\nxxlxor 61, 61, 61\nxxlxor 62, 62, 62\nxxlxor 63, 63, 63"
            )
        }
    }

    #[test]
    fn fp_values_survive_a_run_call_that_clobbers_every_vector_register() {
        let seed: Vec<f64> = (0..20)
            .map(|i| black_box(f64::from(i) * 1.5 + 0.25))
            .collect();
        let live: [f64; 20] = std::array::from_fn(|i| seed[i] * 2.0);
        let ppid = syscall_that_trashes_fp();
        assert!(ppid > 0, "getppid through the wrapper returned {ppid}");
        for (i, v) in live.iter().enumerate() {
            assert_eq!(
                *v,
                (i as f64 * 1.5 + 0.25) * 2.0,
                "f64 #{i} changed across the call"
            );
        }
    }

    #[test]
    fn wrapper_reports_errno_as_negative() {
        // SAFETY: close(-1) only fails with EBADF.
        let r = unsafe { super::fp_clobbering_syscall3!(libc::SYS_close, -1i64, 0i64, 0i64) };
        assert_eq!(r, -i64::from(libc::EBADF));
    }
}
