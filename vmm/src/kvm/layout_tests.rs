//! Checks the Rust mirrors against the real kernel headers: the test writes a C file of
//! `_Static_assert`s (sizes, field offsets, ioctl numbers) from the Rust side and compiles it
//! with the powerpc64le cross compiler against `linux-libc-dev-ppc64el-cross`'s headers.
//! A mismatch is a compile error naming the field.

use super::bindings::*;
use super::ioctls::PPC64_TABLE;
use std::fmt::Write as _;
use std::io::Write as _;
use std::mem::{offset_of, size_of};
use std::process::{Command, Stdio};

const CC: &str = "powerpc64le-linux-gnu-gcc";

struct Asserts(String);

impl Asserts {
    fn eq(&mut self, c_expr: &str, rust: usize) {
        writeln!(
            self.0,
            "_Static_assert(({c_expr}) == {rust}UL, \"{}\");",
            c_expr.replace('"', "'")
        )
        .unwrap();
    }
    fn size(&mut self, c_type: &str, rust: usize) {
        self.eq(&format!("sizeof({c_type})"), rust);
    }
    fn off(&mut self, c_type: &str, field: &str, rust: usize) {
        self.eq(&format!("offsetof({c_type}, {field})"), rust);
    }
}

macro_rules! fields {
    ($a:expr, $c:literal, $t:ty { $($f:ident $(= $cf:literal)?),* $(,)? }) => {{
        $a.size($c, size_of::<$t>());
        $(fields!(@one $a, $c, $t, $f $(, $cf)?);)*
    }};
    (@one $a:expr, $c:literal, $t:ty, $f:ident) => { $a.off($c, stringify!($f), offset_of!($t, $f)) };
    (@one $a:expr, $c:literal, $t:ty, $f:ident, $cf:literal) => { $a.off($c, $cf, offset_of!($t, $f)) };
}

fn c_source() -> String {
    let mut a = Asserts(String::from(
        "#include <stddef.h>\n#include <linux/kvm.h>\n",
    ));
    fields!(
        a,
        "struct kvm_regs",
        kvm_regs {
            pc,
            cr,
            ctr,
            lr,
            xer,
            msr,
            srr0,
            srr1,
            pid,
            sprg0,
            sprg1,
            sprg2,
            sprg3,
            sprg4,
            sprg5,
            sprg6,
            sprg7,
            gpr
        }
    );
    a.size("struct kvm_sregs", size_of::<kvm_sregs>());
    a.off("struct kvm_sregs", "pvr", offset_of!(kvm_sregs, pvr));
    let s = offset_of!(kvm_sregs, s);
    a.off(
        "struct kvm_sregs",
        "u.s.sdr1",
        s + offset_of!(kvm_sregs_book3s, sdr1),
    );
    a.off(
        "struct kvm_sregs",
        "u.s.ppc64.slb",
        s + offset_of!(kvm_sregs_book3s, slb),
    );
    a.off(
        "struct kvm_sregs",
        "u.s.ppc64.slb[1].slbv",
        s + offset_of!(kvm_sregs_book3s, slb)
            + size_of::<kvm_sregs_slb>()
            + offset_of!(kvm_sregs_slb, slbv),
    );
    let p32 = s + offset_of!(kvm_sregs_book3s, ppc32);
    a.off(
        "struct kvm_sregs",
        "u.s.ppc32.sr",
        p32 + offset_of!(kvm_sregs_ppc32, sr),
    );
    a.off(
        "struct kvm_sregs",
        "u.s.ppc32.ibat",
        p32 + offset_of!(kvm_sregs_ppc32, ibat),
    );
    a.off(
        "struct kvm_sregs",
        "u.s.ppc32.dbat",
        p32 + offset_of!(kvm_sregs_ppc32, dbat),
    );
    fields!(a, "struct kvm_one_reg", kvm_one_reg { id, addr });
    fields!(
        a,
        "struct kvm_userspace_memory_region",
        kvm_userspace_memory_region {
            slot,
            flags,
            guest_phys_addr,
            memory_size,
            userspace_addr
        }
    );
    fields!(
        a,
        "struct kvm_enable_cap",
        kvm_enable_cap {
            cap,
            flags,
            args,
            pad
        }
    );
    fields!(a, "struct kvm_create_device", kvm_create_device { type_ = "type", fd, flags });
    fields!(
        a,
        "struct kvm_device_attr",
        kvm_device_attr {
            flags,
            group,
            attr,
            addr
        }
    );
    fields!(a, "struct kvm_irq_level", kvm_irq_level { irq, level });
    fields!(
        a,
        "struct kvm_ioeventfd",
        kvm_ioeventfd {
            datamatch,
            addr,
            len,
            fd,
            flags,
            pad
        }
    );
    a.eq(
        "KVM_IOEVENTFD_FLAG_DATAMATCH",
        KVM_IOEVENTFD_FLAG_DATAMATCH as usize,
    );
    a.eq(
        "KVM_IOEVENTFD_FLAG_DEASSIGN",
        KVM_IOEVENTFD_FLAG_DEASSIGN as usize,
    );
    a.eq("KVM_CAP_IRQFD", KVM_CAP_IRQFD as usize);
    a.eq("KVM_CAP_IOEVENTFD", KVM_CAP_IOEVENTFD as usize);
    a.eq("KVM_CAP_IRQFD_RESAMPLE", KVM_CAP_IRQFD_RESAMPLE as usize);
    fields!(a, "struct kvm_interrupt", kvm_interrupt { irq });
    fields!(
        a,
        "struct kvm_ppc_mmuv3_cfg",
        kvm_ppc_mmuv3_cfg {
            flags,
            process_table
        }
    );
    fields!(
        a,
        "struct kvm_get_htab_fd",
        kvm_get_htab_fd {
            flags,
            start_index,
            reserved
        }
    );
    fields!(
        a,
        "struct kvm_get_htab_header",
        kvm_get_htab_header {
            index,
            n_valid,
            n_invalid
        }
    );
    fields!(
        a,
        "struct kvm_ppc_cpu_char",
        kvm_ppc_cpu_char {
            character,
            behaviour,
            character_mask,
            behaviour_mask
        }
    );
    fields!(
        a,
        "struct kvm_create_spapr_tce_64",
        kvm_create_spapr_tce_64 {
            liobn,
            page_shift,
            flags,
            offset,
            size
        }
    );
    fields!(
        a,
        "struct kvm_rtas_token_args",
        kvm_rtas_token_args { name, token }
    );
    fields!(
        a,
        "struct kvm_ppc_one_page_size",
        kvm_ppc_one_page_size {
            page_shift,
            pte_enc
        }
    );
    fields!(
        a,
        "struct kvm_ppc_one_seg_page_size",
        kvm_ppc_one_seg_page_size {
            page_shift,
            slb_enc,
            enc
        }
    );
    fields!(
        a,
        "struct kvm_ppc_smmu_info",
        kvm_ppc_smmu_info {
            flags,
            slb_size,
            data_keys,
            instr_keys,
            sps
        }
    );
    fields!(
        a,
        "struct kvm_ppc_radix_geom",
        kvm_ppc_radix_geom {
            page_shift,
            level_bits,
            pad
        }
    );
    fields!(
        a,
        "struct kvm_ppc_rmmu_info",
        kvm_ppc_rmmu_info {
            geometries,
            ap_encodings
        }
    );
    fields!(
        a,
        "struct kvm_run",
        kvm_run {
            request_interrupt_window,
            immediate_exit,
            padding1,
            exit_reason,
            ready_for_interrupt_injection,
            if_flag,
            flags,
            cr8,
            apic_base,
            kvm_valid_regs,
            kvm_dirty_regs,
            s
        }
    );
    let e = offset_of!(kvm_run, exit);
    let run = "struct kvm_run";
    a.off(run, "hw.hardware_exit_reason", e);
    a.off(
        run,
        "fail_entry.hardware_entry_failure_reason",
        e + offset_of!(kvm_run_fail_entry, hardware_entry_failure_reason),
    );
    a.off(
        run,
        "fail_entry.cpu",
        e + offset_of!(kvm_run_fail_entry, cpu),
    );
    a.off(
        run,
        "mmio.phys_addr",
        e + offset_of!(kvm_run_mmio, phys_addr),
    );
    a.off(run, "mmio.data", e + offset_of!(kvm_run_mmio, data));
    a.off(run, "mmio.len", e + offset_of!(kvm_run_mmio, len));
    a.off(run, "mmio.is_write", e + offset_of!(kvm_run_mmio, is_write));
    a.off(
        run,
        "internal.suberror",
        e + offset_of!(kvm_run_internal, suberror),
    );
    a.off(
        run,
        "internal.ndata",
        e + offset_of!(kvm_run_internal, ndata),
    );
    a.off(run, "internal.data", e + offset_of!(kvm_run_internal, data));
    a.off(run, "papr_hcall.nr", e + offset_of!(kvm_run_papr_hcall, nr));
    a.off(
        run,
        "papr_hcall.ret",
        e + offset_of!(kvm_run_papr_hcall, ret),
    );
    a.off(
        run,
        "papr_hcall.args",
        e + offset_of!(kvm_run_papr_hcall, args),
    );
    a.off(
        run,
        "system_event.type",
        e + offset_of!(kvm_run_system_event, type_),
    );
    a.off(
        run,
        "system_event.ndata",
        e + offset_of!(kvm_run_system_event, ndata),
    );
    a.off(
        run,
        "system_event.data",
        e + offset_of!(kvm_run_system_event, data),
    );
    a.eq(
        "sizeof(((struct kvm_run *)0)->papr_hcall.args)",
        size_of::<[u64; 9]>(),
    );
    a.eq(
        "sizeof(((struct kvm_run *)0)->padding)",
        size_of::<kvm_run_exit>(),
    );

    // Constants whose value the kernel defines.
    for (c, v) in [
        ("KVM_API_VERSION", KVM_API_VERSION as u64),
        ("KVMIO", u64::from(KVMIO)),
        ("KVM_VM_PPC_HV", KVM_VM_PPC_HV),
        ("KVM_EXIT_PAPR_HCALL", u64::from(KVM_EXIT_PAPR_HCALL)),
        ("KVM_EXIT_MMIO", u64::from(KVM_EXIT_MMIO)),
        ("KVM_EXIT_INTR", u64::from(KVM_EXIT_INTR)),
        ("KVM_EXIT_NMI", u64::from(KVM_EXIT_NMI)),
        ("KVM_EXIT_SYSTEM_EVENT", u64::from(KVM_EXIT_SYSTEM_EVENT)),
        (
            "KVM_EXIT_INTERNAL_ERROR",
            u64::from(KVM_EXIT_INTERNAL_ERROR),
        ),
        ("KVM_EXIT_FAIL_ENTRY", u64::from(KVM_EXIT_FAIL_ENTRY)),
        ("KVM_CAP_PPC_PAPR", u64::from(KVM_CAP_PPC_PAPR)),
        ("KVM_CAP_ONE_REG", u64::from(KVM_CAP_ONE_REG)),
        ("KVM_CAP_IRQ_XICS", u64::from(KVM_CAP_IRQ_XICS)),
        (
            "KVM_CAP_PPC_ENABLE_HCALL",
            u64::from(KVM_CAP_PPC_ENABLE_HCALL),
        ),
        ("KVM_CAP_PPC_MMU_RADIX", u64::from(KVM_CAP_PPC_MMU_RADIX)),
        (
            "KVM_CAP_PPC_MMU_HASH_V3",
            u64::from(KVM_CAP_PPC_MMU_HASH_V3),
        ),
        ("KVM_CAP_IMMEDIATE_EXIT", u64::from(KVM_CAP_IMMEDIATE_EXIT)),
        (
            "KVM_CAP_PPC_GET_CPU_CHAR",
            u64::from(KVM_CAP_PPC_GET_CPU_CHAR),
        ),
        ("KVM_CAP_PPC_IRQ_LEVEL", u64::from(KVM_CAP_PPC_IRQ_LEVEL)),
        ("KVM_CAP_PPC_UNSET_IRQ", u64::from(KVM_CAP_PPC_UNSET_IRQ)),
        ("KVM_CAP_PPC_FWNMI", u64::from(KVM_CAP_PPC_FWNMI)),
        (
            "KVM_CAP_PPC_RPT_INVALIDATE",
            u64::from(KVM_CAP_PPC_RPT_INVALIDATE),
        ),
        ("KVM_CAP_MAX_VCPUS", u64::from(KVM_CAP_MAX_VCPUS)),
        ("KVM_DEV_TYPE_XICS", u64::from(KVM_DEV_TYPE_XICS)),
        (
            "KVM_DEV_XICS_GRP_SOURCES",
            u64::from(KVM_DEV_XICS_GRP_SOURCES),
        ),
        ("KVM_DEV_XICS_GRP_CTRL", u64::from(KVM_DEV_XICS_GRP_CTRL)),
        ("KVM_DEV_XICS_NR_SERVERS", KVM_DEV_XICS_NR_SERVERS),
        ("KVM_XICS_LEVEL_SENSITIVE", KVM_XICS_LEVEL_SENSITIVE),
        ("KVM_XICS_MASKED", KVM_XICS_MASKED),
        ("KVM_PPC_MMUV3_RADIX", KVM_PPC_MMUV3_RADIX),
        ("KVM_PPC_MMUV3_GTSE", KVM_PPC_MMUV3_GTSE),
        (
            "KVM_INTERRUPT_SET_LEVEL",
            u64::from(KVM_INTERRUPT_SET_LEVEL),
        ),
        ("KVM_INTERRUPT_UNSET", u64::from(KVM_INTERRUPT_UNSET)),
        ("KVM_REG_PPC_LPCR_64", KVM_REG_PPC_LPCR_64),
        ("KVM_REG_PPC_ARCH_COMPAT", KVM_REG_PPC_ARCH_COMPAT),
        ("KVM_REG_PPC_ONLINE", KVM_REG_PPC_ONLINE),
        ("KVM_REG_PPC_VPA_ADDR", KVM_REG_PPC_VPA_ADDR),
        ("KVM_REG_PPC_VPA_SLB", KVM_REG_PPC_VPA_SLB),
        ("KVM_REG_PPC_VPA_DTL", KVM_REG_PPC_VPA_DTL),
        ("KVM_REG_PPC_TB_OFFSET", KVM_REG_PPC_TB_OFFSET),
        ("KVM_REG_PPC_ICP_STATE", KVM_REG_PPC_ICP_STATE),
        ("KVM_REG_PPC_PSSCR", KVM_REG_PPC_PSSCR),
        ("KVM_REG_PPC_DEC_EXPIRY", KVM_REG_PPC_DEC_EXPIRY),
        ("KVM_REG_PPC_FPSCR", KVM_REG_PPC_FPSCR),
        ("KVM_REG_PPC_VSCR", KVM_REG_PPC_VSCR),
        ("KVM_REG_PPC_DAR", KVM_REG_PPC_DAR),
        ("KVM_REG_PPC_DSISR", KVM_REG_PPC_DSISR),
        ("KVM_REG_PPC_PTCR", KVM_REG_PPC_PTCR),
        ("KVM_REG_PPC_FPR(5)", kvm_reg_ppc_fpr(5)),
        ("KVM_REG_PPC_VSR(31)", kvm_reg_ppc_vsr(31)),
    ] {
        writeln!(a.0, "_Static_assert(({c}) == {v:#x}ULL, \"{c}\");").unwrap();
    }
    // The powerpc encoding of every request we issue.
    for (name, value) in PPC64_TABLE {
        writeln!(a.0, "_Static_assert({name} == {value:#x}UL, \"{name}\");").unwrap();
    }
    a.0
}

fn have_cross_compiler() -> bool {
    Command::new(CC)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn rust_layouts_and_ioctl_numbers_match_the_ppc64_kernel_headers() {
    if !have_cross_compiler() {
        eprintln!(
            "SKIPPED: {CC} not found; install gcc-powerpc64le-linux-gnu and \
             linux-libc-dev-ppc64el-cross (vmm/ci/ppc64-build-test.sh does) to check layouts"
        );
        return;
    }
    let src = c_source();
    let mut child = Command::new(CC)
        .args(["-std=c11", "-fsyntax-only", "-x", "c", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cross compiler");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(src.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "layout/ioctl mismatch against the kernel headers:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Guard against a vacuous pass: the file really holds the checks.
    assert!(src.matches("_Static_assert").count() > 150, "{src}");
}

/// A deliberately wrong assertion must fail to compile, proving the harness can fail.
#[test]
fn the_header_check_rejects_a_wrong_layout() {
    if !have_cross_compiler() {
        eprintln!("SKIPPED: {CC} not found");
        return;
    }
    let src = "#include <stddef.h>\n#include <linux/kvm.h>\n\
               _Static_assert(sizeof(struct kvm_regs) == 391UL, \"x\");\n";
    let mut child = Command::new(CC)
        .args(["-std=c11", "-fsyntax-only", "-x", "c", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(src.as_bytes())
        .unwrap();
    assert!(!child.wait().unwrap().success());
}
