//! Dispatcher tests for the RTAS calls a 6.x kernel needs to boot and reboot.

use std::collections::BTreeSet;

use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::*;
use crate::memory;

const AT: u64 = 0x100;

struct P {
    stopped: BTreeSet<u32>,
}

impl Platform for P {
    fn time_of_day(&self) -> TimeOfDay {
        TimeOfDay {
            year: 2026,
            month: 11,
            day: 21,
            hour: 15,
            minute: 37,
            second: 5,
            nanosecond: 42,
        }
    }
    fn cpu_run_state(&self, cpu: u32) -> Option<CpuRunState> {
        (cpu < 4).then(|| {
            if self.stopped.contains(&cpu) {
                CpuRunState::Stopped
            } else {
                CpuRunState::Running
            }
        })
    }
}

fn setup() -> (GuestMemoryMmap, Rtas, P) {
    let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
    let rtas = Rtas::new(FadumpConfig {
        max_cpus: 4,
        hpte_capacity: 0,
        rma_size: 0x10000,
        firmware_reserved: vec![],
    });
    let p = P {
        stopped: [1, 2, 3].into_iter().collect(),
    };
    (m, rtas, p)
}

/// Calls `call` and returns (action, rets).
fn call(
    m: &GuestMemoryMmap,
    r: &mut Rtas,
    p: &P,
    call: RtasCall,
    args: &[u32],
    nret: u32,
) -> (RtasAction, Vec<u32>) {
    let mut cells = vec![call.token(), args.len() as u32, nret];
    cells.extend_from_slice(args);
    cells.extend(std::iter::repeat_n(0xdead_beef, nret as usize));
    let b: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
    memory::write_bytes(m, AT, &b).unwrap();
    let action = r.dispatch(m, AT, p).unwrap();
    let rets = memory::read_bytes(m, AT + 12 + 4 * args.len() as u64, 4 * nret as usize)
        .unwrap()
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    (action, rets)
}

const NEG3: u32 = -3i32 as u32;

#[test]
fn start_cpu_only_starts_stopped_cpus() {
    let (m, mut r, p) = setup();
    let (a, rets) = call(&m, &mut r, &p, RtasCall::StartCpu, &[2, 0x60, 0xabc], 1);
    assert_eq!(rets, vec![0]);
    assert_eq!(
        a,
        RtasAction::StartCpu {
            cpu: 2,
            entry: 0x60,
            r3: 0xabc
        }
    );
    let (a, rets) = call(&m, &mut r, &p, RtasCall::StartCpu, &[0, 0x60, 0], 1);
    assert_eq!(
        (a, rets),
        (RtasAction::None, vec![-1i32 as u32]),
        "cpu 0 is running"
    );
    let (a, rets) = call(&m, &mut r, &p, RtasCall::StartCpu, &[9, 0x60, 0], 1);
    assert_eq!((a, rets), (RtasAction::None, vec![NEG3]), "no cpu 9");
    let (a, rets) = call(&m, &mut r, &p, RtasCall::StartCpu, &[2, 0x60], 1);
    assert_eq!((a, rets), (RtasAction::None, vec![NEG3]), "nargs 2");
}

#[test]
fn query_cpu_stopped_state() {
    let (m, mut r, p) = setup();
    assert_eq!(
        call(&m, &mut r, &p, RtasCall::QueryCpuStoppedState, &[0], 2).1,
        vec![0, 2]
    );
    assert_eq!(
        call(&m, &mut r, &p, RtasCall::QueryCpuStoppedState, &[3], 2).1,
        vec![0, 0]
    );
    assert_eq!(
        call(&m, &mut r, &p, RtasCall::QueryCpuStoppedState, &[4], 2).1,
        vec![NEG3, 0xdead_beef]
    );
}

#[test]
fn time_console_events_and_lifecycle() {
    let (m, mut r, p) = setup();
    assert_eq!(
        call(&m, &mut r, &p, RtasCall::GetTimeOfDay, &[], 8).1,
        vec![0, 2026, 11, 21, 15, 37, 5, 42]
    );
    assert_eq!(
        call(&m, &mut r, &p, RtasCall::DisplayCharacter, &[0x41], 1),
        (RtasAction::Console(b'A'), vec![0])
    );
    let (a, rets) = call(
        &m,
        &mut r,
        &p,
        RtasCall::EventScan,
        &[0, 0, 0x2000, 0x800],
        1,
    );
    assert_eq!((a, rets), (RtasAction::None, vec![1]), "no event found");
    let (_, rets) = call(
        &m,
        &mut r,
        &p,
        RtasCall::CheckException,
        &[0x500, 0, 0x4000_0000, 0, 0x2000, 0x800],
        1,
    );
    assert_eq!(rets, vec![1]);
    let (_, rets) = call(
        &m,
        &mut r,
        &p,
        RtasCall::CheckException,
        &[0x500, 0, 0x4000_0000, 0, 0x2000, 0x800, 0],
        1,
    );
    assert_eq!(rets, vec![1], "optional 7th argument");
    let (_, rets) = call(
        &m,
        &mut r,
        &p,
        RtasCall::CheckException,
        &[0, 0, 0, 0, 0, 0],
        1,
    );
    assert_eq!(rets, vec![-3i32 as u32], "no buffer");
    r.events_mut()
        .queue(
            EventClass::Epow,
            events::power_button_log(p.time_of_day(), 1),
        )
        .unwrap();
    r.events_mut()
        .queue(
            EventClass::Epow,
            events::power_button_log(p.time_of_day(), 2),
        )
        .unwrap();
    let (a, rets) = call(
        &m,
        &mut r,
        &p,
        RtasCall::CheckException,
        &[0x500, 0x1000, 0x4000_0000, 0, 0x2000, 0x800],
        1,
    );
    assert_eq!(
        (a, rets),
        (RtasAction::RaiseEvents(vec![EventClass::Epow]), vec![0]),
        "one log returned, one still pending"
    );
    let (a, rets) = call(
        &m,
        &mut r,
        &p,
        RtasCall::CheckException,
        &[0x500, 0x1000, 0x4000_0000, 0, 0x2000, 0x800],
        1,
    );
    assert_eq!((a, rets), (RtasAction::None, vec![0]), "the last one");
    assert_eq!(
        call(&m, &mut r, &p, RtasCall::SystemReboot, &[], 1),
        (RtasAction::SystemReboot, vec![0])
    );
    assert_eq!(
        call(&m, &mut r, &p, RtasCall::PowerOff, &[0, 0], 1),
        (RtasAction::PowerOff, vec![0])
    );
    assert_eq!(
        call(&m, &mut r, &p, RtasCall::StopSelf, &[], 1),
        (RtasAction::StopSelf, vec![0xdead_beef]),
        "stop-self does not return"
    );
}

#[test]
fn machine_calls_are_forwarded_and_published() {
    let (m, mut r, p) = setup();
    assert_eq!(
        call(&m, &mut r, &p, RtasCall::IbmReadPciConfig, &[0, 0, 0, 4], 2).1,
        vec![NEG3, 0xdead_beef],
        "unpublished until the machine enables it"
    );
    r.enable_machine_call(RtasCall::IbmReadPciConfig);
    let (a, rets) = call(&m, &mut r, &p, RtasCall::IbmReadPciConfig, &[0, 0, 0, 4], 2);
    assert!(matches!(
        a,
        RtasAction::Machine {
            call: RtasCall::IbmReadPciConfig,
            ..
        }
    ));
    assert_eq!(rets, vec![0xdead_beef; 2], "the machine writes the rets");
    let names: Vec<String> = r.properties().into_iter().map(|p| p.name).collect();
    assert!(names.contains(&"ibm,read-pci-config".to_string()));
    assert!(names.contains(&"ibm,extended-os-term".to_string()));
    assert!(names.contains(&"ibm,configure-kernel-dump-sizes".to_string()));
    assert!(!names.contains(&"ibm,kernel-dump".to_string()));
}

#[test]
fn os_term_with_a_null_message_pointer_reads_nothing() {
    // Linux >= 6.5 passes 0 here (see Rtas::os_term); address 0 holds kernel text.
    let (m, mut r, p) = setup();
    memory::write_bytes(&m, 0, b"kernel text, not a message\0").unwrap();
    let (a, rets) = call(&m, &mut r, &p, RtasCall::IbmOsTerm, &[0], 1);
    assert_eq!(
        a,
        RtasAction::OsTerm {
            message: String::new()
        }
    );
    assert_eq!(rets, vec![0]);
    memory::write_bytes(&m, 0x800, b"OS panic: real message\0").unwrap();
    let (a, _) = call(&m, &mut r, &p, RtasCall::IbmOsTerm, &[0x800], 1);
    assert_eq!(
        a,
        RtasAction::OsTerm {
            message: "OS panic: real message".into()
        }
    );
}
