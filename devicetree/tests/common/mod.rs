//! Helpers shared by the devicetree integration tests.
// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use firmware::properties::{PropValue, Property};
use firmware::rtas::RtasCall;

/// The RTAS calls our VMM publishes (firmware's own plus the XICS calls KVM serves), spelled
/// out so the test trees change only when the tree builder does.
pub const PUBLISHED_CALLS: [RtasCall; 16] = [
    RtasCall::DisplayCharacter,
    RtasCall::GetTimeOfDay,
    RtasCall::SetTimeOfDay,
    RtasCall::PowerOff,
    RtasCall::SystemReboot,
    RtasCall::QueryCpuStoppedState,
    RtasCall::StartCpu,
    RtasCall::StopSelf,
    RtasCall::IbmSetXive,
    RtasCall::IbmGetXive,
    RtasCall::IbmIntOff,
    RtasCall::IbmIntOn,
    RtasCall::CheckException,
    RtasCall::EventScan,
    RtasCall::IbmOsTerm,
    RtasCall::IbmConfigureKernelDump,
];

/// One token property per published call, plus `ibm,extended-os-term`.
pub fn rtas_token_properties() -> Vec<Property> {
    let mut props: Vec<Property> = PUBLISHED_CALLS
        .iter()
        .map(|c| Property::u32(c.name(), c.token()))
        .collect();
    props.push(Property::new("ibm,extended-os-term", PropValue::Empty));
    props
}

/// Runs `dtc -I dtb -O dts` on `blob`; panics with the package name when dtc is missing and
/// with dtc's messages when it complains at all (warnings included).
pub fn decompile(blob: &[u8], name: &str) -> String {
    // Tests run in parallel: one file per call.
    static N: AtomicU32 = AtomicU32::new(0);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "{name}-{}-{}.dtb",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, blob).unwrap();
    let out = match Command::new("dtc")
        .args(["-I", "dtb", "-O", "dts"])
        .arg(&path)
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`dtc` not found: install the Debian package `device-tree-compiler` \
             (apt-get install device-tree-compiler)"
        ),
        Err(e) => panic!("cannot run dtc: {e}"),
    };
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "dtc failed on {name}: {stderr}");
    assert!(stderr.is_empty(), "dtc warned about {name}:\n{stderr}");
    String::from_utf8(out.stdout).expect("dtc output is UTF-8")
}
