//! The device-tree properties that describe the LMB table (drmem.c, prom.c and numa.c read
//! them), and the node `ibm,configure-connector` streams for one LMB.
//!
//! * `/ibm,dynamic-reconfiguration-memory` ([`drconf_properties`]): `ibm,lmb-size`,
//!   `ibm,dynamic-memory-v2` (or v1), `ibm,associativity-lookup-arrays` (mandatory for
//!   hot-add: `update_lmb_associativity_index()` fails without it), `ibm,memory-flags-mask`,
//!   `ibm,memory-preservation-time`. Boot RAM (and any gap up to the window) is one RESERVED
//!   set without a DRC, as QEMU writes it; boot RAM itself stays in `/memory@0`.
//! * the root's `ibm,drc-indexes/-names/-types/-power-domains` ([`drc_root_properties`]):
//!   one entry per window LMB, `"LMB <id>"`, type `"MEM"`.
//! * `/rtas/ibm,lrdr-capacity` ([`lrdr_capacity`]): the end of the window, the LMB size and
//!   the vCPU count.

use super::table::LmbTable;
use super::LMB_SIZE;
use crate::properties::{PropValue, Property};
use crate::range::GuestRange;

/// `ibm,dynamic-memory*` flag: the LMB is the guest's memory.
pub const DRCONF_ASSIGNED: u32 = 0x08;
/// QEMU's flag for LMBs without a DRC (boot RAM).
pub const DRCONF_DRC_INVALID: u32 = 0x20;
/// The LMB is reserved (boot RAM): Linux never adds or removes it through DLPAR.
pub const DRCONF_RESERVED: u32 = 0x80;
/// The LMB may be hot-removed (Linux `memblock_mark_hotplug`).
pub const DRCONF_HOTREMOVABLE: u32 = 0x100;
/// `aa_index` for an LMB without associativity.
pub const AA_INDEX_NONE: u32 = u32::MAX;

/// `ibm,associativity` of an LMB node: FORM1, four levels, all node 0 (`<4 0 0 0 0>`).
pub const LMB_ASSOCIATIVITY: [u32; 5] = [4, 0, 0, 0, 0];

/// Which encoding of the LMB list to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DrconfFormat {
    /// `ibm,dynamic-memory`: one 24-byte cell per LMB.
    V1,
    /// `ibm,dynamic-memory-v2`: one 24-byte set per run of LMBs with the same flags.
    #[default]
    V2,
}

/// One run of consecutive LMBs with the same DRC-index step, associativity and flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LmbSet {
    /// LMBs in the run.
    pub count: u32,
    /// Address of the first.
    pub base: u64,
    /// DRC index of the first (0 for boot RAM); the others follow by one.
    pub drc_index: u32,
    /// Index into `ibm,associativity-lookup-arrays`, or [`AA_INDEX_NONE`].
    pub aa_index: u32,
    /// `DRCONF_*` flags.
    pub flags: u32,
}

/// The LMB list in address order: boot RAM and the gap up to the window as one reserved
/// set, then the window's LMBs grouped by ownership (owned ones ASSIGNED and hot-removable).
pub fn lmb_sets(t: &LmbTable) -> Vec<LmbSet> {
    let mut sets = Vec::new();
    if t.first_id() > 0 {
        sets.push(LmbSet {
            count: t.first_id(),
            base: 0,
            drc_index: 0,
            aa_index: AA_INDEX_NONE,
            flags: DRCONF_RESERVED | DRCONF_DRC_INVALID,
        });
    }
    let owned = t.owned();
    for k in 0..t.len() {
        let (aa_index, flags) = if owned.contains(&k) {
            (0, DRCONF_ASSIGNED | DRCONF_HOTREMOVABLE)
        } else {
            (AA_INDEX_NONE, 0)
        };
        match sets.last_mut() {
            Some(s) if s.drc_index != 0 && s.aa_index == aa_index && s.flags == flags => {
                s.count += 1
            }
            _ => sets.push(LmbSet {
                count: 1,
                base: t.range(k).start(),
                drc_index: t.drc_index(k),
                aa_index,
                flags,
            }),
        }
    }
    sets
}

fn u64_cells(v: u64) -> [u32; 2] {
    [(v >> 32) as u32, v as u32]
}

/// `ibm,dynamic-memory-v2`: a set count, then `{seq_lmbs, base(2), drc_index, aa_index, flags}`.
pub fn dynamic_memory_v2(sets: &[LmbSet]) -> Vec<u32> {
    let mut c = vec![sets.len() as u32];
    for s in sets {
        c.push(s.count);
        c.extend(u64_cells(s.base));
        c.extend([s.drc_index, s.aa_index, s.flags]);
    }
    c
}

/// `ibm,dynamic-memory` (v1): an LMB count, then `{base(2), drc_index, 0, aa_index, flags}`
/// for every LMB.
pub fn dynamic_memory_v1(sets: &[LmbSet]) -> Vec<u32> {
    let total: u32 = sets.iter().map(|s| s.count).sum();
    let mut c = vec![total];
    for s in sets {
        for j in 0..s.count {
            c.extend(u64_cells(s.base + u64::from(j) * LMB_SIZE));
            let index = if s.drc_index == 0 { 0 } else { s.drc_index + j };
            c.extend([index, 0, s.aa_index, s.flags]);
        }
    }
    c
}

/// The properties of `/ibm,dynamic-reconfiguration-memory` for `t`.
pub fn drconf_properties(t: &LmbTable, format: DrconfFormat) -> Vec<Property> {
    let sets = lmb_sets(t);
    let list = match format {
        DrconfFormat::V1 => Property::new(
            "ibm,dynamic-memory",
            PropValue::U32Cells(dynamic_memory_v1(&sets)),
        ),
        DrconfFormat::V2 => Property::new(
            "ibm,dynamic-memory-v2",
            PropValue::U32Cells(dynamic_memory_v2(&sets)),
        ),
    };
    // One lookup array of four entries (the associativity without its length cell).
    let mut lookup = vec![1, 4];
    lookup.extend(&LMB_ASSOCIATIVITY[1..]);
    vec![
        Property::new("ibm,lmb-size", PropValue::U64Cells(vec![LMB_SIZE])),
        list,
        Property::new(
            "ibm,associativity-lookup-arrays",
            PropValue::U32Cells(lookup),
        ),
        Property::u32("ibm,memory-flags-mask", 0xff),
        Property::u32("ibm,memory-preservation-time", 0),
    ]
}

/// The root's `ibm,drc-indexes`, `ibm,drc-names`, `ibm,drc-types`, `ibm,drc-power-domains`:
/// one entry per window LMB.
pub fn drc_root_properties(t: &LmbTable) -> Vec<Property> {
    let n = t.len() as u32;
    let strings = |f: &dyn Fn(usize) -> String| {
        let mut b = n.to_be_bytes().to_vec();
        for k in 0..t.len() {
            b.extend(f(k).as_bytes());
            b.push(0);
        }
        PropValue::Bytes(b)
    };
    let cells = |f: &dyn Fn(usize) -> u32| {
        PropValue::U32Cells(std::iter::once(n).chain((0..t.len()).map(f)).collect())
    };
    vec![
        Property::new("ibm,drc-indexes", cells(&|k| t.drc_index(k))),
        Property::new(
            "ibm,drc-names",
            strings(&|k| format!("LMB {}", t.first_id() as usize + k)),
        ),
        Property::new("ibm,drc-types", strings(&|_| "MEM".to_string())),
        Property::new("ibm,drc-power-domains", cells(&|_| u32::MAX)),
    ]
}

/// `/rtas/ibm,lrdr-capacity`: `<u64 max address, u64 LMB size, u32 max vCPUs>`.
pub fn lrdr_capacity(t: &LmbTable, max_cpus: u32) -> Property {
    let mut c = u64_cells(t.window().end()).to_vec();
    c.extend(u64_cells(LMB_SIZE));
    c.push(max_cpus);
    Property::new("ibm,lrdr-capacity", PropValue::U32Cells(c))
}

/// The node `ibm,configure-connector` hands out for the LMB at `r`: its name and its
/// properties (`device_type`, `reg`, `ibm,associativity`) as FDT bytes.
pub fn lmb_node(r: GuestRange) -> (String, [(&'static str, Vec<u8>); 3]) {
    let cells = |c: &[u32]| c.iter().flat_map(|v| v.to_be_bytes()).collect::<Vec<u8>>();
    (
        format!("memory@{:x}", r.start()),
        [
            ("device_type", b"memory\0".to_vec()),
            (
                "reg",
                PropValue::U64Cells(vec![r.start(), r.len()]).to_fdt_bytes(),
            ),
            ("ibm,associativity", cells(&LMB_ASSOCIATIVITY)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlpar::drc::CcPiece;

    const M: u64 = 1 << 20;

    fn value(props: &[Property], name: &str) -> Vec<u8> {
        props
            .iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name}"))
            .value
            .to_fdt_bytes()
    }

    fn be(cells: &[u32]) -> Vec<u8> {
        cells.iter().flat_map(|c| c.to_be_bytes()).collect()
    }

    /// The spec's worked example, byte for byte: 1536 MiB RAM, window LMBs 6 and 7.
    #[test]
    fn the_spec_example_nothing_assigned() {
        let t = LmbTable::new(1536 * M, 0x6000_0000, 512 * M).unwrap();
        let p = drconf_properties(&t, DrconfFormat::V2);
        assert_eq!(value(&p, "ibm,lmb-size"), be(&[0, 0x1000_0000]));
        assert_eq!(
            value(&p, "ibm,dynamic-memory-v2"),
            be(&[
                2,
                6,
                0,
                0,
                0,
                0xffff_ffff,
                0xa0,
                2,
                0,
                0x6000_0000,
                0x8000_0006,
                0xffff_ffff,
                0
            ])
        );
        assert_eq!(
            value(&p, "ibm,associativity-lookup-arrays"),
            be(&[1, 4, 0, 0, 0, 0])
        );
        assert_eq!(value(&p, "ibm,memory-flags-mask"), be(&[0xff]));
        assert_eq!(value(&p, "ibm,memory-preservation-time"), be(&[0]));
        assert_eq!(
            value(&[lrdr_capacity(&t, 2)], "ibm,lrdr-capacity"),
            be(&[0, 0x8000_0000, 0, 0x1000_0000, 2])
        );
        let root = drc_root_properties(&t);
        assert_eq!(
            value(&root, "ibm,drc-indexes"),
            be(&[2, 0x8000_0006, 0x8000_0007])
        );
        assert_eq!(value(&root, "ibm,drc-names"), b"\0\0\0\x02LMB 6\0LMB 7\0");
        assert_eq!(value(&root, "ibm,drc-types"), b"\0\0\0\x02MEM\0MEM\0");
        assert_eq!(
            value(&root, "ibm,drc-power-domains"),
            be(&[2, u32::MAX, u32::MAX])
        );
    }

    #[test]
    fn an_owned_lmb_gets_its_own_assigned_set_and_v1_lists_every_lmb() {
        let mut t = LmbTable::new(1536 * M, 0x6000_0000, 768 * M).unwrap();
        t.grant_all();
        let d = t.drc_mut(1);
        d.set_allocation(1).unwrap();
        d.set_isolation(1).unwrap();
        while d.configure_step().unwrap().0 != CcPiece::Complete {}
        let sets = lmb_sets(&t);
        assert_eq!(
            dynamic_memory_v2(&sets),
            [
                4,
                6,
                0,
                0,
                0,
                u32::MAX,
                0xa0, //
                1,
                0,
                0x6000_0000,
                0x8000_0006,
                u32::MAX,
                0, //
                1,
                0,
                0x7000_0000,
                0x8000_0007,
                0,
                0x108, //
                1,
                0,
                0x8000_0000,
                0x8000_0008,
                u32::MAX,
                0
            ]
        );
        let v1 = dynamic_memory_v1(&sets);
        assert_eq!(v1[0], 9);
        assert_eq!(v1.len(), 1 + 9 * 6);
        // LMB 5: boot RAM, no DRC. LMB 7: assigned, DRC 0x80000007.
        assert_eq!(
            &v1[1 + 5 * 6..1 + 6 * 6],
            [0, 0x5000_0000, 0, 0, u32::MAX, 0xa0]
        );
        assert_eq!(
            &v1[1 + 7 * 6..1 + 8 * 6],
            [0, 0x7000_0000, 0x8000_0007, 0, 0, 0x108]
        );
    }

    #[test]
    fn the_lmb_node() {
        let (name, props) = lmb_node(GuestRange::new(0x6000_0000, LMB_SIZE).unwrap());
        assert_eq!(name, "memory@60000000");
        assert_eq!(props[0], ("device_type", b"memory\0".to_vec()));
        assert_eq!(props[1].1, be(&[0, 0x6000_0000, 0, 0x1000_0000]));
        assert_eq!(props[2].1, be(&[4, 0, 0, 0, 0]));
    }
}
