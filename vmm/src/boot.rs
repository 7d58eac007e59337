//! Everything a (re)boot puts into guest memory: the kernel, the initramfs, the RTAS stub and
//! a fresh device tree. Pure over guest memory (no KVM), so it is unit-tested on any host;
//! `machine` calls it on every boot and then starts the boot vCPU with the returned
//! registers.

use crate::error::Error;
use crate::layout::{Layout, FDT_MAX_SIZE};
use crate::loader::{LoadedKernel, Ppc64Elf};
use crate::memory::staged::{Staging, StagingError};
use crate::memory::GuestMemory;
use crate::rtas_blob::write_rtas_stub;
use devicetree::{
    CpuModel, CpuTopology, HypertasFunction, InterruptController, MachineDescription, Mmu,
};
use firmware::{GuestRange, Property};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vm_memory::{Bytes, GuestMemoryBackend};

/// The kernel and initramfs, read once when the machine is built. Every boot (the first, a
/// reboot, the fadump capture boot) loads these bytes: a file changed, grown or deleted after
/// start-up can neither change what the guest boots nor make the capture boot fail and lose
/// a dump held only in guest RAM.
#[derive(Debug, Clone)]
pub struct BootImages {
    pub kernel_path: PathBuf,
    pub kernel: Vec<u8>,
    pub initramfs_path: Option<PathBuf>,
    pub initramfs: Option<Vec<u8>>,
}

impl BootImages {
    /// Reads both files whole.
    pub fn read(kernel: &Path, initramfs: Option<&Path>) -> Result<Self, Error> {
        let read = |p: &Path| {
            std::fs::read(p).map_err(|err| Error::File {
                path: p.to_path_buf(),
                err,
            })
        };
        Ok(BootImages {
            kernel_path: kernel.to_path_buf(),
            kernel: read(kernel)?,
            initramfs_path: initramfs.map(Path::to_path_buf),
            initramfs: initramfs.map(read).transpose()?,
        })
    }
}

/// What to boot.
#[derive(Debug, Clone)]
pub struct BootSpec<'a> {
    pub images: &'a BootImages,
    pub cmdline: &'a str,
    pub memory: u64,
    pub cpus: u32,
    pub cpu: &'a CpuModel,
    /// `/rtas` properties from the firmware (tokens, fadump state).
    pub rtas_properties: Vec<Property>,
    /// One `/pci@<buid>` node per PAPR PCI host bridge (none without disks).
    pub pci: &'a [devicetree::pci::PhbDescription],
    /// Radix, or hash with the HPT the VMM allocated.
    pub mmu: Mmu,
    /// Bytes from 0 the guest reaches in real mode (`memory` for radix; the VRMA for hash).
    /// When smaller than `memory`, the first `/memory` node ends there, which is how Linux
    /// learns its real-mode limit (`ppc64_rma_size`).
    pub rma_size: u64,
    /// With a memory hotplug window: `/ibm,dynamic-reconfiguration-memory` from the LMB
    /// table (the LMBs the guest owns ASSIGNED) and the root's DRC lists.
    pub drconf: Option<devicetree::Drconf>,
}

/// Where things went and how to enter the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootImage {
    pub layout: Layout,
    /// Boot vCPU `pc`.
    pub entry: u64,
    /// r3: the device tree.
    pub fdt_addr: u64,
    /// r4: the kernel's physical base.
    pub kernel_base: u64,
    /// Kernel bytes written (chunks memory already held unchanged are skipped).
    pub kernel_written: u64,
    /// How long each part of the load took (the capture boot's set-up is on the crash path).
    pub timings: LoadTimings,
    /// The kernel and initramfs came from [`StagedImages`] (moved in, not written).
    pub staged: bool,
    /// The device tree was the one built ahead ([`StagedImages`]) with only
    /// `ibm,kernel-dump` put in.
    pub tree_staged: bool,
    pub kernel_end: u64,
    pub dtb_len: usize,
}

/// Where [`load`] spends its time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadTimings {
    /// The kernel's segments copied (and their tails zeroed) into guest memory, or the staged
    /// pages moved in.
    pub kernel: std::time::Duration,
    /// The initramfs and the RTAS stub written.
    pub initrd: std::time::Duration,
    /// The device tree built and written.
    pub fdt: std::time::Duration,
    /// Of `fdt`, the write of the blob into guest memory.
    pub fdt_write: std::time::Duration,
}

/// Loads `spec` into `mem`.
pub fn load<M: GuestMemoryBackend>(mem: &M, spec: &BootSpec<'_>) -> Result<BootImage, Error> {
    let t = std::time::Instant::now();
    let (kernel, layout, kernel_done) = load_images(mem, spec, t)?;
    finish(mem, spec, kernel, layout, t, kernel_done, None)
}

/// The kernel and the initramfs written; returns the kernel, the layout around it and when the
/// kernel was done.
fn load_images<M: GuestMemoryBackend>(
    mem: &M,
    spec: &BootSpec<'_>,
    t: std::time::Instant,
) -> Result<(LoadedKernel, Layout, std::time::Duration), Error> {
    let images = spec.images;
    let kernel = Ppc64Elf::load_kernel(mem, 0, &mut Cursor::new(images.kernel.as_slice()))
        .map_err(|err| Error::Kernel {
            path: images.kernel_path.clone(),
            err,
        })?;
    let kernel_done = t.elapsed();
    let layout = layout_for(spec, &kernel)?;
    if let (Some(data), Some(r)) = (images.initramfs.as_ref(), layout.initrd) {
        mem.write_slice(data, r.start_addr())
            .map_err(|e| Error::Memory(e.to_string()))?;
    }
    Ok((kernel, layout, kernel_done))
}

fn layout_for(spec: &BootSpec<'_>, kernel: &LoadedKernel) -> Result<Layout, Error> {
    Ok(Layout::new(
        spec.memory,
        spec.rma_size,
        kernel.end.0,
        spec.images.initramfs.as_ref().map(|d| d.len() as u64),
    )?)
}

/// The RTAS stub and a fresh device tree written, after the images.
fn finish<M: GuestMemoryBackend>(
    mem: &M,
    spec: &BootSpec<'_>,
    kernel: LoadedKernel,
    layout: Layout,
    t: std::time::Instant,
    kernel_done: std::time::Duration,
    tree: Option<&StagedTree>,
) -> Result<BootImage, Error> {
    write_rtas_stub(mem, layout.rtas.start_addr()).map_err(|e| Error::Memory(e.to_string()))?;
    let initrd_done = t.elapsed();

    let desc = describe(spec, &layout);
    let ahead = tree.and_then(|s| s.tree_for(&desc, spec.pci, spec.drconf.as_ref()));
    let tree_staged = ahead.is_some();
    let dtb = match ahead {
        Some(dtb) => dtb,
        None => build_tree(&desc, spec.pci, spec.drconf.as_ref())?,
    };
    let built = t.elapsed();
    mem.write_slice(&dtb, layout.fdt.start_addr())
        .map_err(|e| Error::Memory(e.to_string()))?;
    Ok(BootImage {
        layout,
        entry: kernel.entry.0,
        fdt_addr: layout.fdt.start(),
        kernel_base: kernel.base.0,
        kernel_end: kernel.end.0,
        dtb_len: dtb.len(),
        kernel_written: kernel.written,
        timings: LoadTimings {
            kernel: kernel_done,
            initrd: initrd_done - kernel_done,
            fdt: t.elapsed() - initrd_done,
            fdt_write: t.elapsed() - built,
        },
        staged: false,
        tree_staged,
    })
}

/// What the device tree of a boot of `spec` with its images at `layout` describes.
fn describe(spec: &BootSpec<'_>, layout: &Layout) -> MachineDescription {
    let mmu = spec.mmu;
    MachineDescription {
        topology: CpuTopology::single_threaded(spec.cpus),
        cpu: spec.cpu.clone(),
        mmu,
        memory: memory_nodes(layout.ram, spec.rma_size),
        cmdline: spec.cmdline.to_string(),
        initrd: layout.initrd,
        rtas: layout.rtas,
        reservations: vec![],
        hypertas_functions: hypertas_functions(mmu, !spec.pci.is_empty()),
        interrupt_controller: InterruptController::KvmXics,
        vty_irq: None,
        event_sources: Some(crate::devices::irq::EVENT_SOURCE_IRQS),
        rtas_properties: spec.rtas_properties.clone(),
    }
}

/// The device tree blob of `desc`, `pci` and the memory hotplug window's `drconf`, refused
/// past the room the layout leaves it.
fn build_tree(
    desc: &MachineDescription,
    pci: &[devicetree::pci::PhbDescription],
    drconf: Option<&devicetree::Drconf>,
) -> Result<Vec<u8>, Error> {
    let dtb =
        devicetree::build_with(desc, pci, drconf).map_err(|e| Error::DeviceTree(e.to_string()))?;
    if dtb.len() as u64 > FDT_MAX_SIZE {
        return Err(Error::DeviceTree(format!(
            "{} bytes, more than the {FDT_MAX_SIZE} reserved",
            dtb.len()
        )));
    }
    Ok(dtb)
}

/// The `/rtas` property a capture boot's device tree gets from the dump.
const KERNEL_DUMP: &str = "ibm,kernel-dump";

/// `props` with `ibm,kernel-dump` empty: in its place when present, else last (where the
/// firmware puts it, after its other fadump properties).
fn with_empty_kernel_dump(props: &mut Vec<Property>) {
    let empty = firmware::PropValue::Bytes(Vec::new());
    match props.iter_mut().find(|p| p.name == KERNEL_DUMP) {
        Some(p) => p.value = empty,
        None => props.push(Property::new(KERNEL_DUMP, empty)),
    }
}

/// A capture boot's device tree built ahead, off the crash path, with `ibm,kernel-dump`
/// empty: at the crash only that property's value is put in ([`devicetree::blob::
/// replace_property`]), which gives the blob a fresh build would.
#[derive(Debug)]
struct StagedTree {
    /// What it describes (`ibm,kernel-dump` empty).
    desc: MachineDescription,
    pci: Vec<devicetree::pci::PhbDescription>,
    /// The LMBs it lists (a hot-add or remove after staging makes the crash build afresh).
    drconf: Option<devicetree::Drconf>,
    dtb: Vec<u8>,
}

impl StagedTree {
    fn new(spec: &BootSpec<'_>, layout: &Layout) -> Result<Self, Error> {
        let mut desc = describe(spec, layout);
        with_empty_kernel_dump(&mut desc.rtas_properties);
        let dtb = build_tree(&desc, spec.pci, spec.drconf.as_ref())?;
        Ok(StagedTree {
            desc,
            pci: spec.pci.to_vec(),
            drconf: spec.drconf.clone(),
            dtb,
        })
    }

    /// The blob for `desc` and `pci` when they differ from what was built only in the value
    /// of `ibm,kernel-dump` (which `desc` must have: a capture boot); `None` otherwise.
    fn tree_for(
        &self,
        desc: &MachineDescription,
        pci: &[devicetree::pci::PhbDescription],
        drconf: Option<&devicetree::Drconf>,
    ) -> Option<Vec<u8>> {
        let value = desc
            .rtas_properties
            .iter()
            .find(|p| p.name == KERNEL_DUMP)?
            .value
            .to_fdt_bytes();
        let mut d = desc.clone();
        with_empty_kernel_dump(&mut d.rtas_properties);
        if d != self.desc || pci != self.pci.as_slice() || drconf != self.drconf.as_ref() {
            return None;
        }
        let dtb = devicetree::blob::replace_property(&self.dtb, "/rtas", KERNEL_DUMP, &value)
            .inspect_err(|e| log::warn!("boot: staged device tree not usable: {e}"))
            .ok()?;
        (dtb.len() as u64 <= FDT_MAX_SIZE).then_some(dtb)
    }
}

/// `/rtas/ibm,hypertas-functions`: what KVM and the VMM serve, plus the TCE hcalls when there
/// is a PHB (its DMA windows are the only LIOBNs; `hcall-multi-tce` gives Linux
/// `H_PUT_TCE_INDIRECT` and `H_STUFF_TCE`, so mapping all of RAM into a DDW or clearing the
/// default window takes one call per 512 TCEs instead of one per TCE).
fn hypertas_functions(mmu: Mmu, pci: bool) -> Vec<HypertasFunction> {
    let mut v = HypertasFunction::implemented(mmu);
    if pci {
        v.extend([HypertasFunction::Tce, HypertasFunction::MultiTce]);
    }
    v
}

/// The kernel and initramfs loaded ahead of time into host pages of their own
/// ([`Staging`]), for the next boot to take in one page move instead of comparing and writing
/// them, and the capture boot's device tree built ahead ([`StagedTree`]): the capture boot's
/// set-up is on the crash path.
#[derive(Debug)]
pub struct StagedImages {
    staging: Arc<Staging>,
    kernel: LoadedKernel,
    /// An install started ahead ([`StagedImages::start_install`]), joined by the boot.
    installing: Option<std::thread::JoinHandle<Result<(), StagingError>>>,
    /// The staging area holds the images (it is empty right after an install).
    filled: bool,
    /// The capture boot's device tree (`None` when it could not be built: the boot builds
    /// one).
    tree: Option<StagedTree>,
}

impl StagedImages {
    /// Loads the images of `spec` into a new staging area covering `[0, end)` (`end`: where
    /// the last image ends, from a [`BootImage`] of the same spec) with huge pages of `huge`
    /// bytes.
    pub fn new(spec: &BootSpec<'_>, end: u64, huge: u64) -> Result<Self, Error> {
        let staging = Staging::new(end, huge).map_err(|e| Error::Memory(e.to_string()))?;
        let t = std::time::Instant::now();
        let (kernel, layout, _) = load_images(staging.mem(), spec, t)?;
        let last = layout.initrd.map_or(kernel.end.0, |r| r.end());
        if last > staging.len() {
            return Err(Error::Memory(format!(
                "the images end at {last:#x}, past the {:#x} bytes staged",
                staging.len()
            )));
        }
        Ok(StagedImages {
            staging: Arc::new(staging),
            kernel,
            installing: None,
            filled: true,
            tree: staged_tree(spec, &layout),
        })
    }

    /// Loads the images again after an install emptied the staging area, and builds the
    /// capture boot's device tree again for `spec` when it describes something else.
    pub fn refill(&mut self, spec: &BootSpec<'_>) -> Result<(), Error> {
        if !self.filled {
            let t = std::time::Instant::now();
            let (kernel, layout, _) = load_images(self.staging.mem(), spec, t)?;
            self.kernel = kernel;
            self.filled = true;
            self.tree = staged_tree(spec, &layout);
        } else if !self.tree_matches(spec) {
            let layout = layout_for(spec, &self.kernel)?;
            self.tree = staged_tree(spec, &layout);
        }
        Ok(())
    }

    /// True when the next [`load_staged`] can install the images.
    pub fn is_filled(&self) -> bool {
        self.filled
    }

    /// Starts moving the staged images under guest RAM `[0, len)` on a thread of its own, so
    /// the move runs beside the partition reset; the next [`load_staged`] waits for it. Only
    /// with every vCPU stopped and nothing else to touch that memory until then (the crash
    /// path after the dump). Nothing happens when the area is empty or a move is under way.
    pub fn start_install(&mut self, mem: &GuestMemory) {
        if !self.filled || self.installing.is_some() {
            return;
        }
        let (staging, guest) = (self.staging.clone(), mem.clone());
        match std::thread::Builder::new()
            .name("boot-install".into())
            .spawn(move || staging.install(&guest))
        {
            Ok(h) => self.installing = Some(h),
            Err(e) => log::warn!("boot: staged images installed at the boot instead ({e})"),
        }
    }

    /// Bytes of guest RAM from 0 an install replaces.
    pub fn staged_len(&self) -> u64 {
        self.staging.len()
    }

    /// The install started ahead, waited for: `None` if none was started.
    fn join_install(&mut self) -> Option<Result<(), StagingError>> {
        let h = self.installing.take()?;
        Some(
            h.join()
                .unwrap_or_else(|_| Err(StagingError::Map("the install thread panicked".into()))),
        )
    }

    /// True when the staged device tree is the one a capture boot of `spec` (whatever its
    /// `ibm,kernel-dump`) would use.
    pub fn tree_matches(&self, spec: &BootSpec<'_>) -> bool {
        let Some(t) = &self.tree else {
            return false;
        };
        let Ok(layout) = layout_for(spec, &self.kernel) else {
            return false;
        };
        let mut desc = describe(spec, &layout);
        with_empty_kernel_dump(&mut desc.rtas_properties);
        desc == t.desc && spec.pci == t.pci.as_slice()
    }
}

/// Copies boot memory as [`CopyPreserver`] does, and starts the staged images' install
/// ([`StagedImages::start_install`]) as soon as guest RAM `[0, staged_len)` is no longer
/// needed: once the copy section whose source holds it has copied that head, when nothing
/// later in the dump reads it (no kept range there) and no dump destination lies in it
/// (checked by the caller, [`InstallAfterHead::new`]). The move of the images' pages, most of
/// the capture boot's set-up, then runs beside the copy of the rest of boot memory. The
/// firmware's dump cannot fail once a copy section is being preserved (errors become section
/// flags), so a started install always leads to the capture boot.
///
/// [`CopyPreserver`]: firmware::fadump::CopyPreserver
pub struct InstallAfterHead<'a> {
    staged: &'a mut StagedImages,
    guest: &'a GuestMemory,
    head: GuestRange,
    started: bool,
}

impl<'a> InstallAfterHead<'a> {
    /// `None` when the install cannot start early: nothing staged, or a dump destination
    /// (of the registration about to be dumped) inside the staged range.
    pub fn new(
        staged: &'a mut StagedImages,
        guest: &'a GuestMemory,
        destinations: &[GuestRange],
    ) -> Option<Self> {
        let head = GuestRange::new(0, staged.staged_len()).filter(|r| !r.is_empty())?;
        if !staged.filled || destinations.iter().any(|d| d.overlaps(&head)) {
            return None;
        }
        Some(Self {
            staged,
            guest,
            head,
            started: false,
        })
    }

    /// True once the install was started.
    pub fn started(&self) -> bool {
        self.started
    }
}

impl firmware::fadump::Preserver<GuestMemory> for InstallAfterHead<'_> {
    fn preserve(
        &mut self,
        mem: &GuestMemory,
        mv: &firmware::fadump::Move,
        keep: &[GuestRange],
    ) -> Result<firmware::fadump::Outcome, firmware::memory::CopyError> {
        use firmware::fadump::{CopyPreserver, Move};
        let split = !self.started
            && mv.src.start() == 0
            && mv.src.len() >= self.head.len()
            && !keep.iter().any(|k| k.overlaps(&self.head));
        if !split {
            return CopyPreserver.preserve(mem, mv, keep);
        }
        let first = Move {
            src: self.head,
            ..*mv
        };
        let mut done = CopyPreserver.preserve(mem, &first, keep)?;
        self.staged.start_install(self.guest);
        self.started = true;
        if let Some(rest) = GuestRange::new(self.head.len(), mv.src.len() - self.head.len())
            .filter(|r| !r.is_empty())
        {
            let second = Move {
                src: rest,
                dst: mv.dst + self.head.len(),
                ..*mv
            };
            done.add(CopyPreserver.preserve(mem, &second, keep)?);
        }
        Ok(done)
    }
}

/// The capture boot's device tree for `spec` at `layout`, or `None` (logged) when it cannot
/// be built ahead.
fn staged_tree(spec: &BootSpec<'_>, layout: &Layout) -> Option<StagedTree> {
    StagedTree::new(spec, layout)
        .inspect_err(|e| log::warn!("boot: capture device tree not built ahead: {e}"))
        .ok()
}

/// [`load`] for the machine's guest RAM: the kernel and initramfs come from `staged` when it
/// holds them (one page move; guest RAM `[0, end of the initramfs)` gets the staged pages and
/// its old ones are freed), else they are written as by [`load`]. The RTAS stub and the device
/// tree are written either way.
pub fn load_staged(
    mem: &GuestMemory,
    spec: &BootSpec<'_>,
    staged: Option<&mut StagedImages>,
) -> Result<BootImage, Error> {
    let t = std::time::Instant::now();
    if let Some(s) = staged.filter(|s| s.filled) {
        s.filled = false;
        let installed = match s.join_install() {
            Some(r) => r,
            None => s.staging.install(mem),
        };
        match installed {
            Ok(()) => {
                let mut kernel = s.kernel;
                kernel.written = 0;
                let layout = layout_for(spec, &kernel)?;
                let kernel_done = t.elapsed();
                let mut img = finish(mem, spec, kernel, layout, t, kernel_done, s.tree.as_ref())?;
                img.staged = true;
                return Ok(img);
            }
            Err(e) => log::warn!("boot: staged images not installed ({e}): loading them"),
        }
    }
    load(mem, spec)
}

/// The `/memory` nodes: all of RAM, split at the end of the real-mode area when that is
/// smaller.
fn memory_nodes(ram: GuestRange, rma_size: u64) -> Vec<GuestRange> {
    match (
        GuestRange::new(0, rma_size),
        GuestRange::new(rma_size, ram.len().saturating_sub(rma_size)),
    ) {
        (Some(low), Some(high)) if rma_size < ram.len() => vec![low, high],
        _ => vec![ram],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::tests::make_elf;
    use crate::rtas_blob::RTAS_STUB;
    use devicetree::blob::{boot_cpuid_phys, find_property, reservations};
    use firmware::fadump::FadumpConfig;
    use firmware::rtas::Rtas;
    use vm_memory::{GuestAddress, GuestMemoryMmap};
    use vmm_sys_util::tempfile::TempFile;

    fn file_with(bytes: &[u8]) -> TempFile {
        let t = TempFile::new().unwrap();
        std::fs::write(t.as_path(), bytes).unwrap();
        t
    }

    fn be32(v: &[u8]) -> u32 {
        u32::from_be_bytes(v[..4].try_into().unwrap())
    }

    #[test]
    fn loads_kernel_initrd_stub_and_a_device_tree_that_points_at_them() {
        let ram = 128u64 << 20;
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), ram as usize)]).unwrap();
        let code: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
        let kernel = file_with(&make_elf(0, &code, 0x3000, 0x10));
        let initrd_bytes = b"070701 pretend cpio".repeat(100);
        let initrd = file_with(&initrd_bytes);
        let cpu = CpuModel::new("POWER9", 0x004e_1202);
        let rtas = Rtas::new(FadumpConfig {
            max_cpus: 2,
            hpte_capacity: 0,
            rma_size: ram,
            firmware_reserved: vec![],
        });
        let images = BootImages::read(kernel.as_path(), Some(initrd.as_path())).unwrap();
        let spec = BootSpec {
            images: &images,
            cmdline: "console=hvc0 rdinit=/init",
            memory: ram,
            cpus: 2,
            cpu: &cpu,
            rtas_properties: rtas.properties(),
            pci: &[],
            mmu: Mmu::Radix { gtse: true },
            rma_size: ram,
            drconf: None,
        };
        let img = load(&mem, &spec).unwrap();
        assert_eq!(
            (img.entry, img.kernel_base, img.kernel_end),
            (0x10, 0, 0x1000 + 0x3000)
        );

        // Kernel bytes, initrd bytes and the RTAS stub are where the image says.
        let mut k = vec![0u8; code.len()];
        mem.read_slice(&mut k, GuestAddress(0)).unwrap();
        assert_eq!(k, code);
        let ir = img.layout.initrd.unwrap();
        assert!(ir.start() >= img.kernel_end && ir.start() % 0x10000 == 0);
        let mut i = vec![0u8; initrd_bytes.len()];
        mem.read_slice(&mut i, ir.start_addr()).unwrap();
        assert_eq!(i, initrd_bytes);
        let mut stub = [0u8; 4];
        mem.read_slice(&mut stub, img.layout.rtas.start_addr())
            .unwrap();
        assert_eq!(u32::from_be_bytes(stub), RTAS_STUB[0]);

        // The device tree in guest memory describes exactly that.
        let mut dtb = vec![0u8; img.dtb_len];
        mem.read_slice(&mut dtb, GuestAddress(img.fdt_addr))
            .unwrap();
        assert_eq!(be32(&dtb), 0xd00d_feed);
        assert_eq!(boot_cpuid_phys(&dtb), Some(0));
        let chosen = |n| find_property(&dtb, "/chosen", n).unwrap_or_else(|| panic!("{n}"));
        assert_eq!(chosen("bootargs"), b"console=hvc0 rdinit=/init\0");
        let start = chosen("linux,initrd-start");
        let end = chosen("linux,initrd-end");
        let cell = |v: &[u8]| {
            if v.len() == 8 {
                u64::from_be_bytes(v.try_into().unwrap())
            } else {
                u64::from(be32(v))
            }
        };
        assert_eq!(
            (cell(&start), cell(&end)),
            (ir.start(), ir.start() + initrd_bytes.len() as u64)
        );
        let rtas_base = find_property(&dtb, "/rtas", "linux,rtas-base").unwrap();
        assert_eq!(u64::from(be32(&rtas_base)), img.layout.rtas.start());
        assert!(find_property(&dtb, "/rtas", "start-cpu").is_some());
        let res = reservations(&dtb).unwrap();
        assert!(
            res.contains(&(img.layout.rtas.start(), img.layout.rtas.len())),
            "{res:x?}"
        );
    }

    /// A one-vCPU radix guest of 64 MiB with an empty command line.
    fn radix_64m<'a>(images: &'a BootImages, cpu: &'a CpuModel) -> BootSpec<'a> {
        BootSpec {
            images,
            cmdline: "",
            memory: 64 << 20,
            cpus: 1,
            cpu,
            rtas_properties: vec![],
            pci: &[],
            mmu: Mmu::Radix { gtse: true },
            rma_size: 64 << 20,
            drconf: None,
        }
    }

    #[test]
    fn missing_files_and_oversized_initrd_are_errors() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
        let cpu = CpuModel::new("POWER9", 0x004e_1202);
        let kernel = file_with(&make_elf(0, &[0; 64], 0, 0));
        let big = file_with(&vec![0u8; 70 << 20]);
        let missing = Path::new("/nonexistent/vmlinux");
        assert!(matches!(
            BootImages::read(missing, None),
            Err(Error::File { .. })
        ));
        assert!(matches!(
            BootImages::read(kernel.as_path(), Some(missing)),
            Err(Error::File { .. })
        ));
        let images = BootImages::read(kernel.as_path(), Some(big.as_path())).unwrap();
        assert!(matches!(
            load(&mem, &radix_64m(&images, &cpu)),
            Err(Error::Layout(_))
        ));
    }

    /// The capture boot after a fadump crash loads what was read at start-up: the files may
    /// have been replaced, grown past the layout or deleted since.
    #[test]
    fn later_boots_do_not_depend_on_the_files() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
        let cpu = CpuModel::new("POWER9", 0x004e_1202);
        let kernel = file_with(&make_elf(0, &[0x42; 4096], 0, 0x10));
        let initrd = file_with(b"the initramfs at start-up");
        let images = BootImages::read(kernel.as_path(), Some(initrd.as_path())).unwrap();
        let spec = radix_64m(&images, &cpu);
        let first = load(&mem, &spec).unwrap();
        std::fs::write(initrd.as_path(), vec![0u8; 70 << 20]).unwrap(); // grown past RAM
        std::fs::remove_file(kernel.as_path()).unwrap();
        let again = load(&mem, &spec).unwrap();
        // The same image in the same place (how long each load took may differ), and nothing
        // of the kernel needed writing again.
        assert!(first.kernel_written > 0);
        assert_eq!(again.kernel_written, 0);
        let untimed = |i: &BootImage| BootImage {
            timings: LoadTimings::default(),
            kernel_written: 0,
            ..i.clone()
        };
        assert_eq!(untimed(&first), untimed(&again));
        let ir = again.layout.initrd.unwrap();
        let mut b = vec![0u8; ir.len() as usize];
        mem.read_slice(&mut b, ir.start_addr()).unwrap();
        assert_eq!(b, b"the initramfs at start-up");
    }

    /// A guest of hosting size: 64 GiB, mapped without reserve (vm-memory maps anonymous RAM
    /// `MAP_NORESERVE`: only the pages the loader writes become resident, so this runs on a
    /// small x86 host). The layout keeps the
    /// firmware low, the device tree has one `/memory` node for all of it (two for hash,
    /// split at the VRMA), the PHB offers a DDW that maps all of it, and the fadump engine's
    /// configuration for it is what a 64 GiB partition needs.
    #[test]
    fn a_64_gib_guest_is_laid_out_and_described_without_allocating_it() {
        use crate::devices::phb::{IrqLine, Phb, PhbConfig};
        struct NoIrq;
        impl IrqLine for NoIrq {
            fn set_level(&self, _: u32, _: bool) {}
        }
        const G64: u64 = 64 << 30;
        let cli =
            crate::cli::parse(["--kernel", "k", "--memory", "64G"].map(String::from)).unwrap();
        let crate::cli::Command::Run { config, .. } = cli else {
            panic!("{cli:?}");
        };
        assert_eq!(config.memory, G64);
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), G64 as usize)]).unwrap();
        let kernel = file_with(&make_elf(0, &[0x60; 4096], 0x3000, 0x10));
        let images = BootImages::read(kernel.as_path(), None).unwrap();
        let cpu = CpuModel::new("POWER9", 0x004e_1202);
        let phb = Phb::new(PhbConfig::qemu_like(0), std::sync::Arc::new(NoIrq));
        let q = phb.dma().query(G64);
        assert_eq!(
            q.largest_block << 24,
            G64,
            "the DDW offered maps all 64 GiB"
        );
        let pci = [phb.description()];
        let node = |dtb: &[u8], n: &str| {
            let v = find_property(dtb, n, "reg").unwrap_or_else(|| panic!("{n}"));
            (
                u64::from_be_bytes(v[0..8].try_into().unwrap()),
                u64::from_be_bytes(v[8..16].try_into().unwrap()),
            )
        };
        for (mmu, rma, nodes) in [
            (
                Mmu::Radix { gtse: true },
                G64,
                vec![("/memory@0", (0, G64))],
            ),
            (
                Mmu::Hash {
                    htab_shift: crate::hash::sizing::order_for(G64, 12, 256 << 20),
                },
                crate::hash::sizing::rma_size(G64, 29, 12),
                vec![
                    ("/memory@0", (0, 1 << 34)),
                    ("/memory@400000000", (1 << 34, G64 - (1 << 34))),
                ],
            ),
        ] {
            let spec = BootSpec {
                images: &images,
                cmdline: "console=hvc0 fadump=on crashkernel=4G",
                memory: config.memory,
                cpus: 8,
                cpu: &cpu,
                rtas_properties: vec![],
                pci: &pci,
                mmu,
                rma_size: rma,
                drconf: None,
            };
            let img = load(&mem, &spec).unwrap();
            assert_eq!(img.layout.rtas.end(), crate::layout::LOW_TOP_MAX);
            let mut dtb = vec![0u8; img.dtb_len];
            mem.read_slice(&mut dtb, GuestAddress(img.fdt_addr))
                .unwrap();
            for (n, reg) in nodes {
                assert_eq!(node(&dtb, n), reg, "{mmu:?} {n}");
            }
            assert!(find_property(&dtb, "/chosen", "linux,iommu-off").is_none());
            let fadump = FadumpConfig {
                max_cpus: 8,
                hpte_capacity: match mmu {
                    Mmu::Hash { htab_shift } => crate::hash::sizing::entries(htab_shift),
                    Mmu::Radix { .. } => 0,
                },
                rma_size: crate::layout::low_top(G64, rma),
                firmware_reserved: vec![img.layout.rtas],
            };
            let props = Rtas::new(fadump).properties();
            assert!(props
                .iter()
                .any(|p| p.name == "ibm,configure-kernel-dump-sizes"));
        }
        // 2^29 bytes of HPT for 64 GiB (RAM/128); its VRMA is 16 GiB on 4 KiB host pages.
        assert_eq!(crate::hash::sizing::order_for(G64, 12, 256 << 20), 29);
    }

    /// The capture boot takes the kernel and initramfs from staged pages: the same bytes in the
    /// same place as a written load, whatever the crashed kernel left there; the staging area
    /// is refilled for the boot after.
    #[cfg_attr(
        target_arch = "powerpc64",
        ignore = "qemu-user has no MREMAP_DONTUNMAP"
    )]
    #[test]
    fn a_staged_boot_moves_in_the_same_images_a_load_writes() {
        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
        let cpu = CpuModel::new("POWER9", 0x004e_1202);
        let code: Vec<u8> = (0..3 << 16).map(|i| (i % 251) as u8).collect();
        let kernel = file_with(&make_elf(0, &code, 0x5000, 0x10));
        let initrd = file_with(&b"cpio".repeat(5000));
        let images = BootImages::read(kernel.as_path(), Some(initrd.as_path())).unwrap();
        let spec = radix_64m(&images, &cpu);
        let first = load(&mem, &spec).unwrap();
        let end = first.layout.initrd.unwrap().end();
        let mut staged = StagedImages::new(&spec, end, 2 << 20).unwrap();
        let image_bytes = |m: &GuestMemory| {
            let mut b = vec![0u8; end as usize];
            m.read_slice(&mut b, GuestAddress(0)).unwrap();
            b
        };
        let want = image_bytes(&mem);
        // The crashed kernel scribbled over its text, its bss and the initramfs.
        for at in [0x100u64, (3 << 16) + 0x10, end - 1] {
            mem.write_slice(&[0xee], GuestAddress(at)).unwrap();
        }
        let again = load_staged(&mem, &spec, Some(&mut staged)).unwrap();
        assert!(again.staged && !staged.is_filled());
        assert_eq!(again.kernel_written, 0);
        assert_eq!(image_bytes(&mem), want);
        assert_eq!(
            (again.entry, again.layout, again.fdt_addr),
            (first.entry, first.layout, first.fdt_addr)
        );
        // Emptied by the install: the next boot writes, until the area is refilled.
        mem.write_slice(&[0xee], GuestAddress(0x100)).unwrap();
        let written = load_staged(&mem, &spec, Some(&mut staged)).unwrap();
        assert!(!written.staged && written.kernel_written > 0);
        staged.refill(&spec).unwrap();
        mem.write_slice(&[0xee], GuestAddress(0x100)).unwrap();
        assert!(load_staged(&mem, &spec, Some(&mut staged)).unwrap().staged);
        assert_eq!(image_bytes(&mem), want);

        // An install started ahead (beside the reset) is what the boot then uses.
        staged.refill(&spec).unwrap();
        mem.write_slice(&[0xee], GuestAddress(0x100)).unwrap();
        staged.start_install(&mem);
        staged.start_install(&mem); // a second start while one runs changes nothing
        let ahead = load_staged(&mem, &spec, Some(&mut staged)).unwrap();
        assert!(ahead.staged && !staged.is_filled());
        assert_eq!(image_bytes(&mem), want);
        // Nothing to install: a start does nothing, the boot writes.
        staged.start_install(&mem);
        mem.write_slice(&[0xee], GuestAddress(0x100)).unwrap();
        assert!(!load_staged(&mem, &spec, Some(&mut staged)).unwrap().staged);
        assert_eq!(image_bytes(&mem), want);
    }

    /// The capture boot's device tree, built ahead when the images were staged and patched
    /// with the dump's `ibm,kernel-dump` at the crash, is byte for byte the tree a fresh build
    /// of the same state gives; a state that differs in anything else gets a fresh build.
    #[cfg_attr(
        target_arch = "powerpc64",
        ignore = "qemu-user has no MREMAP_DONTUNMAP"
    )]
    #[test]
    fn the_staged_capture_tree_is_the_tree_a_fresh_build_gives() {
        use crate::devices::phb::{IrqLine, Phb, PhbConfig};
        struct NoIrq;
        impl IrqLine for NoIrq {
            fn set_level(&self, _: u32, _: bool) {}
        }
        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
        let cpu = CpuModel::new("POWER9", 0x004e_1202);
        let kernel = file_with(&make_elf(0, &[0x60; 1 << 16], 0x5000, 0x10));
        let initrd = file_with(&b"cpio".repeat(5000));
        let images = BootImages::read(kernel.as_path(), Some(initrd.as_path())).unwrap();
        let pci = [Phb::new(PhbConfig::qemu_like(0), std::sync::Arc::new(NoIrq)).description()];
        let rtas = Rtas::new(FadumpConfig {
            max_cpus: 2,
            hpte_capacity: 0,
            rma_size: 64 << 20,
            firmware_reserved: vec![],
        });
        // Staged while the production kernel runs: no dump yet.
        let production = BootSpec {
            cmdline: "console=hvc0 fadump=on",
            rtas_properties: rtas.properties(),
            pci: &pci,
            cpus: 2,
            ..radix_64m(&images, &cpu)
        };
        let first = load(&mem, &production).unwrap();
        let end = first.layout.initrd.unwrap().end();
        let mut staged = StagedImages::new(&production, end, 2 << 20).unwrap();
        assert!(staged.tree_matches(&production));

        // The crash: the firmware now publishes the dump structure.
        let dump: Vec<u8> = (0..0x1a8u32).map(|i| i as u8).collect();
        let mut props = rtas.properties();
        props.push(Property::new(
            "ibm,kernel-dump",
            firmware::PropValue::Bytes(dump),
        ));
        let capture = BootSpec {
            rtas_properties: props,
            ..production.clone()
        };
        assert!(
            staged.tree_matches(&capture),
            "differs only in ibm,kernel-dump"
        );
        let dtb_of = |img: &BootImage| {
            let mut b = vec![0u8; img.dtb_len];
            mem.read_slice(&mut b, GuestAddress(img.fdt_addr)).unwrap();
            b
        };
        let img = load_staged(&mem, &capture, Some(&mut staged)).unwrap();
        assert!(img.staged && img.tree_staged);
        let fresh = build_tree(&describe(&capture, &img.layout), &pci, None).unwrap();
        assert_eq!(dtb_of(&img), fresh);
        assert_eq!(
            find_property(&fresh, "/rtas", "ibm,kernel-dump")
                .unwrap()
                .len(),
            0x1a8
        );

        // Anything else changed (here the command line): built fresh, still right.
        staged.refill(&production).unwrap();
        let other = BootSpec {
            cmdline: "console=hvc0 fadump=on quiet",
            ..capture.clone()
        };
        assert!(!staged.tree_matches(&other));
        let img = load_staged(&mem, &other, Some(&mut staged)).unwrap();
        assert!(img.staged && !img.tree_staged);
        assert_eq!(
            dtb_of(&img),
            build_tree(&describe(&other, &img.layout), &pci, None).unwrap()
        );
        // And a boot without a dump (a reboot) never takes the tree built for a capture.
        staged.refill(&production).unwrap();
        let img = load_staged(&mem, &production, Some(&mut staged)).unwrap();
        assert!(img.staged && !img.tree_staged);
        assert!(find_property(&dtb_of(&img), "/rtas", "ibm,kernel-dump").is_none());
    }

    /// The copy of boot memory preserves the crashed kernel's head before the staged images
    /// move over it, and the move starts early only when nothing else needs that head.
    #[cfg_attr(
        target_arch = "powerpc64",
        ignore = "qemu-user has no MREMAP_DONTUNMAP"
    )]
    #[test]
    fn the_images_move_in_only_after_the_dump_copied_what_they_replace() {
        use firmware::fadump::{Move, Preserver};
        let mem = GuestMemory::from_ranges(&[(GuestAddress(0), 64 << 20)]).unwrap();
        let cpu = CpuModel::new("POWER9", 0x004e_1202);
        let kernel = file_with(&make_elf(0, &[0x60; 1 << 16], 0x5000, 0x10));
        let initrd = file_with(&b"cpio".repeat(5000));
        let images = BootImages::read(kernel.as_path(), Some(initrd.as_path())).unwrap();
        let spec = radix_64m(&images, &cpu);
        let first = load(&mem, &spec).unwrap();
        let end = first.layout.initrd.unwrap().end();
        let mut staged = StagedImages::new(&spec, end, 2 << 20).unwrap();
        let len = staged.staged_len();
        let want = {
            let mut b = vec![0u8; end as usize];
            mem.read_slice(&mut b, GuestAddress(0)).unwrap();
            b
        };
        // The crashed kernel's memory: a pattern over its first 8 MiB.
        let crashed: Vec<u8> = (0..8u32 << 20).map(|i| (i % 241) as u8).collect();
        mem.write_slice(&crashed, GuestAddress(0)).unwrap();
        let dst = 32u64 << 20;
        let mv = Move {
            section: 2,
            src: GuestRange::new(0, 8 << 20).unwrap(),
            dst,
        };

        // A destination inside the staged range: no early start.
        let inside = [GuestRange::new(0x1000, 0x1000).unwrap()];
        assert!(InstallAfterHead::new(&mut staged, &mem, &inside).is_none());
        // A kept range (a later section's source) inside it: copied whole, not started.
        let mut p = InstallAfterHead::new(&mut staged, &mem, &[]).unwrap();
        let keep = [GuestRange::new(0x2000, 0x100).unwrap()];
        p.preserve(&mem, &mv, &keep).unwrap();
        assert!(!p.started());

        let mut p = InstallAfterHead::new(&mut staged, &mem, &[]).unwrap();
        let done = p.preserve(&mem, &mv, &[]).unwrap();
        assert!(p.started());
        assert_eq!(done.copied, 8 << 20);
        let img = load_staged(&mem, &spec, Some(&mut staged)).unwrap();
        assert!(img.staged);
        let mut got = vec![0u8; 8 << 20];
        mem.read_slice(&mut got, GuestAddress(dst)).unwrap();
        assert_eq!(got, crashed, "the dump holds the crashed kernel's memory");
        let mut b = vec![0u8; end as usize];
        mem.read_slice(&mut b, GuestAddress(0)).unwrap();
        assert_eq!(b, want, "guest RAM holds the staged images");
        assert!(len >= end);
    }

    /// A hash guest whose VRMA covers less than its RAM: the first memory node ends at the
    /// VRMA, the firmware sits below it, and the tree names the HPT size.
    #[test]
    fn hash_guest_gets_a_first_memory_node_that_ends_at_the_rma() {
        let ram = 256u64 << 20;
        let rma = 64u64 << 20;
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), ram as usize)]).unwrap();
        let kernel = file_with(&make_elf(0, &[0x60; 4096], 0x3000, 0x10));
        let cpu = CpuModel::new("POWER9", 0x004e_1202);
        let images = BootImages::read(kernel.as_path(), None).unwrap();
        let spec = BootSpec {
            images: &images,
            cmdline: "console=hvc0 disable_radix",
            memory: ram,
            cpus: 1,
            cpu: &cpu,
            rtas_properties: vec![],
            pci: &[],
            mmu: Mmu::Hash { htab_shift: 21 },
            rma_size: rma,
            drconf: None,
        };
        let img = load(&mem, &spec).unwrap();
        assert_eq!(img.layout.rtas.start() + img.layout.rtas.len(), rma);
        let mut dtb = vec![0u8; img.dtb_len];
        mem.read_slice(&mut dtb, GuestAddress(img.fdt_addr))
            .unwrap();
        let reg = |node: &str| {
            let v = find_property(&dtb, node, "reg").unwrap_or_else(|| panic!("{node}"));
            (
                u64::from_be_bytes(v[0..8].try_into().unwrap()),
                u64::from_be_bytes(v[8..16].try_into().unwrap()),
            )
        };
        assert_eq!(reg("/memory@0"), (0, rma));
        assert_eq!(reg("/memory@4000000"), (rma, ram - rma));
        let pft = find_property(&dtb, "/cpus/PowerPC,POWER9@0", "ibm,pft-size").unwrap();
        assert_eq!(pft, [0, 0, 0, 0, 0, 0, 0, 21]);

        // When the RMA covers all of RAM there is one node.
        assert_eq!(
            memory_nodes(GuestRange::new(0, ram).unwrap(), ram),
            vec![GuestRange::new(0, ram).unwrap()]
        );
    }
}
